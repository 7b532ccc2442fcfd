"""The tools' error convention: a user error is one line and exit 2 (docs/design.md)."""
import argparse
import difflib
import functools
import importlib
import os
import re
import sys
import traceback
from typing import Callable, List, NamedTuple, Optional, Sequence, Tuple, Union

from .fileio import STORAGE_ERRNOS, OutputNotWritableError, check_writable
from ..checkpoint.reader import CheckpointLoadError, trust_scope

__all__ = [
    'UserError', 'USER_ERRORS', 'INPUT_ERRORS', 'DEBUG_ENV', 'ToolParser', 'cli_main',
    'user_error_message', 'is_out_of_memory', 'closest'
]

DEBUG_ENV = 'NOSE_MM_DEBUG'
EXIT_USER_ERROR = 2


class UserError(Exception):
    """A mistake of the user (printed as one line, exit status 2)."""


class KnownError(NamedTuple):
    """Library exception ``type`` (or types): a user error when ``message(exc)`` is not None."""
    type: Union[type, Tuple[type, ...]]
    message: Callable[[BaseException], Optional[str]]


def closest(name: str, choices: Sequence[str]) -> Optional[str]:
    """The entry of ``choices`` most like ``name`` (a likely typo), or None."""
    found = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.75)
    return found[0] if found else None


def _registry_names(scope: str, name: str) -> List[str]:
    """Every type name the ``scope::name`` registry (and its parents) can build."""
    from mmengine.registry import Registry
    try:
        module = importlib.import_module(f'{scope}.registry')
    except ImportError:
        return []
    names = set()
    for registry in vars(module).values():
        if isinstance(registry, Registry) and registry.name == name:
            while registry is not None:
                names.update(registry.module_dict)
                registry = registry.parent
    return sorted(names)


_REGISTRY_MISS = re.compile(r'([\w.]+) is not in the (\w+)::(\w+) registry')


def registry_miss_message(exc: BaseException) -> Optional[str]:
    """One line for mmengine's "X is not in the scope::name registry" KeyError."""
    found = _REGISTRY_MISS.search(_text(exc))
    if not found:
        return None
    obj_type, scope, name = found.groups()
    guess = closest(obj_type, _registry_names(scope, name))
    hint = f' (did you mean {guess!r}?)' if guess else ''
    return (f'unknown type {obj_type!r}: it is not in the {scope}::{name} registry{hint}; '
            f'check the type names in the config, or register it by importing its module '
            f'with custom_imports = dict(imports=[...])')


_OOM = ('out of memory', 'not enough memory', 'DefaultCPUAllocator')


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is torch running out of (GPU or CPU) memory."""
    oom_type = getattr(sys.modules.get('torch'), 'OutOfMemoryError', None)
    return (oom_type is not None and isinstance(exc, oom_type)) or (
        isinstance(exc, (RuntimeError, MemoryError)) and any(s in str(exc) for s in _OOM))


def _out_of_memory_message(exc: BaseException) -> Optional[str]:
    if not is_out_of_memory(exc):
        return None
    first_line = str(exc).strip().split('\n')[0] or type(exc).__name__
    return (f'out of memory ({first_line}); use a smaller batch size, e.g. '
            f'--cfg-options train_dataloader.batch_size=N')


def _storage_message(exc: BaseException) -> Optional[str]:
    """One line for a write the storage refused (disk full, read-only folder...)."""
    if not isinstance(exc, OSError) or exc.errno not in STORAGE_ERRNOS \
            or isinstance(exc, OutputNotWritableError):
        return None
    where = f' {exc.filename!r}' if exc.filename else ''
    return (f'cannot write{where}: {exc.strerror or exc}; make room or choose a writable '
            f'--work-dir (checkpoints are written through temporary files: the last one '
            f'saved stays loadable with --resume)')


#: What every tool reports as a user error: exception types, and
#: :class:`KnownError` entries. Extend this list to add one.
USER_ERRORS: list = [
    UserError, CheckpointLoadError, OutputNotWritableError,
    KnownError(KeyError, registry_miss_message),
    KnownError((RuntimeError, MemoryError), _out_of_memory_message),
    KnownError(OSError, _storage_message),
]
#: Where nose_mm's own code lives: a ``raise`` there is a deliberate check.
_OWN_CODE = tuple(os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), part) + os.sep for part in ('nose_mm', 'tools', 'projects'))
#: File-system errors that name a path the user gave.
_PATH_ERRORS = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError,
                FileExistsError)


def raised_by_check(exc: BaseException) -> bool:
    """Whether ``exc`` comes from a ``raise`` statement in nose_mm's own code (a check of
    a value), not from inside torch / numpy / the interpreter (a bug: a shape mismatch,
    an unpacking, a conversion of internal data)."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return False
    last = frames[-1]
    return (os.path.abspath(last.filename).startswith(_OWN_CODE)
            and (last.line or '').lstrip().startswith('raise'))


