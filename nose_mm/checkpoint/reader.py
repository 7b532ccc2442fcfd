"""Load checkpoint files without letting them run code; trust opt-in (docs/design.md)."""
import argparse
import contextlib
import json
import os
import os.path as osp
import stat
import struct
import tarfile
import zipfile
from typing import Any, Iterable, Iterator, List, Optional, Sequence

import torch

from .unpickler import (PICKLE_MODULE, UnsafeContentError, UnsafeGlobalsError,
                            check_plain_data)

__all__ = [
    'TRUST_ENV', 'CheckpointLoadError', 'UnsafeCheckpointError', 'safe_torch_load',
    'trust_from_env', 'is_trusted', 'trust_scope', 'trusted_files', 'add_trust_checkpoint_arg',
    'apply_trust_checkpoint', 'checkpoint_format'
]

TRUST_ENV = 'NOSE_MM_TRUST_CHECKPOINT'
_OPT_IN = (f'pass --trust-checkpoint (or set {TRUST_ENV}=1, or trust_checkpoint = True in '
           'the config) if you trust this file')
_TRUE, _FALSE = ('1', 'true', 'yes', 'on'), ('', '0', 'false', 'no', 'off')
#: The bare ``--trust-checkpoint`` flag: trust the tool's own checkpoint argument(s).
TRUST_NAMED = '<the checkpoint argument of this tool>'


class CheckpointLoadError(ValueError):
    """A checkpoint file cannot be read (one-line message naming the file)."""


class UnsafeCheckpointError(CheckpointLoadError):
    """A checkpoint holds something not allowed in a safely loaded checkpoint."""


def trust_from_env() -> bool:
    """Whether ``NOSE_MM_TRUST_CHECKPOINT`` opts in to unrestricted loading.

    Raises:
        ValueError: The variable is set to something other than 1/0, true/false, yes/no or on/off.
    """
    value = os.environ.get(TRUST_ENV, '').strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f'{TRUST_ENV}={os.environ[TRUST_ENV]!r} is not allowed; '
                     f'use 1 (trust checkpoints) or 0')


# The files trusted by the tool runs in progress: one set per open trust_scope.
_TRUSTED: List[set] = [set()]


def _key(path: str) -> str:
    return osp.realpath(osp.expanduser(str(path)))


def is_trusted(path: str) -> bool:
    """Whether ``path`` is trusted: named by the running tool, or by the environment."""
    return trust_from_env() or any(_key(path) in files for files in _TRUSTED)


@contextlib.contextmanager
def trust_scope() -> Iterator[set]:
    """A scope for trusted files, forgotten when it closes (each tool run opens one)."""
    files: set = set()
    _TRUSTED.append(files)
    try:
        yield files
    finally:
        _TRUSTED.remove(files)


@contextlib.contextmanager
def trusted_files(paths: Iterable[str]) -> Iterator[set]:
    """Trust exactly ``paths`` (resolved) while the block runs."""
    with trust_scope() as files:
        files.update(_key(p) for p in paths)
        yield files


def _describe_path(path: str) -> str:
    return repr(str(path))


def _unsafe_error(path: str, names: Sequence[str]) -> UnsafeCheckpointError:
    held = ', '.join(repr(n) for n in names)
    return UnsafeCheckpointError(
        f'checkpoint {_describe_path(path)} holds {held}, which is not allowed in a safely '
        f'loaded checkpoint; {_OPT_IN}')


def _first_line(exc: BaseException, limit: int = 300) -> str:
    text = str(exc).strip()
    line = text.split('\n')[0] if text else type(exc).__name__
    return line if len(line) <= limit else line[:limit] + ' ...'  # file values can be huge


def _open_regular(path: str):
    """Open ``path`` for reading only if it is a regular file (never blocks on a FIFO)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f'checkpoint {_describe_path(path)} does not exist') from None
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(f'checkpoint {_describe_path(path)} is a folder, expected a file')
    if not stat.S_ISREG(info.st_mode):
        raise CheckpointLoadError(
            f'cannot read checkpoint {_describe_path(path)}: not a regular file (a FIFO, socket '
            f'or device); pass the checkpoint file itself')
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, 'O_CLOEXEC', 0))
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # replaced since the stat above
        os.close(fd)
        raise CheckpointLoadError(f'cannot read checkpoint {_describe_path(path)}: not a '
                                  f'regular file')
    os.set_blocking(fd, True)
    return os.fdopen(fd, 'rb')


_SAFETENSORS_HEADER_LIMIT = 100 * 1024 * 1024


def checkpoint_format(head: bytes, size: int) -> Optional[str]:
    """``'zip'``, ``'pickle'``, ``'safetensors'`` or None, from a file's first 9 bytes."""
    if len(head) >= 9 and head[8:9] == b'{':
        length = struct.unpack('<Q', head[:8])[0]
        if length <= min(size - 8, _SAFETENSORS_HEADER_LIMIT):
            return 'safetensors'
    if head[:4] == b'PK\x03\x04':
        return 'zip'
    if head[:1] == b'\x80':
        return 'pickle'
    return None


