"""The ViT / DeiT family: dilutable, prunable VisionTransformer, its converter, ViTFamily."""
import re
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from mmpretrain.models.backbones import DistilledVisionTransformer, VisionTransformer
from mmpretrain.models.backbones.vision_transformer import TransformerEncoderLayer
from mmpretrain.models.utils import resize_pos_embed
from torch import Tensor, nn

from nose_mm.registry import register_model

from ..dilution import dilute_residual
from ..family import BackboneFamily, register_family
from ..layouts import BlockLayout
from ..token_merge import attention_with_keys, bipartite_soft_matching, merge_weighted
from .base import DilutableBlockMixin, NoseBackboneMixin
from .token_merge_mixin import TokenMergeMixin

__all__ = ['NoseVisionTransformer', 'VIT_LAYOUT', 'ViTFamily', 'convert_timm_vit', 'vit_embed']

#: ViT / DeiT / DeiT-III blocks: ``layers.{i}.{ln1,attn,ln2,ffn}.*``, removable parts ``ln1``
#: and ``attn``; not a state dict with block-level layer scales ``layers.{i}.gamma_2`` (the
#: MAE / BEiT layout, ``nose_mae.py``), so the two layouts never both claim a file.
VIT_LAYOUT = BlockLayout('vit', r'layers\.(\d+)\.(ln1|attn|ln2|ffn)\.', ('ln1', 'attn'),
                         '{prefix}layers.{block}', excludes=r'layers\.\d+\.gamma_[12]$')


def vit_embed(backbone: nn.Module, x: Tensor, cls_first: bool = True) -> Tuple[Tensor, Any]:
    """A ViT's embedding: patches, class token, position embedding, pre-norm.

    Args:
        backbone (nn.Module): A ``VisionTransformer`` (or subclass).
        x (Tensor): Pre-processed images.
        cls_first (bool): Class token before (ViT) or after (DeiT-III) pos_embed. Defaults to True.

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
    """mmpretrain's ``TransformerEncoderLayer`` with a dilutable attention branch."""

    parent = TransformerEncoderLayer
    attention_parts = ('ln1', 'attn')


