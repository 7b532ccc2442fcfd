"""mmpretrain's DeiT3 computing the official DeiT-III block, dilutable and prunable."""
import torch
from mmpretrain.models.backbones import DeiT3
from mmpretrain.models.backbones.deit3 import DeiT3TransformerEncoderLayer

from nose_mm.registry import register_model

from ..layouts import VIT_LAYOUT
from .base import DilutableBlockMixin, NoseBackboneMixin

__all__ = ['DilutableDeiT3Layer', 'NoseDeiT3']


class DilutableDeiT3Layer(DilutableBlockMixin, DeiT3TransformerEncoderLayer):
    """The official DeiT-III block with a dilutable attention branch.

    Same parameters and keys as mmpretrain's ``DeiT3TransformerEncoderLayer``,
    but the FFN input is normalised with ``ln2`` as in the official DeiT-III
    and timm's ``deit3_*`` (mmpretrain 1.2.0 uses ``ln1`` there)::

        x = x + LS1(Attn(LN1(x)))   (diluted / removed as in DilutableEncoderLayer)
        x = x + LS2(FFN(LN2(x)))
    """

    parent = DeiT3TransformerEncoderLayer
    attention_parts = ('ln1', 'attn')

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Dilutable official DeiT-III block forward."""
        x = self.attention_residual(x, lambda y: self.attn(self.ln1(y)))
        return self.ffn(self.ln2(x), identity=x)


@register_model
class NoseDeiT3(NoseBackboneMixin, DeiT3):
    """DeiT-III (official block) whose attention layers can be diluted and removed.

    mmpretrain's :class:`~mmpretrain.models.backbones.DeiT3` with every arch
    and argument kept, except that each block computes the **official**
    DeiT-III architecture: the FFN input is normalised with ``ln2``
    (mmpretrain 1.2.0's ``DeiT3TransformerEncoderLayer`` normalises it with
    ``ln1`` and never uses ``ln2``). With weights converted by
    :func:`~nose_mm.models.convert.convert_deit3` it equals timm's
    ``deit3_*`` models. Keys, dilution, pruning and checkpoint checks are
    those of :class:`NoseVisionTransformer` (``layers.{i}.ln1`` /
    ``layers.{i}.attn`` are the removable parts; with layer scale the
    attention's ``gamma1`` goes with it). Registered in the mmpretrain and
    mmseg registries.

    Args:
        arch (str | dict): As in ``DeiT3``: ``'small'``, ``'medium'``,
            ``'base'``, ``'large'``, ``'huge'`` or a dict with
            ``embed_dims``, ``num_layers``, ``num_heads``,
            ``feedforward_channels``. Defaults to ``'base'``.
        *args: Further positional arguments of ``DeiT3``.
        diluted_layers (Sequence[int], optional): Layers whose attention branch
            is scaled by ``lam`` (negative indices count from the end).
            Defaults to None.
        removed_layers (Sequence[int], optional): Pruned layers (no ``ln1``
            and ``attn``). Must not overlap ``diluted_layers``. Defaults to None.
        compensate (bool): Compensated residuals (docs/method.md). Defaults to True.
        init_lam (float): Initial ``lam`` in [0, 1] of the diluted layers.
            Defaults to 1.0.
        **kwargs: Keyword arguments of ``DeiT3`` (``img_size``,
            ``patch_size``, ``out_indices``, ``out_type``, ``drop_path_rate``,
            ``use_layer_scale``, ``final_norm``, ``layer_cfgs``, ``init_cfg``...).

    Raises:
        ValueError: Bad layer indices or ``init_lam`` (as NoseVisionTransformer).
    """

    block_layout = VIT_LAYOUT
    block_class = DilutableDeiT3Layer
