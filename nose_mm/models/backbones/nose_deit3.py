"""The DeiT-III family: mmpretrain's DeiT3 computing the official block, dilutable and prunable.

DeiT-III (timm ``deit3_*``, official ``models_v2``) has the ViT block keys plus
layer scales (``ls1.gamma`` / ``ls2.gamma`` in timm, ``gamma_1`` / ``gamma_2``
in the official release) and a position embedding without a class-token slot
(the class token is prepended after it): that is how its checkpoints are told
from ViT / DeiT ones (:class:`DeiT3Family`).
"""
from collections import OrderedDict
from typing import Dict, Optional

import torch
from mmpretrain.models.backbones import DeiT3
from mmpretrain.models.backbones.deit3 import DeiT3TransformerEncoderLayer
from torch import Tensor

from nose_mm.registry import register_model

from ..family import register_family
from .base import DilutableBlockMixin, NoseBackboneMixin
from .nose_vit import BLOCK_NAMES, VIT_LAYOUT, ViTFamily, convert_timm_vit, vit_embed

__all__ = ['DilutableDeiT3Layer', 'NoseDeiT3', 'DeiT3Family', 'convert_deit3']


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
    :func:`convert_deit3` it equals timm's
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


# The official DeiT-III release names the layer scales gamma_1 / gamma_2.
_DEIT3_BLOCK = dict(BLOCK_NAMES, gamma_1='attn.gamma1.weight', gamma_2='ffn.gamma2.weight')


def convert_deit3(state_dict: Dict[str, Tensor]) -> 'OrderedDict[str, Tensor]':
    """Map timm ``deit3_*`` / official DeiT-III keys onto ``NoseDeiT3`` classifier keys.

    Layer scales ``ls1.gamma`` / ``gamma_1`` become ``attn.gamma1.weight`` and
    ``ls2.gamma`` / ``gamma_2`` ``ffn.gamma2.weight``; the rest is as in
    :func:`~nose_mm.models.backbones.nose_vit.convert_timm_vit` (``pos_embed``
    has no class-token slot in both).

    Raises:
        ValueError: As ``convert_timm_vit``; also blocks without layer scales.
    """
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
    """DeiT-III: ``NoseDeiT3`` and mmpretrain's ``DeiT3``, a special case of the ViT
    family (same keys; layer scale inside ``attn`` / ``ffn``). The position
    embedding is added before the class token is prepended, there is no
    pre-norm, and the FFN input norm is the block's own: ``ln2`` for
    ``NoseDeiT3`` blocks (official DeiT-III), ``ln1`` for mmpretrain 1.2.0's
    ``DeiT3TransformerEncoderLayer``."""

    name = 'deit3'
    backbone = NoseDeiT3
    accepts = (NoseDeiT3, DeiT3)
    rejects = ()
    specialises = 'vit'
    source_tag = 'timm/deit3'
    arch_prefix = 'deit3'
    display_prefix = 'DeiT-III'
    arch_names = {
        'deit3-small': 'DeiT-III-S', 'deit3-s': 'DeiT-III-S', 'deit3-medium': 'DeiT-III-M',
        'deit3-m': 'DeiT-III-M', 'deit3-base': 'DeiT-III-B', 'deit3-b': 'DeiT-III-B',
        'deit3-large': 'DeiT-III-L', 'deit3-l': 'DeiT-III-L', 'deit3-huge': 'DeiT-III-H',
        'deit3-h': 'DeiT-III-H',
    }

    def claims_source(self, state_dict):
        return super().claims_source(state_dict) and bool(
            _pos_embed_has_no_cls_slot(state_dict, ''))

    def convert_source(self, state_dict):
        return convert_deit3(state_dict)

    def claims_checkpoint(self, state_dict, prefix):
        if not super().claims_checkpoint(state_dict, prefix):
            return False
        return _pos_embed_has_no_cls_slot(state_dict, prefix)

    def embed(self, backbone, inputs):
        return vit_embed(backbone, inputs, cls_first=False)

    def ffn_norm(self, block):
        # mmpretrain 1.2.0's own block normalises the FFN input with ln1
        return block.ln1 if type(block) is DeiT3TransformerEncoderLayer else block.ln2
