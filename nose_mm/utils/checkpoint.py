"""Reading checkpoint files: the one way nose_mm reads one (unpickling: :mod:`.safe_load`).

Every loader of the package (mmengine's local scheme in :mod:`.compat`, the
prune / convert tools, strict model loading) goes through
:func:`load_checkpoint_file`, so how files are unpickled is decided here once.
"""
import json
import os.path as osp
from typing import Any, Sequence

import numpy as np

import torch

from .fileio import atomic_write
from .safe_load import SAFETENSORS_META_KEY, safe_torch_load

__all__ = ['load_checkpoint_file', 'load_checkpoint_strict', 'save_checkpoint_file',
           'SAFETENSORS_SUFFIX']

#: Outputs named ``*.safetensors`` are written in that format (no pickle).
SAFETENSORS_SUFFIX = '.safetensors'


def load_checkpoint_file(path: str, map_location='cpu') -> dict:
    """Load a local checkpoint file into a dict, safely (:func:`.safe_load.safe_torch_load`).

    ``.pth`` files in any torch format and ``.safetensors`` files are read; a
    safetensors file written by :func:`save_checkpoint_file` gives back the
    ``{'state_dict', 'meta'}`` it was saved from.

    Args:
        path (str): A local checkpoint file.
        map_location: Same as :func:`torch.load`. Defaults to ``'cpu'``.

    Returns:
        dict: The checkpoint.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        IsADirectoryError: ``path`` is a folder.
        ValueError: The file is not a torch checkpoint holding a dict
            (``CheckpointLoadError``: unreadable, or refused as unsafe).
    """
    path = osp.expanduser(path)
    # nose_mm's restricted unpickler (or safetensors), unless the user trusts the file
    checkpoint = safe_torch_load(path, map_location=map_location)
    if not isinstance(checkpoint, dict):
        raise ValueError(f'{path!r} holds a {type(checkpoint).__name__}, expected a dict')
    return checkpoint


def _shorten(keys: Sequence[str], limit: int = 5) -> str:
    keys = list(keys)
    shown = ', '.join(keys[:limit])
    return shown + (f', ... (+{len(keys) - limit} more)' if len(keys) > limit else '')


def load_checkpoint_strict(model: torch.nn.Module, path: str) -> dict:
    """Load a checkpoint into ``model``; its keys must match the model's exactly.

    Accepts Runner-saved checkpoints (``state_dict`` key) and bare state dicts;
    a ``module.`` prefix (DDP) is removed.

    Args:
        model (nn.Module): The model built from the config.
        path (str): A local checkpoint file.

    Returns:
        dict: The loaded checkpoint (e.g. its ``meta``).

    Raises:
        FileNotFoundError: If ``path`` is not a file.
        ValueError: If keys are missing or unexpected, or shapes differ: one
            line naming the counts and the first keys.
    """
    checkpoint = load_checkpoint_file(path)
    state = checkpoint.get('state_dict', checkpoint)
    state = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:
        detail = ' '.join(str(e).split())
        raise ValueError(f'checkpoint {path!r} does not match the config\'s model: '
                         f'{detail}') from None
    if missing or unexpected:
        raise ValueError(f'checkpoint {path!r} does not match the config\'s model: '
                         f'{len(missing)} missing keys [{_shorten(missing)}]; '
                         f'{len(unexpected)} unexpected keys [{_shorten(unexpected)}]')
    return checkpoint


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


def save_checkpoint_file(checkpoint: dict, path: str, overwrite: bool = True) -> None:
    """Save ``checkpoint`` atomically: ``torch.save``, or safetensors for ``*.safetensors``.

    A ``.safetensors`` file holds the ``state_dict`` tensors, and ``meta``
    (removed layers, dilution, conversion source) as JSON in its header; it
    holds no pickle, so loading it cannot run code.

    Args:
        checkpoint (dict): What to save (for safetensors: ``state_dict`` and
            ``meta`` only).
        path (str): Destination file; its folder is created if needed.
        overwrite (bool): Allow replacing an existing file. Defaults to True.

    Raises:
        IsADirectoryError: ``path`` is a folder.
        FileExistsError: ``path`` exists and ``overwrite`` is False.
        ValueError: The checkpoint cannot be written as safetensors.
    """
    if osp.isdir(path):
        raise IsADirectoryError(f'output {path!r} is a folder, expected a file name')
    if osp.exists(path) and not overwrite:
        raise FileExistsError(f'output {path!r} exists')
    if str(path).endswith(SAFETENSORS_SUFFIX):
        _save_safetensors(checkpoint, path)
    else:
        atomic_write(path, lambda tmp: torch.save(checkpoint, tmp))
