"""Checkpoint files: the one way nose_mm reads (:mod:`.reader`) and writes one."""
import json
import os.path as osp
from collections import OrderedDict
from typing import Any, Sequence

import numpy as np

import torch

from ..utils.fileio import atomic_write
from .reader import SAFETENSORS_META_KEY, CheckpointLoadError, safe_torch_load

__all__ = ['load_checkpoint_file', 'save_checkpoint_file', 'state_dict_of']

#: Outputs named ``*.safetensors`` are written in that format (no pickle).
SAFETENSORS_SUFFIX = '.safetensors'


def load_checkpoint_file(path: str, map_location='cpu') -> dict:
    """Load a local checkpoint file (``.pth`` or ``.safetensors``) into a dict, safely.

    Args:
        path (str): A local checkpoint file.
        map_location: Same as :func:`torch.load`. Defaults to ``'cpu'``.

    Returns:
        dict: The checkpoint.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        IsADirectoryError: ``path`` is a folder.
        ValueError: Not a dict checkpoint, unreadable or unsafe (``CheckpointLoadError``).
    """
    path = osp.expanduser(path)
    checkpoint = safe_torch_load(path, map_location=map_location)
    if not isinstance(checkpoint, dict):
        raise CheckpointLoadError(
            f'cannot read checkpoint {path!r}: it holds a {type(checkpoint).__name__}, not a '
            f'checkpoint (a dict of weights, e.g. {{"state_dict": model.state_dict()}})')
    return checkpoint


def state_dict_of(checkpoint: dict, keys: Sequence[str] = ('state_dict', )) -> OrderedDict:
    """The state dict a checkpoint holds, a ``module.`` prefix removed, ``_metadata`` kept.

    Args:
        checkpoint (dict): A loaded checkpoint (or a bare state dict).
        keys (sequence of str): Keys to look under, in order. Defaults to ``('state_dict', )``.

    Returns:
        OrderedDict: The weights.
    """
    state = next((checkpoint[k] for k in keys if isinstance(checkpoint.get(k), dict)),
                 checkpoint)
    out = OrderedDict((k[len('module.'):] if k.startswith('module.') else k, v)
                      for k, v in state.items())
    metadata = getattr(state, '_metadata', None)
    if metadata is not None:
        out._metadata = metadata
    return out


def _json_value(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f'a {type(value).__name__} cannot be stored in a safetensors header')


def _save_safetensors(checkpoint: dict, path: str) -> None:
    from safetensors.torch import save_file
    if set(checkpoint) - {'state_dict', 'meta'} or 'state_dict' not in checkpoint:
        raise ValueError(f'a .safetensors output holds a state_dict and its meta only; this '
                         f'checkpoint has {sorted(checkpoint)}: save it as .pth')
    state = checkpoint['state_dict']
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ValueError(f'a .safetensors output holds tensors only; {bad[:3]} are not')
    try:
        meta = json.dumps(checkpoint.get('meta', {}), default=_json_value, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f'the checkpoint meta cannot be written to {path!r}: {exc}') from None
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={
        'format': 'pt', SAFETENSORS_META_KEY: meta}))


def save_checkpoint_file(checkpoint: dict, path: str) -> None:
    """Save ``checkpoint`` atomically: ``torch.save``, or safetensors for ``*.safetensors``.

    Args:
        checkpoint (dict): What to save (safetensors: ``state_dict`` and ``meta`` only).
        path (str): Destination file; its folder is created if needed.

    Raises:
        IsADirectoryError: ``path`` is a folder.
        ValueError: The checkpoint cannot be written as safetensors.
    """
    if osp.isdir(path):
        raise IsADirectoryError(f'output {path!r} is a folder, expected a file name')
    if str(path).endswith(SAFETENSORS_SUFFIX):
        _save_safetensors(checkpoint, path)
    else:
        atomic_write(path, lambda tmp: torch.save(checkpoint, tmp))
