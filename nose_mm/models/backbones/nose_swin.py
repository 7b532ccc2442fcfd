"""The Swin family: dilutable, prunable SwinTransformer, its converter, :class:`SwinFamily`."""
import re
from collections import OrderedDict
from typing import Dict

import torch
import torch.utils.checkpoint as cp
from mmpretrain.models.backbones import SwinTransformer
from mmpretrain.models.backbones.swin_transformer import SwinBlock
from mmpretrain.models.utils import resize_pos_embed
from torch import Tensor

from nose_mm.registry import register_model

from ..family import BackboneFamily, register_family
from ..layouts import BlockLayout
from .base import DilutableBlockMixin, NoseBackboneMixin
from .nose_vit import map_keys, short_arch_names

__all__ = ['NoseSwinTransformer', 'SwinFamily']

#: Swin blocks: ``stages.{s}.blocks.{j}.*``, removable parts ``norm1`` and ``attn``.
SWIN_LAYOUT = BlockLayout('swin', r'stages\.(\d+)\.blocks\.(\d+)\.([A-Za-z0-9_]+)\.',
                          ('norm1', 'attn'), '{prefix}stages.{block}')


class DilutableSwinBlock(DilutableBlockMixin, SwinBlock):
    """mmpretrain's ``SwinBlock`` with a dilutable attention; same keys as the parent."""

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
    """mmpretrain's ``SwinTransformer`` whose attention blocks can be diluted and removed.

    A *layer* is a Swin block, indexed globally in stage order (docs/design.md).

    Args:
        arch (str | dict): As in ``SwinTransformer`` (``'tiny'``...). Defaults to ``'tiny'``.
        *args: Further positional arguments of ``SwinTransformer``.
        diluted_layers, removed_layers, compensate, init_lam: See :class:`.NoseBackboneMixin`.
        **kwargs: Keyword arguments of ``SwinTransformer``.

    Raises:
        ValueError: Bad layer indices or ``init_lam``.
    """

    block_layout = SWIN_LAYOUT
    block_class = DilutableSwinBlock

    def dilutable_blocks(self):
        return [block for stage in self.stages for block in stage.blocks]

    def block_depths(self):
        return tuple(len(stage.blocks) for stage in self.stages)

    def _upgrade_legacy_keys(self, state_dict, prefix, local_metadata):
        # SwinTransformer upgrades version < 2 files (the last stage's norm saved as
        # ``norm``) and version < 3 ones (a stored ``attn_mask`` buffer) only when its
        # class is exactly SwinTransformer; the same upgrade, for the keys under prefix.
        version = local_metadata.get('version')
        if version is not None and version >= 3:
            return
        if version is None or version < 2:
            old, new = f'{prefix}norm.', f'{prefix}norm{len(self.stages) - 1}.'
            for key in [k for k in state_dict if k.startswith(old)]:
                if new + key[len(old):] not in state_dict:  # both: left to the strict fit
                    state_dict[new + key[len(old):]] = state_dict.pop(key)
        for key in [k for k in state_dict
                    if k.startswith(prefix) and k.rsplit('.', 1)[-1] == 'attn_mask']:
            del state_dict[key]


