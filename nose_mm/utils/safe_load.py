"""Load checkpoint files without letting them run code.

Unpickling a ``.pth`` file can call any Python function the file names, so a
downloaded checkpoint could run code as soon as it is loaded.
:func:`safe_torch_load` loads with ``torch.load(weights_only=True)`` and allows,
besides torch's own tensor types, only the globals in :data:`SAFE_GLOBALS`:
the types that legitimate checkpoints hold (measured by
``tests/test_utils/test_safe_load.py`` on real files of each kind). A file that
names anything else is refused before anything it names runs (zip-format files,
i.e. everything torch >= 1.6 writes: before any of it is unpickled).

The opt-in for a trusted file (``weights_only=False``) is never on by default:
``--trust-checkpoint`` on the tools, ``trust_checkpoint = True`` in a config
(train/test tools), or ``NOSE_MM_TRUST_CHECKPOINT=1`` in the environment. The
flag and the config key set that variable, so it reaches mmengine's loaders
(``load_from``, ``--resume``, ``init_cfg=dict(type='Pretrained')``) and child
processes.
"""
import argparse
import importlib
import os
import os.path as osp
import pickle
import re
import zipfile
from typing import Any, List, Optional

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer

__all__ = [
    'SAFE_GLOBALS', 'TRUST_ENV', 'CheckpointLoadError', 'UnsafeCheckpointError',
    'safe_torch_load', 'trust_from_env', 'add_trust_checkpoint_arg', 'apply_trust_checkpoint'
]

TRUST_ENV = 'NOSE_MM_TRUST_CHECKPOINT'
_OPT_IN = (f'pass --trust-checkpoint (or set {TRUST_ENV}=1, or trust_checkpoint = True in '
           'the config) if you trust this file')
_TRUE, _FALSE = ('1', 'true', 'yes', 'on'), ('', '0', 'false', 'no', 'off')


def _numpy_globals() -> List[Any]:
    """numpy arrays, scalars and dtypes, under the numpy 1.x and 2.x module names."""
    try:
        multiarray = importlib.import_module('numpy._core.multiarray')
    except ImportError:  # numpy < 2
        multiarray = importlib.import_module('numpy.core.multiarray')
    found = [np.ndarray, np.dtype]
    for func in (multiarray._reconstruct, multiarray.scalar):
        # A file names the module of the numpy that saved it.
        found += [(func, f'{pkg}.multiarray.{func.__name__}')
                  for pkg in ('numpy.core', 'numpy._core')]
    # Unpickling a dtype builds an instance of its class (numpy >= 1.25).
    found += sorted({type(np.dtype(c)) for c in '?bhilqBHILQefdg'} - {np.dtype},
                    key=lambda t: t.__name__)
    return found


_STATISTICS = ('min', 'max', 'current', 'mean')


def _history_buffer_method(owner: Any, name: str) -> Any:
    """``getattr`` narrowed to what Runner checkpoints use it for.

    A ``HistoryBuffer`` pickles its statistics methods as
    ``getattr(HistoryBuffer, 'mean')``; any other ``getattr`` is refused.
    """
    if owner is not HistoryBuffer or name not in _STATISTICS:
        raise pickle.UnpicklingError(
            f'it calls getattr({getattr(owner, "__name__", type(owner).__name__)}, {name!r}); '
            f'only getattr(HistoryBuffer, one of {list(_STATISTICS)}) is allowed')
    return getattr(owner, name)


#: The one allow-list: every non-torch global that a legitimate checkpoint holds.
#: Runner checkpoints (mmengine): message-hub ``HistoryBuffer`` (its statistics
#: methods pickled through ``getattr``) with numpy arrays / scalars / dtypes;
#: reference (lambda_vit / DeiT / timm) training checkpoints: ``args`` is an
#: ``argparse.Namespace``. Official DeiT / timm / mmpretrain / mmseg files and
#: nose_mm's own outputs need nothing beyond torch's defaults.
SAFE_GLOBALS: List[Any] = [
    HistoryBuffer, (_history_buffer_method, 'builtins.getattr'), argparse.Namespace,
    *_numpy_globals()
]


class CheckpointLoadError(ValueError):
    """A checkpoint file cannot be read (one-line message naming the file)."""


class UnsafeCheckpointError(CheckpointLoadError):
    """A checkpoint holds something not allowed in a safely loaded checkpoint."""


def trust_from_env() -> bool:
    """Whether ``NOSE_MM_TRUST_CHECKPOINT`` opts in to unrestricted loading.

    Raises:
        ValueError: The variable is set to something other than 1/0, true/false,
            yes/no or on/off.
    """
    value = os.environ.get(TRUST_ENV, '').strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f'{TRUST_ENV}={os.environ[TRUST_ENV]!r} is not allowed; '
                     f'use 1 (trust checkpoints) or 0')