@register_model
class NoseVisionTransformer(TokenMergeMixin, NoseBackboneMixin, VisionTransformer):
    """mmpretrain's ``VisionTransformer`` whose attention layers can be diluted and removed.

    docs/method.md §4, §5; keys, archs and arguments stay mmpretrain's (docs/design.md).

    Args:
        arch (str | dict): An arch of ``VisionTransformer`` or a dict. Defaults to ``'base'``.
        *args: Further positional arguments of ``VisionTransformer``.
        diluted_layers, removed_layers, compensate, init_lam: See :class:`.NoseBackboneMixin`.
        drop_path_mode (str): ``'linear'`` (ramp) or ``'constant'``. Defaults to ``'linear'``.
        token_merge (dict, optional): ToMe, see :func:`.parse_token_merge`. Defaults to None.
        **kwargs: Keyword arguments of ``VisionTransformer``.

    Raises:
        ValueError: Bad layer indices, ``init_lam``, ``drop_path_mode`` or ``token_merge``.

    Example:
        >>> backbone = NoseVisionTransformer('deit-small', diluted_layers=[0, 2, 4])
        >>> backbone.set_dilution_lam(0.5)
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
        schedule = self.token_merge_schedule()
        prop_attn = self._token_merge.prop_attn
        size = None  # (B, T, 1): how many input tokens each token holds
        outs = []
        for i, layer in enumerate(self.layers):
            if i in schedule:
                # attention (mmpretrain's weights and sdpa, with sizes), residual, merge, MLP
                attn = layer.attn
                context, keys = attention_with_keys(
                    layer.ln1(x), attn.qkv, attn.num_heads,
                    size=size if prop_attn else None,
                    sdpa=attn.scaled_dot_product_attention,
                    dropout_p=attn.attn_drop if attn.training else 0.0)
                branch = attn.out_drop(attn.gamma1(attn.proj_drop(attn.proj(context))))
                x = dilute_residual(x, branch, layer.dilution_lam, layer.compensate)
                x, size = merge_weighted(bipartite_soft_matching(keys, schedule[i]), x, size)
                x = layer.ffn(layer.ln2(x), identity=x)
            else:
                x = layer(x)
            if i == len(self.layers) - 1 and self.final_norm:
                x = self.ln1(x)
            if i in self.out_indices:
                outs.append(self._format_output(x, patch_resolution))
        return tuple(outs)


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


def map_keys(state_dict: Dict[str, Tensor], names: Dict[str, str],
             place: Callable[[Dict[str, Tensor], str, Tensor], bool], what: str,
             hint: str = '') -> 'OrderedDict[str, Tensor]':
    """Rename the keys of ``names``, hand the others to ``place(out, key, value)``.

    Raises:
        ValueError: Naming the keys that are not in ``names`` and ``place`` refused.
    """
    out, unknown = OrderedDict(), []
    for key, value in state_dict.items():
        if key in names:
            out[names[key]] = value
        elif not place(out, key, value):
            unknown.append(key)
    if unknown:
        raise ValueError(f'keys with no mmpretrain {what} counterpart: {unknown[:10]}'
                         f'{" ..." if len(unknown) > 10 else ""}{hint}')
    return out


def short_arch_names(prefix: str, display: str, archs: Tuple[str, ...]) -> Dict[str, str]:
    """``{prefix + arch: 'display-A'}`` for each arch and its initial (``'small'``, ``'s'``)."""
    return {f'{prefix}{name}': f'{display}-{arch[0].upper()}'
            for arch in archs for name in (arch, arch[0])}


def convert_timm_vit(state_dict: Dict[str, Tensor], allow_removed: bool = False,
                     block_names: Dict[str, str] = BLOCK_NAMES
                     ) -> Tuple['OrderedDict[str, Tensor]', List[int]]:
    """Map timm / DeiT ViT keys onto mmpretrain ``ImageClassifier`` keys.

    Args:
        state_dict (dict): timm-style ViT state dict (no distillation token).
        allow_removed (bool): Accept blocks without ``norm1`` / ``attn``. Defaults to False.
        block_names (dict): Block-relative timm -> mmpretrain names. Defaults to ViT / DeiT's.

    Returns:
        tuple: The converted state dict and the sorted blocks without attention.

    Raises:
        ValueError: Unknown keys, half an attention, or pruned blocks without ``allow_removed``.
    """
    blocks: Dict[int, set] = {}

    def place(out, key, value):
        match = SOURCE_BLOCK_KEY.fullmatch(key)
        if match is None or match.group(2) not in block_names:
            return False
        index, name = int(match.group(1)), match.group(2)
        blocks.setdefault(index, set()).add(name)
        out[f'backbone.layers.{index}.{block_names[name]}'] = value
        return True

    out = map_keys(state_dict, _TOP_LEVEL, place, 'ViT',
                   ' (distilled DeiT and other variants are not supported)')
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
    """ViT and DeiT (``NoseVisionTransformer``, ``VisionTransformer``; no distillation)."""

    name = 'vit'
    backbone = NoseVisionTransformer
    accepts = (NoseVisionTransformer, VisionTransformer)
    rejects = (DistilledVisionTransformer, )
    layout = VIT_LAYOUT
    source_tag = 'timm/deit'
    display_prefix = 'ViT'
    arch_names = {**short_arch_names('deit-', 'DeiT', ('tiny', 'small', 'base')),
                  **short_arch_names('', 'ViT', ('small', 'base', 'large', 'huge'))}

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

    def output_blocks(self, backbone):
        return sorted(int(i) for i in backbone.out_indices)

    def output(self, backbone, index, state, context):
        last = index == len(backbone.layers) - 1
        return backbone._format_output(backbone.ln1(state) if last and backbone.final_norm
                                       else state, context)