def _is_tar(f) -> bool:
    # torch's legacy loader tries this first, with these arguments
    try:
        tarfile.open(fileobj=f, mode='r:', format=tarfile.PAX_FORMAT).close()
        return True
    except tarfile.TarError:
        return False
    finally:
        f.seek(0)


def _check_archive(f, path: str) -> None:
    """Refuse a TorchScript archive, and a zip archive not laid out as torch.save
    writes one (docs/design.md)."""
    def refuse(why: str) -> CheckpointLoadError:
        return CheckpointLoadError(f'cannot read checkpoint {_describe_path(path)}: {why}; '
                                   f'torch.save does not write such archives')

    with zipfile.ZipFile(f) as archive:
        end = zipfile._EndRecData(f)  # what torch's reader reads: the stated offset
        if end is None or archive.start_dir != end[zipfile._ECD_OFFSET]:
            raise refuse('its central directory is not where its end record says')
        infos = sorted(archive.infolist(), key=lambda i: i.header_offset)
        # torch.load runs TorchScript (code) on this record, in the directory checked above
        if any(i.filename.split('/', 1)[-1] == 'constants.pkl' for i in infos):
            raise CheckpointLoadError(
                f'cannot read checkpoint {_describe_path(path)}: it is a TorchScript archive '
                f'(code, not weights); load it with torch.jit.load only if you trust it')
        limit = 0
        for info in infos:
            if info.compress_type != zipfile.ZIP_STORED:
                raise refuse(f'{info.filename!r} is compressed')
            if info.header_offset < limit:
                raise refuse(f'{info.filename!r} overlaps another record')
            f.seek(info.header_offset)
            local = f.read(30)
            if len(local) < 30 or local[:4] != b'PK\x03\x04':
                raise refuse(f'{info.filename!r} has no local header')
            name_len, extra_len = struct.unpack('<HH', local[26:30])
            if f.read(name_len) != info.orig_filename.encode(
                    'utf-8' if info.flag_bits & 0x800 else 'cp437'):
                raise refuse(f'{info.filename!r} is named otherwise in its local header')
            limit = info.header_offset + 30 + name_len + extra_len + info.compress_size
    f.seek(0)


def _load_pickled(f, fmt: str, path: str, map_location: Any) -> Any:
    if fmt == 'zip':
        _check_archive(f, path)
    elif _is_tar(f):
        raise CheckpointLoadError(
            f'cannot read checkpoint {_describe_path(path)}: the tar format of torch < 0.4 is '
            f'not supported; re-save it with a current torch')
    loaded = torch.load(f, map_location=map_location, pickle_module=PICKLE_MODULE,
                        weights_only=False, mmap=False)
    check_plain_data(loaded)
    return loaded


def _load_safetensors(path: str, f, map_location: Any) -> dict:
    from safetensors.torch import load as load_bytes
    data = f.read()
    tensors = load_bytes(data)
    length = struct.unpack('<Q', data[:8])[0]
    header = json.loads(data[8:8 + length])
    metadata = header.get('__metadata__') or {}
    if isinstance(map_location, (str, torch.device)) and str(map_location) != 'cpu':
        tensors = {k: v.to(map_location) for k, v in tensors.items()}
    return safetensors_to_checkpoint(tensors, metadata)


#: The header key under which nose_mm stores a checkpoint's ``meta`` as JSON.
SAFETENSORS_META_KEY = 'nose_mm.meta'


def safetensors_to_checkpoint(tensors: dict, metadata: dict) -> dict:
    """A safetensors file's content as a checkpoint dict (``{'state_dict', 'meta'}``
    for files nose_mm wrote, else the bare state dict)."""
    if SAFETENSORS_META_KEY not in metadata:
        return dict(tensors)
    meta = json.loads(metadata[SAFETENSORS_META_KEY])
    if not isinstance(meta, dict):
        raise ValueError(f'header {SAFETENSORS_META_KEY} must hold a JSON object')
    return {'state_dict': dict(tensors), 'meta': meta}


