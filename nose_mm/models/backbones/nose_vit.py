"""The ViT / DeiT family: mmpretrain's VisionTransformer, dilutable and prunable.

One module per family (:mod:`nose_mm.models.family`): the dilutable block, the
backbone, the timm / official key map of the converter and the family's
registry entry (:class:`ViTFamily`). timm and official DeiT checkpoints
(``{'model': state_dict}``) use ``blocks.{i}.norm1``, ``blocks.{i}.attn.qkv``...;
mmpretrain's ``ImageClassifier`` with ``VisionTransformerClsHead`` uses
``backbone.layers.{i}.ln1``, ``backbone.layers.{i}.attn.qkv``... and
``head.layers.head``; :func:`convert_timm_vit` maps one onto the other.
"""
import re
from collections import OrderedDict
from typing import Any, Dict, Iterator, List, Optional, Tuple

import torch
from mmpretrain.models.backbones import DistilledVisionTransformer, VisionTransformer
from mmpretrain.models.backbones.vision_transformer import TransformerEncoderLayer
from mmpretrain.models.utils import resize_pos_embed
from torch import Tensor, nn

from nose_mm.registry import register_model

from ..family import BackboneFamily, register_family
from ..layouts import BlockLayout
from .base import DilutableBlockMixin, NoseBackboneMixin
from .token_merge_mixin import TokenMergeMixin

__all__ = ['DilutableEncoderLayer', 'NoseVisionTransformer', 'VIT_LAYOUT', 'ViTFamily',
           'convert_timm_vit', 'vit_embed']

#: ViT / DeiT / DeiT-III blocks: ``layers.{i}.*``, removable parts ``ln1`` and ``attn``.
VIT_LAYOUT = BlockLayout('vit', r'layers\.(\d+)\.([A-Za-z0-9_]+)\.', ('ln1', 'attn'),
                         '{prefix}layers.{block}')


def vit_embed(backbone: nn.Module, x: Tensor, cls_first: bool = True) -> Tuple[Tensor, Any]:
    """A ViT's embedding: patches, class token, position embedding, pre-norm.

    Args:
        backbone (nn.Module): A ``VisionTransformer`` (or subclass).
        x (Tensor): Pre-processed images.
        cls_first (bool): Prepend the class token before adding the position
            embedding (ViT, DeiT) or after (DeiT-III, whose ``pos_embed`` has
            no class-token slot). Defaults to True.

    Returns:
        tuple: The (B, N, C) tokens and the patch grid ``(H, W)``.
    """
    x, patch_resolution = backbone.patch_embed(x)
    cls_token = getattr(backbone, 'cls_token', None)
    if cls_first and cls_token is not None:
        x = torch.cat((cls_token.expand(x.shape[0], -1, -1), x), dim=1)
    x = x + resize_pos_embed(backbone.pos_embed, backbone.patch_resolution, patch_resolution,
                             mode=backbone.interpolate_mode,
                             num_extra_tokens=backbone.num_extra_tokens if cls_first else 0)
    x = backbone.drop_after_pos(x)
    if not cls_first and cls_token is not None:
        x = torch.cat((cls_token.expand(x.shape[0], -1, -1), x), dim=1)
    pre_norm = getattr(backbone, 'pre_norm', None)
    return (pre_norm(x) if pre_norm is not None else x), patch_resolution


class DilutableEncoderLayer(DilutableBlockMixin, TransformerEncoderLayer):
    """mmpretrain's ``TransformerEncoderLayer`` with a dilutable attention branch.

    Same parameters and state-dict keys as the parent. The attention residual is
    :func:`~nose_mm.models.dilution.dilute_residual` (formulas in
    :mod:`nose_mm.models.dilution`; at ``lam == 0`` Attn and LN1 are not
    called), then ``x = x + FFN(LN2(x))``. ``Attn`` includes the layer's layer
    scale (``gamma1``) and drop path, as in the parent. A *removed* layer has
    no ``ln1`` and no ``attn`` submodules at all (the pruned model of docs/method.md
    section 5). Layers are converted in place from those the parent backbone
    has built (``DilutableBlockMixin.convert``).
    """

    parent = TransformerEncoderLayer
    attention_parts = ('ln1', 'attn')

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
        x, patch_resolution = vit_embed(self, x)
        return self._forward_layers_merged(x, patch_resolution)


