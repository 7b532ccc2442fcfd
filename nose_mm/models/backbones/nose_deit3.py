"""The DeiT-III family: DeiT3 with the official block, dilutable, prunable; its converter."""
from collections import OrderedDict
from typing import Dict, Optional

import torch
from mmpretrain.models.backbones import DeiT3
from mmpretrain.models.backbones.deit3 import DeiT3TransformerEncoderLayer
from torch import Tensor

from nose_mm.registry import register_model

from ..family import register_family
from .base import DilutableBlockMixin, NoseBackboneMixin
from .nose_vit import (BLOCK_NAMES, VIT_LAYOUT, ViTFamily, convert_timm_vit, short_arch_names,
                       vit_embed)

__all__ = ['NoseDeiT3', 'DeiT3Family']


class DilutableDeiT3Layer(DilutableBlockMixin, DeiT3TransformerEncoderLayer):
    """The official DeiT-III block (FFN norm ``ln2``) with a dilutable attention branch."""

    parent = DeiT3TransformerEncoderLayer
    attention_parts = ('ln1', 'attn')


@register_model
class NoseDeiT3(NoseBackboneMixin, DeiT3):
    """mmpretrain's ``DeiT3`` with the official block (FFN norm ``ln2``), dilutable and prunable.

    Args:
        arch (str | dict): As in ``DeiT3`` (``'small'``, ``'medium'``...). Defaults to ``'base'``.
        *args: Further positional arguments of ``DeiT3``.
        diluted_layers, removed_layers, compensate, init_lam: See :class:`.NoseBackboneMixin`.
        **kwargs: Keyword arguments of ``DeiT3``.

    Raises:
        ValueError: Bad layer indices or ``init_lam``.
    """

    block_layout = VIT_LAYOUT
    block_class = DilutableDeiT3Layer


# The official DeiT-III release names the layer scales gamma_1 / gamma_2.
_DEIT3_BLOCK = dict(BLOCK_NAMES, gamma_1='attn.gamma1.weight', gamma_2='ffn.gamma2.weight')


def convert_deit3(state_dict: Dict[str, Tensor]) -> 'OrderedDict[str, Tensor]':
    """Map timm / official DeiT-III keys onto ``NoseDeiT3`` classifier keys (or ValueError)."""
    out, _ = convert_timm_vit(state_dict, block_names=_DEIT3_BLOCK)
    scaled = {k for k in out if k.endswith(('attn.gamma1.weight', 'ffn.gamma2.weight'))}
    num_blocks = len({k.split('.')[2] for k in out if k.startswith('backbone.layers.')})
    if len(scaled) != 2 * num_blocks:
        raise ValueError(f'a DeiT-III checkpoint has two layer scales per block (ls1/ls2 or '
                         f'gamma_1/gamma_2); found {len(scaled)} for {num_blocks} blocks')
    return out


def _pos_embed_has_no_cls_slot(state_dict: Dict[str, Tensor], prefix: str) -> Optional[bool]:
    """True when ``pos_embed`` has a square number of tokens although a class token
    exists (DeiT-III); None without a class token (then the shapes cannot tell)."""
    if f'{prefix}cls_token' not in state_dict:
        return None
    pos_embed = state_dict.get(f'{prefix}pos_embed')
    if not isinstance(pos_embed, torch.Tensor) or pos_embed.dim() != 3:
        return False
    side = round(pos_embed.shape[1]**0.5)
    return side * side == pos_embed.shape[1]


@register_family
class DeiT3Family(ViTFamily):
    """DeiT-III (``NoseDeiT3``, ``DeiT3``): a special case of the ViT family."""

    name = 'deit3'
    backbone = NoseDeiT3
    accepts = (NoseDeiT3, DeiT3)
    specialises = 'vit'
    source_tag = 'timm/deit3'
    arch_prefix = 'deit3'
    display_prefix = 'DeiT-III'
    arch_names = short_arch_names('deit3-', 'DeiT-III',
                                  ('small', 'medium', 'base', 'large', 'huge'))

    def claims_source(self, state_dict):
        return super().claims_source(state_dict) and bool(
            _pos_embed_has_no_cls_slot(state_dict, ''))

    def convert_source(self, state_dict):
        return convert_deit3(state_dict)

    def claims_checkpoint(self, state_dict, prefix):
        return (super().claims_checkpoint(state_dict, prefix)
                and _pos_embed_has_no_cls_slot(state_dict, prefix))

    def embed(self, backbone, inputs):
        return vit_embed(backbone, inputs, cls_first=False)

    def ffn_norm(self, block):
        # mmpretrain 1.2.0's own block normalises the FFN input with ln1
        return block.ln1 if type(block) is DeiT3TransformerEncoderLayer else block.ln2
