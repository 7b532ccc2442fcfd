"""Run a command-line script inside this Python process, as ``python SCRIPT ARGS`` would.

The project's one in-process tool runner: whatever runs the command-line
tools many times in one interpreter (``tools/multi_seed.py``, a pipeline's
worker processes, the test suite's tool server) calls :func:`run_tool`.
Starting a new interpreter costs seconds of imports (torch, the OpenMMLab
stack) per tool; here the script runs as ``__main__`` in the current one.
"""
import os
import os.path as osp
import runpy
import sys
import traceback
from typing import Optional, Sequence

__all__ = ['run_tool']


def _exit_status(exc: SystemExit) -> int:
    """The status a process leaving with ``exc`` has (a message: printed, status 1)."""
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):  # bool included; a process keeps the low 8 bits
        return int(code) & 0xFF
    print(code, file=sys.stderr)
    return 1


def run_tool(script: str, argv: Sequence[str], log: Optional[str] = None) -> int:
    """Run ``script`` as ``__main__`` with ``argv``; return its exit status.

    The script sees what ``python SCRIPT ARGV`` gives it: ``sys.argv``, its
    folder first on ``sys.path``, ``__name__ == '__main__'``; both lists are
    restored afterwards. ``sys.exit(code)`` gives the status ``code`` as a
    process would (a message: printed on stderr, status 1); an uncaught
    exception prints its traceback on stderr and gives status 1.
    ``KeyboardInterrupt`` propagates.

    Args:
        script (str): Path of the Python script (e.g. ``'tools/train.py'``).
        argv (sequence): Its arguments (each passed through ``str``).
        log (str, optional): A file that gets the script's stdout and stderr
            while it runs (appended; file descriptors 1 and 2 are redirected,
            so C extensions and child processes write there too, and
            ``sys.stdout`` / ``sys.stderr`` if they write elsewhere).
            Defaults to None: this process's own streams.

    Returns:
        int: The exit status.

    Raises:
        ValueError: ``script`` is not a file.
    """
    if not osp.isfile(script):
        raise ValueError(f'no script {script!r} (not a file)')
    saved_fds = _redirect(log) if log is not None else None  # before anything is changed
    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.argv = [script, *(str(a) for a in argv)]
    sys.path.insert(0, osp.dirname(osp.abspath(script)))
    try:
        runpy.run_path(script, run_name='__main__')
        status = 0
    except SystemExit as exc:
        status = _exit_status(exc)
    except Exception:  # noqa: BLE001 - reported as an uncaught exception is
        traceback.print_exc()
        status = 1
    finally:
        if saved_fds is not None:
            _restore(saved_fds)
        sys.argv, sys.path[:] = saved_argv, saved_path
    return status


def _redirect(log: str) -> tuple:
    """Point file descriptors 1 and 2 at ``log``; return what :func:`_restore` needs."""
    _flush()
    target = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    saved = os.dup(1), os.dup(2), sys.stdout, sys.stderr
    os.dup2(target, 1)
    os.dup2(target, 2)
    os.close(target)
    # streams that do not write to fd 1 / 2 (pytest's capture, notebooks) are replaced
    if not _writes_to(sys.stdout, 1):
        sys.stdout = open(1, 'w', buffering=1, encoding='utf-8', closefd=False)
    if not _writes_to(sys.stderr, 2):
        sys.stderr = open(2, 'w', buffering=1, encoding='utf-8', closefd=False)
    return saved


def _writes_to(stream, fd: int) -> bool:
    try:
        return stream.fileno() == fd
    except (AttributeError, OSError, ValueError):  # no file descriptor behind it
        return False


def _restore(saved: tuple) -> None:
    _flush()
    for fd, copy in zip((1, 2), saved[:2]):
        os.dup2(copy, fd)
        os.close(copy)
    sys.stdout, sys.stderr = saved[2:]


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or broken stream has nothing to flush
            pass