# Swin: block-relative timm / official name -> mmpretrain name (under stages.{s}.blocks.{j}.).
_SWIN_BLOCK = {
    'norm1.weight': 'norm1.weight',
    'norm1.bias': 'norm1.bias',
    'attn.qkv.weight': 'attn.w_msa.qkv.weight',
    'attn.qkv.bias': 'attn.w_msa.qkv.bias',
    'attn.proj.weight': 'attn.w_msa.proj.weight',
    'attn.proj.bias': 'attn.w_msa.proj.bias',
    'attn.relative_position_bias_table': 'attn.w_msa.relative_position_bias_table',
    'norm2.weight': 'norm2.weight',
    'norm2.bias': 'norm2.bias',
    'mlp.fc1.weight': 'ffn.layers.0.0.weight',
    'mlp.fc1.bias': 'ffn.layers.0.0.bias',
    'mlp.fc2.weight': 'ffn.layers.1.weight',
    'mlp.fc2.bias': 'ffn.layers.1.bias',
}
# Derived buffers of timm / official Swin, rebuilt rather than copied.
_SWIN_DERIVED = ('attn.relative_position_index', 'attn_mask')
_SWIN_TOP = {
    'patch_embed.proj.weight': 'backbone.patch_embed.projection.weight',
    'patch_embed.proj.bias': 'backbone.patch_embed.projection.bias',
    'patch_embed.norm.weight': 'backbone.patch_embed.norm.weight',
    'patch_embed.norm.bias': 'backbone.patch_embed.norm.bias',
    'head.weight': 'head.fc.weight',  # official
    'head.bias': 'head.fc.bias',
    'head.fc.weight': 'head.fc.weight',  # timm >= 0.9
    'head.fc.bias': 'head.fc.bias',
}
_SWIN_KEY = re.compile(r'layers\.(\d+)\.(?:blocks\.(\d+)\.(.+)|downsample\.(.+))')


def swin_relative_position_index(window_size: int) -> torch.Tensor:
    """The relative position index of a ``window_size`` x ``window_size`` window."""
    coords = torch.stack(torch.meshgrid(torch.arange(window_size), torch.arange(window_size),
                                        indexing='ij')).flatten(1)  # 2, N
    relative = (coords[:, :, None] - coords[:, None, :]) + (window_size - 1)  # 2, N, N
    return relative[0] * (2 * window_size - 1) + relative[1]


def _merge_order(tensor: torch.Tensor) -> torch.Tensor:
    """Reorder a patch-merging input axis from timm / official order to mmcv's."""
    channels = tensor.shape[-1] // 4
    lead = tensor.shape[:-1]
    grouped = tensor.reshape(*lead, 4, channels)[..., [0, 2, 1, 3], :]
    return grouped.transpose(-1, -2).reshape(*lead, 4 * channels)


def convert_swin(state_dict: Dict[str, Tensor]) -> 'OrderedDict[str, Tensor]':
    """Map timm / official Swin keys onto ``NoseSwinTransformer`` classifier keys."""
    downsample: Dict[int, Dict[str, Tensor]] = {}
    stages = set()  # stages with block weights

    def place(out, key, value):
        match = _SWIN_KEY.fullmatch(key)
        if match is None:
            return key in ('norm.weight', 'norm.bias')  # the last stage's, placed below
        stage = int(match.group(1))
        if match.group(4) is not None:
            downsample.setdefault(stage, {})[match.group(4)] = value
            return True
        block, name = int(match.group(2)), match.group(3)
        if name not in _SWIN_BLOCK:
            return name.endswith(_SWIN_DERIVED)
        stages.add(stage)
        head = f'backbone.stages.{stage}.blocks.{block}.'
        out[head + _SWIN_BLOCK[name]] = value
        if name == 'attn.relative_position_bias_table':
            window = round((value.shape[0]**0.5 + 1) / 2)
            out[head + 'attn.w_msa.relative_position_index'] = swin_relative_position_index(window)
        return True

    out = map_keys(state_dict, _SWIN_TOP, place, 'Swin')
    if not stages:
        raise ValueError('no "layers.<s>.blocks.<j>." keys: not a Swin state dict')
    num_stages = max(stages) + 1
    # official: stages 0..n-2 merge at their end; timm >= 0.9: stages 1..n-1 at their start
    shift = 1 if 0 not in downsample and downsample else 0
    if downsample and sorted(downsample) != [s + shift for s in range(num_stages - 1)]:
        raise ValueError(f'patch merging found in stages {sorted(downsample)} of '
                         f'{num_stages}: expected 0..{num_stages - 2} (official) or '
                         f'1..{num_stages - 1} (timm)')
    for stage, params in sorted(downsample.items()):
        for name, value in params.items():
            if name not in ('reduction.weight', 'norm.weight', 'norm.bias'):
                raise ValueError(f'unknown patch merging key "layers.{stage}.downsample.'
                                 f'{name}"')
            out[f'backbone.stages.{stage - shift}.downsample.{name}'] = _merge_order(value)
    for name in ('weight', 'bias'):
        if f'norm.{name}' in state_dict:
            out[f'backbone.norm{num_stages - 1}.{name}'] = state_dict[f'norm.{name}']
    return out