def safe_torch_load(path: str, map_location: Any = None, trust: Optional[bool] = None) -> Any:
    """Load a local checkpoint file without letting it run code, unless trusted.

    Args:
        path (str): Checkpoint file (``.pth`` in any torch format, or ``.safetensors``).
        map_location: Same as :func:`torch.load`. Defaults to None.
        trust (bool, optional): ``weights_only=False``. Defaults to None (:func:`is_trusted`).

    Returns:
        The loaded object.

    Raises:
        FileNotFoundError / IsADirectoryError: ``path`` is not a file.
        UnsafeCheckpointError: Not plain data (nothing it names has run).
        CheckpointLoadError: Not a regular file, empty, truncated, not a checkpoint, unreadable.
    """
    path = osp.expanduser(str(path))
    if trust is None:
        trust = is_trusted(path)
    with _open_regular(path) as f:
        head = f.read(9)
        size = os.fstat(f.fileno()).st_size
        f.seek(0)
        if not head:
            raise CheckpointLoadError(f'cannot read checkpoint {_describe_path(path)}: '
                                      f'the file is empty')
        fmt = checkpoint_format(head, size)
        if fmt is None:
            raise CheckpointLoadError(
                f'cannot read checkpoint {_describe_path(path)}: not a torch checkpoint '
                f'(neither a zip archive nor a pickle) nor a safetensors file')
        try:
            if fmt == 'safetensors':
                return _load_safetensors(path, f, map_location)
            if trust:
                return torch.load(f, map_location=map_location, weights_only=False)
            return _load_pickled(f, fmt, path, map_location)
        except CheckpointLoadError:
            raise
        except UnsafeGlobalsError as exc:
            raise _unsafe_error(path, exc.names) from None
        except UnsafeContentError as exc:
            raise UnsafeCheckpointError(
                f'checkpoint {_describe_path(path)} cannot be loaded safely ({exc}); '
                f'{_OPT_IN}') from None
        except (Exception, RecursionError) as exc:  # one error path, whatever broke
            raise CheckpointLoadError(
                f'cannot read checkpoint {_describe_path(path)} (truncated or corrupt?): '
                f'{type(exc).__name__}: {_first_line(exc)}') from exc


def add_trust_checkpoint_arg(parser: argparse.ArgumentParser) -> None:
    """Add ``--trust-checkpoint [FILE]`` to a tool that reads checkpoints."""
    parser.add_argument(
        '--trust-checkpoint', nargs='?', const=TRUST_NAMED, action='append', metavar='FILE',
        help='load this tool\'s checkpoint argument (or FILE; repeat for more files) '
        'without the safe loader: unpickling can run code, only for files you trust. '
        f'{TRUST_ENV}=1 trusts every file')


def _trust_list(value: Any, what: str) -> List[Any]:
    if value is None or value is False:
        return []
    if value is True:
        return [TRUST_NAMED]
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ValueError(f'{what} must be True, False or a list of checkpoint files, got {value!r}')


def apply_trust_checkpoint(option: Any = None, named: Iterable[Optional[str]] = (),
                           cfg: Any = None) -> frozenset:
    """Trust the files the user asked to trust, until the current :func:`trust_scope` ends.

    Args:
        option: The parsed ``--trust-checkpoint`` (True: :data:`TRUST_NAMED`). Defaults to None.
        named (iterable of str): The checkpoints on the command line (None ignored). Defaults to ().
        cfg (Config, optional): Its ``trust_checkpoint`` (True or files) counts. Defaults to None.

    Returns:
        frozenset: The trusted files (resolved paths).

    Raises:
        ValueError: A malformed option, a missing file, or a bad environment variable.
    """
    trust_from_env()  # a bad value is an error now, not at the first load
    asked = _trust_list(option, '--trust-checkpoint')
    if cfg is not None:
        asked += _trust_list(cfg.get('trust_checkpoint', False), 'config key trust_checkpoint')
    files = []
    for entry in asked:
        if entry == TRUST_NAMED:
            files += [str(p) for p in named if p]
            continue
        if not osp.isfile(osp.expanduser(entry)):
            raise ValueError(f'checkpoint to trust {entry!r} does not exist')
        files.append(entry)
    keys = frozenset(_key(p) for p in files)
    _TRUSTED[-1].update(keys)
    return keys
