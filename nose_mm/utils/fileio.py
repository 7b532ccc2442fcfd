"""Atomic file writing: a reader never sees a half-written result or checkpoint."""
import contextlib
import errno
import json
import os
import tempfile
from typing import Any, Callable

__all__ = ['atomic_write', 'atomic_write_json', 'TMP_SUFFIX', 'OutputNotWritableError',
           'check_writable', 'STORAGE_ERRNOS']

#: Suffix of the temporary files (``.<name>.<random><TMP_SUFFIX>`` beside the
#: destination); one left behind means a writer was killed mid-write.
TMP_SUFFIX = '.nose_mm-tmp'
#: ``errno`` of a write refused by the storage (full, quota, read-only, file size limit,
#: permissions): the user's to fix, not a bug.
STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EACCES,
                  errno.EPERM}


def atomic_write(path: str, write_fn: Callable[[str], None]) -> None:
    """Write ``path`` through a temporary file in the same folder, fsync, then rename.

    Args:
        path (str): Destination file.
        write_fn (callable): Writes the content to the temporary path it is given.

    Raises:
        OutputNotWritableError: The storage refused the write (disk full, read-only...);
            ``path`` is left as it was.
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
    except BaseException as exc:
        if os.path.exists(tmp):
            with contextlib.suppress(OSError):
                os.remove(tmp)
        if isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS:
            refused = OutputNotWritableError(
                f'cannot write {path!r}: {exc.strerror}; it was left as it was (the write went '
                f'to a temporary file, removed): make room or write elsewhere')
            refused.errno = exc.errno
            raise refused from exc
        raise
    with contextlib.suppress(OSError):  # the rename made durable, where the platform allows
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_json(path: str, obj: Any) -> None:
    """Dump ``obj`` as JSON (indent 2) to ``path`` atomically (see :func:`atomic_write`)."""

    def _write(tmp: str) -> None:
        with open(tmp, 'w', encoding='utf-8') as f:
            json.dump(obj, f, indent=2)
            f.write('\n')

    atomic_write(path, _write)


class OutputNotWritableError(OSError):
    """An output file or folder cannot be written (a user error)."""


def check_writable(path: str, what: str = 'output', folder: bool = False) -> None:
    """Check, before any work, that ``path`` can be written (with a probe file).

    Args:
        path (str): The output file, or folder when ``folder`` is True.
        what (str): What names it in the message, e.g. ``'--out'``. Defaults to ``'output'``.
        folder (bool): ``path`` is a folder. Defaults to False.

    Raises:
        OutputNotWritableError: Naming ``path`` and why it cannot be written.
    """
    full = os.path.abspath(os.path.expanduser(str(path)))
    if not folder and os.path.isdir(full):
        raise OutputNotWritableError(f'{what} {path!r} is a folder, expected a file name')
    if folder and os.path.exists(full) and not os.path.isdir(full):
        raise OutputNotWritableError(f'{what} {path!r} is a file, expected a folder')
    existing = full if folder else os.path.dirname(full)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise OutputNotWritableError(f'{what} {path!r} cannot be written: {existing!r} is a '
                                     f'file, not a folder')
    try:
        fd, probe = tempfile.mkstemp(prefix='.nose_mm-probe-', dir=existing)
    except OSError as exc:
        raise OutputNotWritableError(
            f'{what} {path!r} cannot be written: cannot create files in {existing!r} '
            f'({exc.strerror or exc}); choose a writable location') from None
    os.close(fd)
    os.remove(probe)
