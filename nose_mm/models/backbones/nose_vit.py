"""mmpretrain's VisionTransformer with dilutable and removable attention layers."""
from typing import Optional, Tuple

import torch
from mmpretrain.models.backbones import VisionTransformer
from mmpretrain.models.backbones.vision_transformer import TransformerEncoderLayer
from mmpretrain.models.utils import resize_pos_embed

from nose_mm.registry import register_model

from ..layouts import VIT_LAYOUT
from .base import DilutableBlockMixin, NoseBackboneMixin
from .token_merge_mixin import TokenMergeMixin

__all__ = ['DilutableEncoderLayer', 'NoseVisionTransformer']


class DilutableEncoderLayer(DilutableBlockMixin, TransformerEncoderLayer):
    """mmpretrain's ``TransformerEncoderLayer`` with a dilutable attention branch.

    Same parameters and state-dict keys as the parent. The attention residual is
    :func:`~nose_mm.models.dilution.dilute_residual` (formulas in
    :mod:`nose_mm.models.dilution`; at ``lam == 0`` Attn and LN1 are not
    called), then ``x = x + FFN(LN2(x))``. ``Attn`` includes the layer's layer
    scale (``gamma1``) and drop path, as in the parent. A *removed* layer has
    no ``ln1`` and no ``attn`` submodules at all (the pruned model of docs/method.md
    section 5). Layers are made by :meth:`from_encoder_layer` from layers the
    parent backbone has built.
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
class NoseVisionTransformer(TokenMergeMixin, NoseBackboneMixin, VisionTransformer):
    """Vision Transformer whose attention layers can be diluted and removed.

    mmpretrain's :class:`~mmpretrain.models.backbones.VisionTransformer` with
    every arch and argument unchanged, plus dilution learning (docs/method.md
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
    set) raises a ``CheckpointFitError`` (a ``RuntimeError``) naming the
    layers that differ, both with
    ``load_state_dict`` and with mmengine's loaders (``load_checkpoint``,
    ``init_cfg=dict(type='Pretrained', ...)``), which otherwise only log
    missing keys.

    Usable as an mmpretrain classifier backbone (``out_type='cls_token'``) and
    as an mmseg backbone (registered in both registries), e.g. UperNet with
    ``MultiLevelNeck``: ``out_type='featmap', out_indices=(2, 5, 8, 11)``.

    With ``token_merge``, token merging (ToMe, :mod:`nose_mm.models.token_merge`)
    runs after the attention of the layers that keep attention, for
    classification (``out_type='cls_token'``) at test time, as in the
    reference's NOSE + ToMe rows.

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
        compensate (bool): Residual compensation of docs/method.md: a diluted layer
            computes ``(2 - lam) * x + lam * Attn(LN1(x))`` and a removed layer
            ``2 * x`` before its MLP; with False, ``x + lam * Attn(LN1(x))``
            and ``x``. Defaults to True (the reference default).
        init_lam (float): Initial ``lam`` in [0, 1] of the diluted layers.
            Defaults to 1.0.
        drop_path_mode (str): How ``drop_path_rate`` is spread over the
            layers: ``'linear'`` (mmpretrain's ramp from 0 in the first layer
            to ``drop_path_rate`` in the last) or ``'constant'`` (the same rate
            in every layer, as the reference code's DeiT-B). A
            ``drop_path_rate`` in ``layer_cfgs`` still wins. Defaults to
            ``'linear'``.
        token_merge (dict, optional): ``dict(r=R, start=S, prop_attn=True)``:
            merge ``R`` tokens (an int, or a list with one count per merging
            layer) in every layer that keeps attention (removed and
            ``lam = 0`` layers do not count) from the ``S``-th such layer on
            (counted from 0; default 0), with proportional attention
            (default True). Needs ``out_type='cls_token'``. Defaults to None
            (no merging).
        **kwargs: Keyword arguments of ``VisionTransformer`` (``img_size``,
            ``patch_size``, ``out_indices``, ``out_type``, ``drop_path_rate``,
            ``layer_scale_init_value``, ``final_norm``, ``with_cls_token``,
            ``frozen_stages``, ``layer_cfgs``, ``init_cfg``...).

    Raises:
        ValueError: Layer indices out of ``[-num_layers, num_layers - 1]``,
            duplicated (also ``11`` and ``-1`` with 12 layers), or both
            diluted and removed; ``init_lam`` outside [0, 1]; a bad
            ``drop_path_mode``; a bad ``token_merge`` (negative or non-int
            ``r``, a list ``r`` of the wrong length, ``start`` out of range, a
            non-``'cls_token'`` output).

    Example:
        >>> backbone = NoseVisionTransformer('deit-small', diluted_layers=[0, 2, 4])
        >>> backbone.set_dilution_lam(0.5)
        >>> pruned = NoseVisionTransformer('deit-small', removed_layers=[0, 2, 4])
    """

    block_layout = VIT_LAYOUT
    block_class = DilutableEncoderLayer

    def __init__(self,
                 arch='base',
                 *args,
                 drop_path_mode: str = 'linear',
                 token_merge: Optional[dict] = None,
                 **kwargs) -> None:
        if drop_path_mode not in ('linear', 'constant'):
            raise ValueError(f"drop_path_mode must be 'linear' or 'constant', got "
                             f'{drop_path_mode!r}')
        if drop_path_mode == 'constant':
            rate = dict(drop_path_rate=kwargs.get('drop_path_rate', 0.))
            layer_cfgs = kwargs.get('layer_cfgs', dict())
            kwargs['layer_cfgs'] = ({**rate, **layer_cfgs} if isinstance(layer_cfgs, dict)
                                    else [{**rate, **cfg} for cfg in layer_cfgs])
        super().__init__(arch, *args, **kwargs)
        self._init_token_merge(token_merge)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """The parent's forward, or with ``token_merge`` its steps with merging layers."""
        if self.token_merge is None:
            return super().forward(x)
        # the embedding steps of VisionTransformer.forward, then the merging layers
        x, patch_resolution = self.patch_embed(x)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        x = x + resize_pos_embed(self.pos_embed, self.patch_resolution, patch_resolution,
                                 mode=self.interpolate_mode,
                                 num_extra_tokens=self.num_extra_tokens)
        x = self.pre_norm(self.drop_after_pos(x))
        return self._forward_layers_merged(x, patch_resolution)