_TOP_LEVEL = {
    'cls_token': 'backbone.cls_token',
    'pos_embed': 'backbone.pos_embed',
    'patch_embed.proj.weight': 'backbone.patch_embed.projection.weight',
    'patch_embed.proj.bias': 'backbone.patch_embed.projection.bias',
    'norm.weight': 'backbone.ln1.weight',
    'norm.bias': 'backbone.ln1.bias',
    'head.weight': 'head.layers.head.weight',
    'head.bias': 'head.layers.head.bias',
}
# Block-relative timm name -> mmpretrain name (under backbone.layers.{i}.).
BLOCK_NAMES = {
    'norm1.weight': 'ln1.weight',
    'norm1.bias': 'ln1.bias',
    'attn.qkv.weight': 'attn.qkv.weight',
    'attn.qkv.bias': 'attn.qkv.bias',
    'attn.proj.weight': 'attn.proj.weight',
    'attn.proj.bias': 'attn.proj.bias',
    'ls1.gamma': 'attn.gamma1.weight',  # layer scale (DeiT-III / CaiT-style timm ViTs)
    'norm2.weight': 'ln2.weight',
    'norm2.bias': 'ln2.bias',
    'mlp.fc1.weight': 'ffn.layers.0.0.weight',
    'mlp.fc1.bias': 'ffn.layers.0.0.bias',
    'mlp.fc2.weight': 'ffn.layers.1.weight',
    'mlp.fc2.bias': 'ffn.layers.1.bias',
    'ls2.gamma': 'ffn.gamma2.weight',
}
_ATTENTION_PARTS = ('norm1.', 'attn.', 'ls1.', 'gamma_1')
SOURCE_BLOCK_KEY = re.compile(r'blocks\.(\d+)\.(.+)')


def rename_keys(state_dict: Dict[str, Tensor], names: Dict[str, str],
                out: Dict[str, Tensor]) -> Iterator[Tuple[str, Tensor]]:
    """Put the keys of ``names`` into ``out`` under their new names, in order; yield the rest."""
    for key, value in state_dict.items():
        if key in names:
            out[names[key]] = value
        else:
            yield key, value


def convert_timm_vit(state_dict: Dict[str, Tensor], allow_removed: bool = False,
                     block_names: Dict[str, str] = BLOCK_NAMES
                     ) -> Tuple['OrderedDict[str, Tensor]', List[int]]:
    """Map timm / DeiT ViT keys onto mmpretrain ``ImageClassifier`` keys.

    Args:
        state_dict (dict): timm-style ViT state dict (class-token models with
            a linear head: DeiT, ViT; no distillation token).
        allow_removed (bool): Accept blocks without ``norm1`` / ``attn``
            (pruned blocks of the reference code). Defaults to False.
        block_names (dict): Block-relative timm name -> mmpretrain name.
            Defaults to the ViT / DeiT table.

    Returns:
        tuple: The converted state dict and the sorted list of blocks without
        attention (empty unless ``allow_removed``).

    Raises:
        ValueError: Keys that have no mmpretrain counterpart (e.g. DeiT's
            ``dist_token`` / ``head_dist``), a block with attention parts
            half present, or pruned blocks when ``allow_removed`` is False.
    """
    out = OrderedDict()
    unknown = []
    blocks: Dict[int, set] = {}
    for key, value in rename_keys(state_dict, _TOP_LEVEL, out):
        match = SOURCE_BLOCK_KEY.fullmatch(key)
        if match and match.group(2) in block_names:
            index, name = int(match.group(1)), match.group(2)
            blocks.setdefault(index, set()).add(name)
            out[f'backbone.layers.{index}.{block_names[name]}'] = value
            continue
        unknown.append(key)
    if unknown:
        raise ValueError(f'keys with no mmpretrain ViT counterpart: {unknown[:10]}'
                         f'{" ..." if len(unknown) > 10 else ""} (distilled DeiT and other '
                         f'variants are not supported)')
    if not blocks:
        raise ValueError('no "blocks.<i>." keys: not a timm ViT state dict')
    removed = []
    for index, names in sorted(blocks.items()):
        attention = {n for n in names if n.startswith(_ATTENTION_PARTS)}
        if not attention:
            removed.append(index)
        elif not {'norm1.weight', 'attn.qkv.weight', 'attn.proj.weight'} <= attention:
            raise ValueError(f'block {index} has only part of its attention: '
                             f'{sorted(attention)}')
    missing_blocks = sorted(set(range(max(blocks) + 1)) - set(blocks))
    if missing_blocks:
        raise ValueError(f'blocks {missing_blocks} are missing entirely')
    if removed and not allow_removed:
        raise ValueError(f'blocks {removed} have no attention (norm1/attn): this is a pruned '
                         f'checkpoint; convert it with convert_lambda_vit / '
                         f'tools/convert/lambda_vit_to_nose.py')
    return out, removed