def _input_message(exc: BaseException) -> Optional[str]:
    if isinstance(exc, _PATH_ERRORS) or (isinstance(exc, ValueError) and raised_by_check(exc)):
        return _text(exc)
    return None


#: What tools that read user-given files or values also report as user errors: a path
#: that cannot be read, and a ``ValueError`` of nose_mm's own checks. A ``ValueError``
#: from inside a library or the interpreter, or another ``OSError``, keeps its traceback.
INPUT_ERRORS = (KnownError((OSError, ValueError), _input_message), )


def _text(exc: BaseException) -> str:
    """The message of ``exc``; a DataLoader worker's re-raised error gives its own line."""
    text = str(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc)
    if 'Original Traceback (most recent call last)' in text:  # torch's ExceptionWrapper
        last = [line for line in text.strip().splitlines() if line.strip()][-1]
        head, sep, rest = last.partition(': ')
        text = rest if sep and re.fullmatch(r'[\w.]+', head) else last
    return text


def user_error_message(exc: BaseException, errors: Sequence[type] = ()) -> Optional[str]:
    """The one line to print for ``exc``, or None when it is not a user error.

    Args:
        exc (BaseException): The exception.
        errors (sequence of type): More user-error types. Defaults to ().
    """
    for entry in [*USER_ERRORS, *errors]:
        if isinstance(entry, KnownError):
            if isinstance(exc, entry.type):
                message = entry.message(exc)
                if message is not None:
                    return message
        elif isinstance(exc, entry):
            return _text(exc)
    return None


class ToolParser(argparse.ArgumentParser):
    """``ArgumentParser`` with ``--debug``; :meth:`add_output` outputs checked when parsed."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_argument('--debug', action='store_true',
                          help='print the traceback of user errors too (NOSE_MM_DEBUG=1)')
        self._outputs: List[Tuple[str, str, bool]] = []

    def add_output(self, *flags: str, folder: bool = False, **kwargs) -> argparse.Action:
        """``add_argument`` for an output file (or ``folder``) checked when parsed."""
        action = self.add_argument(*flags, **kwargs)
        self._outputs.append((action.dest, flags[0], folder))
        return action

    def parse_args(self, args=None, namespace=None):  # noqa: D102 - argparse's
        parsed = super().parse_args(args, namespace)
        for dest, flag, folder in self._outputs:
            value = getattr(parsed, dest, None)
            if value:
                check_writable(value, flag.upper() if not flag.startswith('-') else flag,
                               folder=folder)
        return parsed


def _debug_requested(argv: List[str]) -> bool:
    """Remove ``--debug`` from ``argv`` (in place); whether it, or the env, asks for it."""
    end = argv.index('--') if '--' in argv else len(argv)
    flag = '--debug' in argv[:end]
    argv[:end] = [arg for arg in argv[:end] if arg != '--debug']
    if flag:
        os.environ[DEBUG_ENV] = '1'  # child processes (the demo's tools) inherit it
    return os.environ.get(DEBUG_ENV, '').strip().lower() in ('1', 'true', 'yes', 'on')


def cli_main(*errors: type) -> Callable:
    """Decorate a tool's ``main(argv=None) -> int``: user errors become one line, exit 2.

    ``--debug`` prints the traceback too; ``main`` runs in its own ``trust_scope``.

    Args:
        *errors (type): More user-error types (e.g. :data:`INPUT_ERRORS`).
    """

    def decorate(main: Callable[..., Optional[int]]) -> Callable[..., int]:

        @functools.wraps(main)
        def wrapper(argv: Optional[Sequence[str]] = None) -> int:
            argv = list(sys.argv[1:] if argv is None else argv)
            debug = _debug_requested(argv)
            try:
                with trust_scope():  # --trust-checkpoint lasts this run only
                    return main(argv) or 0
            except Exception as exc:  # noqa: BLE001 - anything else is re-raised
                message = user_error_message(exc, errors)
                if message is None:
                    raise
                if debug:
                    traceback.print_exc()
                message = ' '.join(message.split())  # one line on stderr
                print(f'nose_mm: error: {message or type(exc).__name__}', file=sys.stderr)
                return EXIT_USER_ERROR

        return wrapper

    return decorate