@register_family
class SwinFamily(BackboneFamily):
    """Swin (``NoseSwinTransformer``, ``SwinTransformer``); state ``(tokens, hw_shape)``."""

    name = 'swin'
    backbone = NoseSwinTransformer
    accepts = (NoseSwinTransformer, SwinTransformer)
    layout = SWIN_LAYOUT
    source_tag = 'timm/swin'
    arch_prefix = 'swin'
    display_prefix = 'Swin'
    arch_names = short_arch_names('swin-', 'Swin', ('tiny', 'small', 'base', 'large'))

    def claims_source(self, state_dict):
        return any(_SWIN_KEY.fullmatch(k) for k in state_dict)

    def convert_source(self, state_dict):
        return convert_swin(state_dict)

    def blocks(self, backbone):
        return [block for stage in backbone.stages for block in stage.blocks]

    def check_readout(self, backbone, num_blocks):
        last = len(backbone.stages) - 1
        if list(backbone.out_indices) != [last]:
            raise ValueError(f'the head must read only the last stage ({last}); backbone '
                             f'out_indices are {list(backbone.out_indices)}')

    def embed(self, backbone, inputs):
        x, hw_shape = backbone.patch_embed(inputs)
        if backbone.use_abs_pos_embed:
            x = x + resize_pos_embed(backbone.absolute_pos_embed, backbone.patch_resolution,
                                     hw_shape, backbone.interpolate_mode,
                                     backbone.num_extra_tokens)
        return (backbone.drop_after_pos(x), hw_shape), hw_shape

    def tokens(self, state):
        return state[0]

    def with_tokens(self, state, tokens):
        return (tokens, state[1])

    def attention_branch(self, block, state):
        return block.attn(block.norm1(state[0]), state[1])

    def mlp_branch(self, block, state):
        return block.ffn(block.norm2(state[0]), identity=torch.zeros_like(state[0]))

    def run_block(self, block, state):
        return (block(*state), state[1])

    def exits(self, backbone):
        out, last = {}, -1
        for stage in backbone.stages:
            last += len(stage.blocks)
            if stage.downsample is not None:
                out[last] = lambda state, merge=stage.downsample: merge(*state)
        return out

    def output_blocks(self, backbone):
        if backbone.out_after_downsample:
            raise ValueError('dense outputs of a Swin with out_after_downsample=True are not '
                             'supported (selection reads each stage output before its merging)')
        ends = [sum(len(s.blocks) for s in backbone.stages[:i + 1]) - 1
                for i in range(len(backbone.stages))]
        return sorted(ends[int(i)] for i in backbone.out_indices)

    def output(self, backbone, index, state, context):
        ends = [sum(len(s.blocks) for s in backbone.stages[:i + 1]) - 1
                for i in range(len(backbone.stages))]
        stage = ends.index(index)
        tokens, hw_shape = state
        return self.patch_map(backbone, (getattr(backbone, f'norm{stage}')(tokens), hw_shape),
                              context).contiguous()

    def readout(self, backbone, state, context):
        norm = getattr(backbone, f'norm{len(backbone.stages) - 1}')
        return self.patch_map(backbone, (norm(state[0]), state[1]), context).contiguous()

    def patch_map(self, backbone, state, context):
        tokens, hw_shape = state
        return tokens.view(tokens.shape[0], *hw_shape, tokens.shape[-1]).permute(0, 3, 1, 2)