@register_family
class ViTFamily(BackboneFamily):
    """ViT and DeiT (no distillation token): ``NoseVisionTransformer``, mmpretrain's
    ``VisionTransformer``. The head reads the final-normed output of the last layer."""

    name = 'vit'
    backbone = NoseVisionTransformer
    accepts = (NoseVisionTransformer, VisionTransformer)
    rejects = (DistilledVisionTransformer, )
    layout = VIT_LAYOUT
    source_tag = 'timm/deit'
    display_prefix = 'ViT'
    arch_names = {
        'deit-tiny': 'DeiT-T', 'deit-t': 'DeiT-T',
        'deit-small': 'DeiT-S', 'deit-s': 'DeiT-S',
        'deit-base': 'DeiT-B', 'deit-b': 'DeiT-B',
        'small': 'ViT-S', 's': 'ViT-S',
        'base': 'ViT-B', 'b': 'ViT-B',
        'large': 'ViT-L', 'l': 'ViT-L',
        'huge': 'ViT-H', 'h': 'ViT-H',
    }

    def claims_source(self, state_dict):
        return any(SOURCE_BLOCK_KEY.fullmatch(k) for k in state_dict)

    def convert_source(self, state_dict):
        return convert_timm_vit(state_dict)[0]

    def check_readout(self, backbone, num_blocks):
        if backbone.out_indices[-1] != num_blocks - 1:
            raise ValueError(f'the head must read the last layer ({num_blocks - 1}); '
                             f'backbone out_indices are {backbone.out_indices}')

    def embed(self, backbone, inputs):
        return vit_embed(backbone, inputs)

    def ffn_norm(self, block: nn.Module) -> nn.Module:
        """The norm of the FFN input."""
        return block.ln2

    def attention_branch(self, block, state):
        return block.attn(block.ln1(state))

    def mlp_branch(self, block, state):
        return block.ffn(self.ffn_norm(block)(state), identity=torch.zeros_like(state))

    def readout(self, backbone, state, context):
        x = backbone.ln1(state) if backbone.final_norm else state
        out_type = backbone.out_type
        if out_type == 'raw':
            return x
        if out_type == 'cls_token':
            return x[:, 0]
        if out_type == 'featmap':
            return self.patch_map(backbone, x, context)
        if out_type == 'avg_featmap':
            return backbone.ln2(x[:, backbone.num_extra_tokens:].mean(dim=1))
        raise ValueError(f'unknown out_type {out_type!r} of {type(backbone).__name__}')

    def patch_map(self, backbone, state, context):
        patches = state[:, backbone.num_extra_tokens:]
        return patches.reshape(state.shape[0], *context, -1).permute(0, 3, 1, 2)
