"""Atomic file writing: a reader never sees a half-written result or checkpoint."""
import json
import os
import tempfile
from typing import Any, Callable

__all__ = ['atomic_write', 'atomic_write_json', 'TMP_SUFFIX']

#: Suffix of the temporary files (``.<name>.<random><TMP_SUFFIX>`` beside the
#: destination); one left behind means a writer was killed mid-write.
TMP_SUFFIX = '.nose_mm-tmp'


def atomic_write(path: str, write_fn: Callable[[str], None]) -> None:
    """Write ``path`` through a temporary file in the same folder, then rename.

    Args:
        path (str): Destination file.
        write_fn (callable): Called with the temporary file's path; must write
            the whole content there. If it raises, the temporary file is removed
            and ``path`` is left as it was.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', suffix=TMP_SUFFIX,
                               dir=folder)
    os.close(fd)
    try:
        write_fn(tmp)
        with open(tmp, 'rb+') as f:  # on disk before the rename makes it visible
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 -> the usual file mode
        os.replace(tmp, path)
        _fsync_dir(folder)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _fsync_dir(folder: str) -> None:
    """Make a rename in ``folder`` durable (where the platform allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_json(path: str, obj: Any, indent: int = 2) -> None:
    """Dump ``obj`` as JSON to ``path`` atomically (see :func:`atomic_write`)."""

    def _write(tmp: str) -> None:
        with open(tmp, 'w', encoding='utf-8') as f:
            json.dump(obj, f, indent=indent, sort_keys=False)
            f.write('\n')

    atomic_write(path, _write)