def _unsafe_error(path: str, names) -> UnsafeCheckpointError:
    held = ', '.join(repr(n) for n in names)
    return UnsafeCheckpointError(
        f'checkpoint {path!r} holds {held}, which is not allowed in a safely loaded '
        f'checkpoint; {_OPT_IN}')


def _refusal(path: str, exc: pickle.UnpicklingError) -> CheckpointLoadError:
    """Turn torch's weights-only error into one line naming the file."""
    reason = str(exc).split('WeightsUnpickler error:', 1)[-1].strip().split('\n')[0]
    found = re.search(r'Unsupported global: GLOBAL (\S+) was not', reason)
    if found:
        name = found.group(1)
        return _unsafe_error(path, ['builtins.' + name if '.' not in name else name])
    return UnsafeCheckpointError(f'checkpoint {path!r} cannot be loaded safely ({reason}); '
                                 f'{_OPT_IN}')


def _check_file(path: str) -> None:
    if not osp.exists(path):
        raise FileNotFoundError(f'checkpoint {path!r} does not exist')
    if osp.isdir(path):
        raise IsADirectoryError(f'checkpoint {path!r} is a folder, expected a file')
    with open(path, 'rb') as f:
        head = f.read(4)
    if not head:
        raise CheckpointLoadError(f'cannot read checkpoint {path!r}: the file is empty')
    # torch.save writes a zip archive (torch >= 1.6) or a pickle (older files).
    if head[:2] != b'PK' and head[:1] != b'\x80':
        raise CheckpointLoadError(f'cannot read checkpoint {path!r}: not a torch checkpoint '
                                  f'(neither a zip archive nor a pickle)')


def safe_torch_load(path: str, map_location: Any = None, trust: Optional[bool] = None) -> Any:
    """``torch.load`` a local file, allowing only :data:`SAFE_GLOBALS` unless trusted.

    Args:
        path (str): Checkpoint file.
        map_location: Same as :func:`torch.load`. Defaults to None.
        trust (bool, optional): Load with ``weights_only=False`` (the file can
            run code). Defaults to None: :func:`trust_from_env`.

    Returns:
        The unpickled object.

    Raises:
        FileNotFoundError / IsADirectoryError: ``path`` is not a file.
        UnsafeCheckpointError: The file holds a type not in
            :data:`SAFE_GLOBALS`; nothing it names has run.
        CheckpointLoadError: The file is empty, truncated or not a checkpoint.
    """
    path = osp.expanduser(str(path))
    _check_file(path)
    if trust is None:
        trust = trust_from_env()
    try:
        if trust:
            return torch.load(path, map_location=map_location, weights_only=False)
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            if zipfile.is_zipfile(path):
                # Names every global the file holds without running any of it.
                unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
                if unsafe:
                    raise _unsafe_error(path, sorted(unsafe))
            return torch.load(path, map_location=map_location, weights_only=True)
    except CheckpointLoadError:
        raise
    except pickle.UnpicklingError as exc:
        if not trust and 'WeightsUnpickler error' in str(exc):
            raise _refusal(path, exc) from None
        raise CheckpointLoadError(f'cannot read checkpoint {path!r}: {_first_line(exc)}') from exc
    except (RuntimeError, EOFError, ValueError, OSError) as exc:
        raise CheckpointLoadError(f'cannot read checkpoint {path!r} (truncated or corrupt?): '
                                  f'{_first_line(exc)}') from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.split('\n')[0] if text else type(exc).__name__


def add_trust_checkpoint_arg(parser: argparse.ArgumentParser) -> None:
    """Add ``--trust-checkpoint`` to a tool that reads checkpoints."""
    parser.add_argument(
        '--trust-checkpoint', action='store_true',
        help='load checkpoints without the safe allow-list (unpickling can run code: '
        f'only for files you trust); same as {TRUST_ENV}=1')


def apply_trust_checkpoint(flag: bool = False, cfg: Any = None) -> bool:
    """Apply the opt-in of ``--trust-checkpoint`` / ``cfg.trust_checkpoint``.

    Either one sets ``NOSE_MM_TRUST_CHECKPOINT=1`` in this process (so mmengine's
    loaders and child processes see it); the variable set by the user counts too.

    Args:
        flag (bool): The tool's ``--trust-checkpoint``. Defaults to False.
        cfg (Config, optional): A config whose top-level ``trust_checkpoint``
            (True or False) is honoured. Defaults to None.

    Returns:
        bool: Whether checkpoints are trusted.

    Raises:
        ValueError: ``cfg.trust_checkpoint`` is not a bool, or the environment
            variable has a value that is not allowed.
    """
    from_cfg = False if cfg is None else cfg.get('trust_checkpoint', False)
    if not isinstance(from_cfg, bool):
        raise ValueError(f'config key trust_checkpoint must be True or False, got {from_cfg!r}')
    if flag or from_cfg:
        os.environ[TRUST_ENV] = '1'
    return trust_from_env()
