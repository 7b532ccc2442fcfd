"""The command-line error convention of every tool in ``tools/``.

A user error (bad path, bad value, missing data) is printed as one line,
``nose_mm: error: <message>``, on stderr, and the tool exits with status 2;
anything else is a bug and keeps its traceback. Tools decorate their
``main(argv=None)`` with :func:`cli_main`.
"""
import functools
import sys
from typing import Callable, Optional, Sequence

from .safe_load import CheckpointLoadError

__all__ = ['UserError', 'USER_ERRORS', 'INPUT_ERRORS', 'cli_main', 'report_error']


class UserError(Exception):
    """A mistake of the user (printed as one line, exit status 2)."""


#: Exception types every tool reports as a user error. Extend this list to add one.
USER_ERRORS: list = [UserError, CheckpointLoadError]
#: What tools that read user-given files or values also report as user errors.
INPUT_ERRORS = (OSError, ValueError)
EXIT_USER_ERROR = 2


def report_error(exc: BaseException) -> int:
    """Print ``exc`` as one ``nose_mm: error:`` line on stderr; return the exit status."""
    message = ' '.join(str(exc).split()) or type(exc).__name__
    print(f'nose_mm: error: {message}', file=sys.stderr)
    return EXIT_USER_ERROR


def cli_main(*errors: type) -> Callable:
    """Decorate a tool's ``main(argv=None) -> int``: user errors become one line, exit 2.

    Args:
        *errors (type): Exception types this tool also treats as user errors,
            on top of :data:`USER_ERRORS` (e.g. :data:`INPUT_ERRORS`).
    """

    def decorate(main: Callable[..., Optional[int]]) -> Callable[..., int]:

        @functools.wraps(main)
        def wrapper(argv: Optional[Sequence[str]] = None) -> int:
            try:
                return main(argv) or 0
            except (*USER_ERRORS, *errors) as exc:
                return report_error(exc)

        return wrapper

    return decorate
