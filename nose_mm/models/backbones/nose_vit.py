"""mmpretrain's VisionTransformer with dilutable and removable attention layers."""
import torch
from mmpretrain.models.backbones import VisionTransformer
from mmpretrain.models.backbones.vision_transformer import TransformerEncoderLayer

from nose_mm.registry import register_model

from ..layouts import VIT_LAYOUT
from .base import DilutableBlockMixin, NoseBackboneMixin

__all__ = ['DilutableEncoderLayer', 'NoseVisionTransformer']


class DilutableEncoderLayer(DilutableBlockMixin, TransformerEncoderLayer):
    """mmpretrain's ``TransformerEncoderLayer`` with a dilutable attention branch.

    Same parameters and state-dict keys as the parent. The forward is::

        lam == 1 (default):  x = x + Attn(LN1(x))                 # the parent's
        0 < lam < 1:         x = (2 - lam) * x + lam * Attn(LN1(x))
                             (or x + lam * Attn(LN1(x)) without compensation)
        lam == 0 / removed:  x = 2 * x (or x); Attn and LN1 are not called
        then                 x = x + FFN(LN2(x))

    ``Attn`` includes the layer's layer scale (``gamma1``) and drop path, as in
    the parent. A *removed* layer has no ``ln1`` and no ``attn`` submodules at
    all (the pruned model of METHOD.md section 5). Layers are made by
    :meth:`from_encoder_layer` from layers the parent backbone has built.
    """

    parent = TransformerEncoderLayer
    attention_parts = ('ln1', 'attn')

    @classmethod
    def from_encoder_layer(cls, layer: TransformerEncoderLayer, removed: bool = False,
                           compensate: bool = True) -> 'DilutableEncoderLayer':
        """Convert a built layer in place (see ``DilutableBlockMixin.convert``)."""
        return cls.convert(layer, removed=removed, compensate=compensate)

    @property
    def norm1(self):
        """The attention's pre-norm (missing in removed layers)."""
        if self.removed:
            raise AttributeError('this layer is removed (pruned): it has no ln1')
        return self.ln1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Dilutable block forward (see the class docstring)."""
        x = self.attention_residual(x, lambda y: self.attn(self.ln1(y)))
        return self.ffn(self.ln2(x), identity=x)


@register_model
class NoseVisionTransformer(NoseBackboneMixin, VisionTransformer):
    """Vision Transformer whose attention layers can be diluted and removed.

    mmpretrain's :class:`~mmpretrain.models.backbones.VisionTransformer` with
    every arch and argument unchanged, plus dilution learning (METHOD.md
    section 4) and pruned layers (section 5). It implements the
    :class:`~nose_mm.models.dilution.Dilutable` protocol, through which
    :class:`~nose_mm.engine.hooks.DilutionHook` drives ``lam``.

    State-dict keys are mmpretrain's (``layers.{i}.ln1.weight``,
    ``layers.{i}.attn.qkv.weight``...), so an mmpretrain ViT / DeiT checkpoint
    loads into it, and position embeddings are resized as mmpretrain does
    (e.g. a 224 px checkpoint into ``img_size=512`` for segmentation). A
    removed layer has no ``layers.{i}.ln1.*`` / ``layers.{i}.attn.*`` keys.
    Loading a checkpoint whose attention layers do not match the model
    (pruned checkpoint into an unpruned model, the reverse, or another removed
    set) raises a ``RuntimeError`` naming the layers that differ, both with
    ``load_state_dict`` and with mmengine's loaders (``load_checkpoint``,
    ``init_cfg=dict(type='Pretrained', ...)``), which otherwise only log
    missing keys.

    Usable as an mmpretrain classifier backbone (``out_type='cls_token'``) and
    as an mmseg backbone (registered in both registries), e.g. UperNet with
    ``MultiLevelNeck``: ``out_type='featmap', out_indices=(2, 5, 8, 11)``.

    Args:
        arch (str | dict): As in ``VisionTransformer``: ``'deit-tiny'``,
            ``'deit-small'``, ``'deit-base'``, ``'small'``, ``'base'``,
            ``'large'``, ``'huge'``... or a dict with ``embed_dims``,
            ``num_layers``, ``num_heads``, ``feedforward_channels``.
            Defaults to ``'base'``.
        *args: Further positional arguments of ``VisionTransformer``
            (``img_size``, ``patch_size``...).
        diluted_layers (Sequence[int], optional): Layers whose attention branch
            is scaled by ``lam``. Negative indices count from the end (as
            mmpretrain's ``out_indices``) and are normalised. Defaults to
            None (no layer).
        removed_layers (Sequence[int], optional): Pruned layers: MLP-only
            blocks without ``ln1`` and ``attn`` parameters. Same index rules.
            Must not overlap ``diluted_layers``. Defaults to None.
        compensate (bool): Residual compensation of METHOD.md: a diluted layer
            computes ``(2 - lam) * x + lam * Attn(LN1(x))`` and a removed layer
            ``2 * x`` before its MLP; with False, ``x + lam * Attn(LN1(x))``
            and ``x``. Defaults to True (the reference default).
        init_lam (float): Initial ``lam`` in [0, 1] of the diluted layers.
            Defaults to 1.0.
        **kwargs: Keyword arguments of ``VisionTransformer`` (``img_size``,
            ``patch_size``, ``out_indices``, ``out_type``, ``drop_path_rate``,
            ``layer_scale_init_value``, ``final_norm``, ``with_cls_token``,
            ``frozen_stages``, ``layer_cfgs``, ``init_cfg``...).

    Raises:
        ValueError: Layer indices out of ``[-num_layers, num_layers - 1]``,
            duplicated (also ``11`` and ``-1`` with 12 layers), or both
            diluted and removed; ``init_lam`` outside [0, 1].

    Example:
        >>> backbone = NoseVisionTransformer('deit-small', diluted_layers=[0, 2, 4])
        >>> backbone.set_dilution_lam(0.5)
        >>> pruned = NoseVisionTransformer('deit-small', removed_layers=[0, 2, 4])
    """

    block_layout = VIT_LAYOUT
    block_class = DilutableEncoderLayer
