"""mmpretrain's SwinTransformer with dilutable and removable attention blocks."""
import torch
import torch.utils.checkpoint as cp
from mmpretrain.models.backbones import SwinTransformer
from mmpretrain.models.backbones.swin_transformer import SwinBlock

from nose_mm.registry import register_model

from ..layouts import SWIN_LAYOUT
from .base import DilutableBlockMixin, NoseBackboneMixin

__all__ = ['DilutableSwinBlock', 'NoseSwinTransformer']


class DilutableSwinBlock(DilutableBlockMixin, SwinBlock):
    """mmpretrain's ``SwinBlock`` (window or shifted window) with a dilutable attention.

    Same parameters and keys as the parent; the forward is that of
    :class:`~nose_mm.models.backbones.DilutableEncoderLayer` with
    ``Attn = ShiftWindowMSA`` (drop path included) and ``norm1`` / ``norm2``.
    A removed block has no ``norm1`` and no ``attn`` (so no relative position
    bias table either) and computes ``x = 2x`` (or ``x``), then its FFN.
    """

    parent = SwinBlock
    attention_parts = ('norm1', 'attn')

    def forward(self, x: torch.Tensor, hw_shape) -> torch.Tensor:
        """Dilutable Swin block forward."""

        def _inner_forward(x):
            x = self.attention_residual(x, lambda y: self.attn(self.norm1(y), hw_shape))
            return self.ffn(self.norm2(x), identity=x)

        if self.with_cp and x.requires_grad:
            return cp.checkpoint(_inner_forward, x, use_reentrant=False)
        return _inner_forward(x)


@register_model
class NoseSwinTransformer(NoseBackboneMixin, SwinTransformer):
    """Swin Transformer whose attention blocks can be diluted and removed.

    mmpretrain's :class:`~mmpretrain.models.backbones.SwinTransformer` with
    every arch and argument kept, plus dilution learning and pruned blocks as
    in :class:`NoseVisionTransformer`. A *layer* is a Swin block, window and
    shifted-window blocks alike, indexed globally in stage order: Swin-T
    (depths 2, 2, 6, 2) has layers 0-11, layer 4 being stage 2's first block.
    ``num_layers`` keeps mmpretrain's meaning (the number of stages); the
    number of dilutable layers is ``num_dilutable_layers``.

    A removed block has no ``stages.{s}.blocks.{j}.norm1.*`` /
    ``...attn.*`` keys (nor its relative position bias table and index).
    Pruning one Swin-T block removes its ``norm1``, qkv, proj and bias table:
    37,947 / 149,622 / 594,156 / 2,367,960 parameters in stages 1 / 2 / 3 / 4
    (C = 96 / 192 / 384 / 768; ``2C + 4C^2 + 4C + 169 * heads``). Loading a
    checkpoint with another removed set raises a ``CheckpointFitError`` naming the
    layers. Registered in the mmpretrain and mmseg registries: as an mmseg
    backbone use ``out_indices=(0, 1, 2, 3)``.
    ``train()`` returns ``self`` (mmpretrain 1.2.0's returns None).

    Args:
        arch (str | dict): As in ``SwinTransformer``: ``'tiny'``, ``'small'``,
            ``'base'``, ``'large'`` or a dict with ``embed_dims``, ``depths``,
            ``num_heads``. Defaults to ``'tiny'``.
        *args: Further positional arguments of ``SwinTransformer``.
        diluted_layers (Sequence[int], optional): Blocks whose attention branch
            is scaled by ``lam`` (global indices; negative ones count from the
            end). Defaults to None.
        removed_layers (Sequence[int], optional): Pruned blocks (no ``norm1``
            and ``attn``). Must not overlap ``diluted_layers``. Defaults to None.
        compensate (bool): Compensated residuals (docs/method.md). Defaults to True.
        init_lam (float): Initial ``lam`` in [0, 1] of the diluted blocks.
            Defaults to 1.0.
        **kwargs: Keyword arguments of ``SwinTransformer`` (``img_size``,
            ``window_size``, ``out_indices``, ``drop_path_rate``,
            ``pad_small_map``, ``with_cp``, ``frozen_stages``, ``stage_cfgs``,
            ``init_cfg``...).

    Raises:
        ValueError: Bad layer indices or ``init_lam`` (as NoseVisionTransformer).
    """

    block_layout = SWIN_LAYOUT
    block_class = DilutableSwinBlock

    def dilutable_blocks(self):
        return [block for stage in self.stages for block in stage.blocks]

    def block_depths(self):
        return tuple(len(stage.blocks) for stage in self.stages)
