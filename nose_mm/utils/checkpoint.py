"""Reading checkpoint files: the one way nose_mm reads one (unpickling: :mod:`.safe_load`).

Every loader of the package (mmengine's local scheme in :mod:`.compat`, the
prune / convert tools, strict model loading) goes through
:func:`load_checkpoint_file`, so how files are unpickled is decided here once.
"""
import os.path as osp
from typing import Sequence

import torch

from .safe_load import safe_torch_load

__all__ = ['load_checkpoint_file', 'load_checkpoint_strict']


def load_checkpoint_file(path: str, map_location='cpu') -> dict:
    """Load a local checkpoint file into a dict, safely (:func:`.safe_load.safe_torch_load`).

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
    if not osp.exists(path):
        raise FileNotFoundError(f'checkpoint {path!r} does not exist')
    if osp.isdir(path):
        raise IsADirectoryError(f'checkpoint {path!r} is a folder, expected a file')
    # weights_only=True with nose_mm's allow-list, unless the user opted in
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
