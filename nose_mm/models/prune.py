"""Pruning a dilution-trained checkpoint at ``lam = 0`` (docs/method.md §5)."""
import os.path as osp
from collections import OrderedDict
from typing import Callable, Dict, List, Optional, Sequence

import torch

from nose_mm.checkpoint.files import load_checkpoint_file, save_checkpoint_file

from .dilution import META_COMPENSATE, META_DILUTED, META_LAM, META_REMOVED
from .family import family_of_state_dict, layout_of_state_dict, undecided_families

__all__ = [
    'attention_keys', 'prune_state_dict', 'prune_checkpoint', 'backbone_type_of',
    'pruned_backbone_cfg', 'convert_checkpoint_file'
]


def attention_keys(state_dict: Dict[str, torch.Tensor], layer: int,
                   prefix: str = 'backbone.') -> List[str]:
    """Keys of layer ``layer``'s pre-norm and attention (layout read from the keys).

    Args:
        state_dict (dict): ``{name: tensor}`` with mmpretrain backbone keys.
        layer (int): Global layer index.
        prefix (str): Prefix of the backbone keys. Defaults to ``'backbone.'``.

    Returns:
        list[str]: The keys (empty if the layer has none).
    """
    layout = layout_of_state_dict(state_dict, prefix)
    return [k for k, b in layout.block_keys(state_dict, prefix).items()
            if b.layer == layer and b.part in layout.attention_parts]


def prune_state_dict(state_dict: Dict[str, torch.Tensor], layers: Sequence[int],
                     prefix: str = 'backbone.') -> 'OrderedDict[str, torch.Tensor]':
    """Drop the pre-norm and attention parameters of ``layers``.

    Args:
        state_dict (dict): mmpretrain-style state dict of a registered family.
        layers (Sequence[int]): Non-negative global layer indices to prune.
        prefix (str): Prefix of the backbone keys (``''``: bare). Defaults to ``'backbone.'``.

    Returns:
        OrderedDict: A new state dict without those keys.

    Raises:
        ValueError: A negative or duplicated layer, or one without attention keys.
    """
    layers = list(layers)
    if len(set(layers)) != len(layers):
        raise ValueError(f'duplicate layers in {layers}')
    layout = layout_of_state_dict(state_dict, prefix)
    depths = layout.depths(state_dict, prefix)
    drop = set()
    for layer in layers:
        if isinstance(layer, bool) or not isinstance(layer, int) or layer < 0:
            raise ValueError(f'layer indices must be non-negative ints, got {layer!r}')
        keys = attention_keys(state_dict, layer, prefix)
        if not keys:
            raise ValueError(f'layer {layer} has no {layout.describe(layer, prefix, depths)} '
                             f'keys (layers 0..{sum(depths) - 1} exist): it is already pruned '
                             f'or out of range')
        drop.update(keys)
    return OrderedDict((k, v) for k, v in state_dict.items() if k not in drop)


