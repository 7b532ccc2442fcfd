"""Checkpoint conversion: timm / official DeiT and the reference code into mmpretrain keys.

Official DeiT checkpoints (``{'model': state_dict}``) and timm ViT / DeiT
state dicts use ``blocks.{i}.norm1``, ``blocks.{i}.attn.qkv``... mmpretrain's
``ImageClassifier`` with a ViT backbone and ``VisionTransformerClsHead`` uses
``backbone.layers.{i}.ln1``, ``backbone.layers.{i}.attn.qkv``... and
``head.layers.head``. :func:`convert_timm_vit` maps one onto the other.

The reference code's pruned checkpoints are timm-style too, but their pruned
blocks have no ``norm1`` and no ``attn``; :func:`convert_lambda_vit` infers
those layers and records them as ``removed_layers`` in the meta.
"""
import re
from collections import OrderedDict
from typing import Dict, List, Tuple

import torch

from .dilution import META_COMPENSATE, META_DILUTED, META_REMOVED

__all__ = ['unwrap_state_dict', 'convert_timm_vit', 'convert_deit_checkpoint',
           'convert_lambda_vit']

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
_BLOCK = {
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
_ATTENTION_PARTS = ('norm1.', 'attn.', 'ls1.')
_BLOCK_KEY = re.compile(r'blocks\.(\d+)\.(.+)')


def unwrap_state_dict(checkpoint: dict) -> Dict[str, torch.Tensor]:
    """Return the state dict inside an official / timm / mmengine checkpoint.

    Accepts ``{'model': sd}`` (official DeiT, the reference code),
    ``{'state_dict': sd}`` (mmengine) and a bare ``sd``. A leading
    ``module.`` (saved from DDP) is stripped.

    Raises:
        ValueError: No tensor dict found.
    """
    if not isinstance(checkpoint, dict):
        raise ValueError(f'expected a dict checkpoint, got {type(checkpoint).__name__}')
    state_dict = checkpoint
    for key in ('model', 'state_dict'):
        if isinstance(checkpoint.get(key), dict):
            state_dict = checkpoint[key]
            break
    if not state_dict or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise ValueError('no state dict of tensors found (looked at "model", "state_dict" '
                         'and the top level)')
    return OrderedDict(
        (k[len('module.'):] if k.startswith('module.') else k, v) for k, v in state_dict.items())


def convert_timm_vit(state_dict: Dict[str, torch.Tensor], allow_removed: bool = False
                     ) -> Tuple['OrderedDict[str, torch.Tensor]', List[int]]:
    """Map timm / DeiT ViT keys onto mmpretrain ``ImageClassifier`` keys.

    Args:
        state_dict (dict): timm-style ViT state dict (class-token models with
            a linear head: DeiT, ViT; no distillation token).
        allow_removed (bool): Accept blocks without ``norm1`` / ``attn``
            (pruned blocks of the reference code). Defaults to False.

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
    for key, value in state_dict.items():
        if key in _TOP_LEVEL:
            out[_TOP_LEVEL[key]] = value
            continue
        match = _BLOCK_KEY.fullmatch(key)
        if match and match.group(2) in _BLOCK:
            index, name = int(match.group(1)), match.group(2)
            blocks.setdefault(index, set()).add(name)
            out[f'backbone.layers.{index}.{_BLOCK[name]}'] = value
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


def convert_deit_checkpoint(checkpoint: dict) -> dict:
    """Convert an official DeiT / timm ViT checkpoint to an mmpretrain one.

    Args:
        checkpoint (dict): ``{'model': sd}``, ``{'state_dict': sd}`` or ``sd``.

    Returns:
        dict: ``{'state_dict': ..., 'meta': {...}}`` for ``load_from`` or
        ``init_cfg=dict(type='Pretrained', checkpoint=..., prefix='backbone.')``.
    """
    state_dict, _ = convert_timm_vit(unwrap_state_dict(checkpoint))
    return {'state_dict': state_dict, 'meta': {'converted_from': 'timm/deit'}}


def convert_lambda_vit(checkpoint: dict, compensate: bool = True) -> dict:
    """Convert a reference-code (``lambda_vit``) pruned checkpoint.

    Blocks without ``norm1`` and ``attn`` weights become removed layers.

    Args:
        checkpoint (dict): ``{'model': sd}`` or a bare timm-style ``sd``.
        compensate (bool): Whether the model was trained with the compensated
            residual (the reference default; its pruned blocks compute
            ``2 * x``). Defaults to True.

    Returns:
        dict: ``{'state_dict': ..., 'meta': {'removed_layers': [...],
        'dilution_compensate': ..., 'dilution_layers': [], ...}}``. Build
        the model with ``removed_layers`` and ``compensate`` from the meta.
    """
    if not isinstance(compensate, bool):
        raise ValueError(f'compensate must be True or False, got {compensate!r}')
    state_dict, removed = convert_timm_vit(unwrap_state_dict(checkpoint), allow_removed=True)
    meta = {
        'converted_from': 'lambda_vit',
        META_REMOVED: removed,
        META_COMPENSATE: compensate,
        META_DILUTED: [],
    }
    return {'state_dict': state_dict, 'meta': meta}