def prune_checkpoint(checkpoint: dict, layers: Optional[Sequence[int]] = None,
                     prefix: str = 'backbone.') -> dict:
    """Prune a Runner-saved dilution checkpoint trained to ``lam = 0``.

    Args:
        checkpoint (dict): With ``state_dict`` and the ``meta`` DilutionHook writes.
        layers (Sequence[int], optional): Diluted layers to prune. Defaults to None (all).
        prefix (str): Prefix of the backbone keys. Defaults to ``'backbone.'``.

    Returns:
        dict: ``{'meta', 'state_dict'}`` (the meta updated; optimizer states dropped).

    Raises:
        ValueError: No dilution meta, ``lam > 0``, undiluted layers, a malformed checkpoint.
    """
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get('state_dict'), dict):
        raise ValueError('expected a Runner-saved checkpoint: a dict with "state_dict" and '
                         '"meta"')
    meta = checkpoint.get('meta')
    if not isinstance(meta, dict) or META_LAM not in meta:
        raise ValueError(
            f'refusing to prune: the checkpoint has no meta["{META_LAM}"], so nothing says '
            f'its attention layers were trained down to lam = 0. Only checkpoints saved by a '
            f'run with DilutionHook (which records lam) can be pruned.')
    lam = meta[META_LAM]
    if type(lam) not in (int, float):
        raise ValueError(f'refusing to prune: meta["{META_LAM}"] must be a number, got a '
                         f'{type(lam).__name__}')
    if lam != 0:
        raise ValueError(
            f'refusing to prune: the checkpoint was saved at lam = {lam:g} > 0, so its '
            f'diluted layers still add lam * Attn(LN1(x)) and dropping them would change the '
            f'model. Prune a checkpoint saved after the dilution schedule reached lam = 0 '
            f'(e.g. the last checkpoint; a "best" checkpoint chosen while lam > 0 is not a '
            f'prunable model).')
    for key in (META_DILUTED, META_COMPENSATE):
        if key not in meta:
            raise ValueError(f'refusing to prune: meta["{key}"] is missing (written by '
                             f'DilutionHook together with meta["{META_LAM}"])')
    for key in (META_DILUTED, META_REMOVED):
        value = meta.get(key, [])
        if not isinstance(value, (list, tuple)) or not all(
                type(i) is int and i >= 0 for i in value):
            raise ValueError(f'refusing to prune: meta["{key}"] must be a list of layer '
                             f'indices, got {str(value)[:80]}')
    diluted = list(meta[META_DILUTED])
    layers = sorted(int(i) for i in (diluted if layers is None else layers))
    if not layers:
        raise ValueError(f'nothing to prune: meta["{META_DILUTED}"] is empty and no layers '
                         f'were given')
    removed_before = list(meta.get(META_REMOVED, []))
    already = sorted(set(layers) & set(removed_before))
    if already:
        raise ValueError(f'layers {already} are already removed (meta["{META_REMOVED}"]='
                         f'{removed_before})')
    not_diluted = sorted(set(layers) - set(diluted))
    if not_diluted:
        raise ValueError(f'layers {not_diluted} were not diluted (they ran with lam = 1); '
                         f'only the diluted layers {diluted} can be pruned')
    state_dict = prune_state_dict(checkpoint['state_dict'], layers, prefix)
    new_meta = {**meta, META_REMOVED: sorted(set(removed_before) | set(layers)),
                META_DILUTED: [i for i in diluted if i not in layers], 'pruned_layers': layers}
    return {'meta': new_meta, 'state_dict': state_dict}


def backbone_type_of(state_dict: Dict[str, torch.Tensor],
                     prefix: str = 'backbone.') -> Optional[str]:
    """The nose_mm backbone type whose keys ``state_dict`` holds, or None if ambiguous."""
    family = family_of_state_dict(state_dict, prefix)
    return family.backbone.__name__ if family is not None else None


def pruned_backbone_cfg(meta: dict, state_dict: Dict[str, torch.Tensor],
                        prefix: str = 'backbone.') -> str:
    """The backbone config a pruned checkpoint with this ``meta`` loads into.

    Args:
        meta (dict): The pruned checkpoint's meta.
        state_dict (dict): Its state dict (the backbone type is read from its keys).
        prefix (str): Prefix of the backbone keys. Defaults to ``'backbone.'``.

    Returns:
        str: A ``dict(type=..., removed_layers=..., compensate=...)`` text.
    """
    backbone = backbone_type_of(state_dict, prefix)
    kind = repr(backbone)
    if backbone is None:
        names = ' or '.join(f.backbone.__name__ for f in undecided_families(state_dict, prefix))
        kind = f"<your model's backbone type: {names}, the keys do not tell>"
    return (f"dict(type={kind}, removed_layers={meta[META_REMOVED]}, "
            f"compensate={meta[META_COMPENSATE]})")


def convert_checkpoint_file(src: str, dst: str, convert: Callable[[dict], dict]) -> dict:
    """Read checkpoint ``src``, apply ``convert`` and save the result to ``dst``.

    Nothing is written when a step fails.

    Returns:
        dict: The converted checkpoint, as saved.

    Raises:
        OSError, ValueError: From reading, ``convert`` or writing.
    """
    same = osp.exists(src) and osp.exists(dst) and osp.samefile(src, dst)
    if same or osp.abspath(src) == osp.abspath(dst):
        raise ValueError(f'output {dst!r} is the input checkpoint; write to another file')
    converted = convert(load_checkpoint_file(src))
    save_checkpoint_file(converted, dst)
    return converted
