"""nose_mm's own unpickler, the only code a checkpoint file can reach (docs/design.md)."""
import _compat_pickle
import argparse
import io
import math
import pickle
import os
import pickletools
import re
import struct
from collections import OrderedDict
from typing import Any, Dict, List, Tuple

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer

__all__ = ['UnsafeGlobalsError', 'UnsafeContentError', 'SafeUnpickler', 'PICKLE_MODULE',
           'scan_globals', 'check_plain_data', 'ALLOWED_GLOBALS']


class UnsafeGlobalsError(pickle.UnpicklingError):
    """The pickle names globals that are not allowed (:attr:`names`, in file order)."""

    def __init__(self, names: List[str]):
        self.names = list(dict.fromkeys(names))
        super().__init__(f'it names {", ".join(map(repr, self.names))}')


class UnsafeContentError(pickle.UnpicklingError):
    """The pickle asks for an operation or a value that is not allowed."""


class _Global:
    """The inert stand-in that ``GLOBAL`` pushes: a name, nothing to call or set."""
    __slots__ = ('name', )

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f'<global {self.name}>'


class _Statistic:
    """What ``getattr(HistoryBuffer, name)`` gives here: the name of a statistic."""
    __slots__ = ('name', )

    def __init__(self, name: str):
        self.name = name


def _short(value: Any) -> str:
    """A short, cheap text for a value from the file (never its full repr: a shared
    tuple of depth 30 has a repr of 2**30 items)."""
    kind = type(value)
    if kind in (str, bytes):
        return repr(value[:60]) + ('...' if len(value) > 60 else '')
    if kind is int:
        return repr(value) if value.bit_length() <= 64 else f'<int of {value.bit_length()} bits>'
    if kind in (bool, float, type(None)):
        return repr(value)
    if kind is tuple and len(value) <= 8 and all(
            type(v) in (str, bytes, int, bool, float, type(None)) for v in value):
        return '(' + ', '.join(_short(v) for v in value) + (',)' if len(value) == 1 else ')')
    return _describe(value)


def _refuse(message: str):
    raise UnsafeContentError(message)


def _describe(value: Any) -> str:
    if isinstance(value, _Global):
        return value.name
    return type(value).__name__


# Builders: the only functions a file can call (through REDUCE / NEWOBJ).
def _is_int(value: Any) -> bool:
    return type(value) is int


def _int_tuple(value: Any, what: str, minimum: int = None) -> Tuple[int, ...]:
    if type(value) is not tuple or not all(_is_int(v) for v in value):
        _refuse(f'{what} must be a tuple of ints, got {_describe(value)}')
    if minimum is not None and any(v < minimum for v in value):
        _refuse(f'{what} has values below {minimum}: {_short(value)}')
    return value


def _empty_hooks(hooks: Any) -> None:
    if type(hooks) not in (OrderedDict, dict) or hooks:
        _refuse('a tensor carries backward hooks (code run during backward)')


#: Tensor dtypes a checkpoint may hold: numbers. Quantized (``qint8`` ...), bit
#: (``bits8``, ``uint1`` ...) and packed types build tensors most operations fail on.
TENSOR_DTYPES = frozenset(
    [torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.uint16,
     torch.uint32, torch.uint64, torch.float16, torch.bfloat16, torch.float32, torch.float64,
     torch.complex32, torch.complex64, torch.complex128]
    + [getattr(torch, n) for n in ('float8_e4m3fn', 'float8_e5m2', 'float8_e4m3fnuz',
                                   'float8_e5m2fnuz') if hasattr(torch, n)])


def _tensor_dtype(dtype: Any) -> None:
    if dtype not in TENSOR_DTYPES:
        shown = dtype if type(dtype) is torch.dtype else _describe(dtype)
        _refuse(f'a tensor has dtype {shown}, not a number type')


def _tensor_args(storage, storage_offset, size, stride, requires_grad, backward_hooks,
                 metadata) -> None:
    """Refuse arguments of a tensor rebuild that torch.save would not write."""
    if type(storage) is not torch.storage.TypedStorage:
        _refuse(f'a tensor is built over a {_describe(storage)}, not a stored tensor')
    if not _is_int(storage_offset) or storage_offset < 0:
        _refuse(f'a tensor has storage offset {_short(storage_offset)}')
    _int_tuple(size, 'a tensor size', 0)
    _int_tuple(stride, 'a tensor stride')
    if len(size) != len(stride):
        _refuse(f'a tensor has size {_short(size)} but stride {_short(stride)}')
    if type(requires_grad) is not bool:
        _refuse(f'requires_grad must be a bool, got {_describe(requires_grad)}')
    _empty_hooks(backward_hooks)
    if metadata is not None and (type(metadata) is not dict or not all(
            type(k) is str and type(v) is bool for k, v in metadata.items())):
        _refuse('tensor metadata must map names to bools')


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks,
                       metadata=None) -> torch.Tensor:
    _tensor_args(storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata)
    _tensor_dtype(storage.dtype)
    return torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
                                           OrderedDict(), metadata)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks,
                       dtype, metadata=None) -> torch.Tensor:
    # dtypes without a legacy storage class (uint16, float8, ...) are saved this way
    _tensor_args(storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata)
    if type(storage.dtype) is not torch.dtype or storage.dtype != torch.uint8:
        _refuse('a tensor saved with its own dtype is built over a typed storage')
    _tensor_dtype(dtype)
    return torch._utils._rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad,
                                           OrderedDict(), dtype, metadata)


def _rebuild_parameter(data, requires_grad, backward_hooks) -> torch.nn.Parameter:
    if type(data) is not torch.Tensor:
        _refuse(f'a parameter wraps a {_describe(data)}, not a tensor')
    if type(requires_grad) is not bool:
        _refuse(f'requires_grad must be a bool, got {_describe(requires_grad)}')
    _empty_hooks(backward_hooks)
    return torch.nn.Parameter(data, requires_grad)


def _ordered_dict(*args) -> OrderedDict:
    if args:
        _refuse('OrderedDict is built from items, not arguments')
    return OrderedDict()


def _encode(text, encoding='utf-8') -> bytes:
    # protocol 2 pickles bytes as _codecs.encode(latin-1 text, 'latin1')
    if type(text) is not str or encoding not in ('latin1', 'latin-1'):
        _refuse(f'_codecs.encode is allowed only for latin-1 text, got '
                f'{_describe(text)}, {_short(encoding)}')
    return text.encode('latin-1')


def _bytearray(*args) -> bytearray:
    if args == ():
        return bytearray()
    if len(args) == 1 and type(args[0]) is bytes:
        return bytearray(args[0])
    if len(args) == 2 and type(args[0]) is str and args[1] in ('latin1', 'latin-1'):
        return bytearray(args[0], 'latin-1')
    _refuse('bytearray is allowed only from bytes or latin-1 text')


def _set_of(kind):
    def build(*args):
        if args == ():
            return kind()
        if len(args) == 1 and type(args[0]) is list and all(_scalar_key(v) for v in args[0]):
            return kind(args[0])
        _refuse(f'{kind.__name__} is built from one list of strings, bytes or small ints')
    return build


def _complex(real=0.0, imag=0.0) -> complex:
    if type(real) is not float or type(imag) is not float:
        _refuse('complex takes two floats')
    return complex(real, imag)


def _size(dims=()) -> torch.Size:
    return torch.Size(_int_tuple(dims, 'torch.Size', 0))


def _device(kind, index=None) -> torch.device:
    if type(kind) is not str or not (index is None or _is_int(index)):
        _refuse('torch.device takes a name and an index')
    return torch.device(kind) if index is None else torch.device(kind, index)


_STATISTICS = ('min', 'max', 'current', 'mean')


def _getattr(owner, name) -> _Statistic:
    if owner is not _HISTORY_BUFFER or name not in _STATISTICS:
        _refuse(f'it calls getattr({_describe(owner)}, {_short(name)}); only getattr('
                f'HistoryBuffer, one of {list(_STATISTICS)}) is allowed')
    return _Statistic(name)


#: The largest expanded size (items, shared ones counted each time) of a dict key
#: or set item (hashing visits all of it), and of the loaded object (printing or
#: saving it does).
MAX_KEY_SIZE = 256
MAX_EXPANDED_SIZE = 10_000_000
#: At most this many objects (containers, strings, built values) and tensors are
#: created while unpickling: a DeiT-B Runner checkpoint creates about 20,000 and
#: 600; each costs memory and time that the file's few bytes do not.
MAX_OBJECTS = 5_000_000
MAX_TENSORS = 100_000
#: Python hashes ints modulo this prime; larger ones can be made to collide.
_HASH_MODULUS = 2**61 - 1


def _scalar_key(value: Any) -> bool:
    """A dict key / set item whose hash is cheap and cannot be made to collide."""
    kind = type(value)
    return kind in (str, bytes, bool, type(None)) or (
        kind is int and -_HASH_MODULUS < value < _HASH_MODULUS)

#: numpy dtypes a checkpoint may hold: booleans, integers, floats, complex.
_NUMERIC_SPECS = frozenset(
    ['b1', 'i1', 'i2', 'i4', 'i8', 'u1', 'u2', 'u4', 'u8', 'f2', 'f4', 'f8', 'c8', 'c16'])


def _numeric_dtype(value: Any, what: str) -> np.dtype:
    """``value`` if it is a dtype this module built (numeric, native, no fields)."""
    if (not isinstance(value, np.dtype) or value.kind not in 'biufc' or value.hasobject
            or value.fields is not None or value.subdtype is not None
            or not value.isnative or value.str[1:] not in _NUMERIC_SPECS):
        _refuse(f'{what} must be a numeric numpy dtype, got {_short(value)}')
    return value


def _np_dtype(spec, align=False, copy=True) -> np.dtype:
    if type(spec) is not str or spec not in _NUMERIC_SPECS or align not in (False, 0) \
            or copy not in (True, 1):
        _refuse(f'numpy dtype {_short(spec)} is not allowed (only the numeric types '
                f'{", ".join(sorted(_NUMERIC_SPECS))})')
    return np.dtype(spec)


def _np_reconstruct(cls, shape, typecode) -> np.ndarray:
    if cls is not _NDARRAY or shape != (0, ) or typecode != b'b':
        _refuse('numpy _reconstruct is allowed only as numpy pickles a plain ndarray')
    return np.empty((0, ), np.int8)


def _nbytes(shape: Tuple[int, ...], dtype: np.dtype) -> int:
    return math.prod(shape) * dtype.itemsize  # Python ints: no overflow


def _np_frombuffer(buffer, dtype, shape, order) -> np.ndarray:
    # numpy's pickle of an array under protocol 5 (the buffer in-band)
    dtype = _numeric_dtype(dtype, 'a numpy array\'s dtype')
    shape = _int_tuple(shape, 'a numpy array\'s shape', 0)
    if type(buffer) not in (bytes, bytearray) or len(buffer) != _nbytes(shape, dtype) \
            or order not in ('C', 'F'):
        _refuse(f'a numpy array of shape {_short(shape)} and dtype {dtype} needs '
                f'{_nbytes(shape, dtype)} bytes of data')
    return np.frombuffer(bytes(buffer), dtype).reshape(shape, order=order).copy(order=order)


def _np_scalar(dtype, data) -> np.generic:
    dtype = _numeric_dtype(dtype, 'a numpy scalar\'s dtype')
    if type(data) is not bytes or len(data) != dtype.itemsize:
        _refuse(f'a numpy {dtype} scalar needs {dtype.itemsize} bytes')
    return np.frombuffer(data, dtype)[0]


def _new_plain(cls):
    def build(*args):
        if args:
            _refuse(f'{cls.__name__} is created without arguments')
        return cls.__new__(cls)
    return build


_NDARRAY = _Global('numpy.ndarray')
_HISTORY_BUFFER = _Global('mmengine.logging.history_buffer.HistoryBuffer')

#: Every name a file may use: name -> (token pushed, REDUCE builder, NEWOBJ builder).
_GLOBALS: Dict[str, Tuple[Any, Any, Any]] = {}


def _allow(name: str, reduce=None, newobj=None, token=None) -> None:
    _GLOBALS[name] = (_Global(name) if token is None else token, reduce, newobj)


_allow('collections.OrderedDict', _ordered_dict)
_allow('torch._utils._rebuild_tensor_v2', _rebuild_tensor_v2)
_allow('torch._utils._rebuild_tensor_v3', _rebuild_tensor_v3)
# the storage type of dtypes without a legacy storage class: a marker for torch's loader
_allow('torch.storage.UntypedStorage', token=torch.UntypedStorage)
_allow('torch._utils._rebuild_parameter', _rebuild_parameter)
_allow('torch.Size', _size)
_allow('torch.device', _device)
_allow('_codecs.encode', _encode)
_allow('builtins.bytearray', _bytearray)
_allow('builtins.set', _set_of(set))
_allow('builtins.frozenset', _set_of(frozenset))
_allow('builtins.complex', _complex)
_allow('builtins.getattr', _getattr)
_allow('numpy.dtype', _np_dtype)
_allow('numpy.ndarray', token=_NDARRAY)
for _pkg in ('numpy.core', 'numpy._core'):  # the module name of the numpy that saved it
    _allow(f'{_pkg}.multiarray._reconstruct', _np_reconstruct)
    _allow(f'{_pkg}.multiarray.scalar', _np_scalar)
    _allow(f'{_pkg}.numeric._frombuffer', _np_frombuffer)
_allow('mmengine.logging.history_buffer.HistoryBuffer', newobj=_new_plain(HistoryBuffer),
       token=_HISTORY_BUFFER)
for _name in _STATISTICS:  # protocol >= 4 names the methods by their qualified name
    _allow(f'mmengine.logging.history_buffer.HistoryBuffer.{_name}', token=_Statistic(_name))
_allow('argparse.Namespace', newobj=_new_plain(argparse.Namespace))
for _dtype in {v for v in vars(torch).values() if isinstance(v, torch.dtype)}:
    _allow(str(_dtype), token=_dtype)  # e.g. torch.float32: a value, not callable

_REDUCE = {id(t): (t, r) for t, r, _ in _GLOBALS.values() if r is not None}
#: Opcodes of a length (struct format, its size) then data, and what the data is.
_LENGTH_PREFIXED = {
    0x58: ('<I', 4, 'text'), 0x8c: ('<B', 1, 'text'), 0x8d: ('<Q', 8, 'text'),  # *UNICODE
    0x42: ('<I', 4, bytes), 0x43: ('<B', 1, bytes), 0x8e: ('<Q', 8, bytes),  # *BINBYTES*
    0x96: ('<Q', 8, bytearray), 0x55: ('<B', 1, 'old'), 0x54: ('<i', 4, 'old'),  # BINSTRING
    0x8a: ('<B', 1, 'int'), 0x8b: ('<i', 4, 'int'),  # LONG1 / LONG4
}
_TENSOR_BUILDERS = (_rebuild_tensor_v2, _rebuild_tensor_v3, _rebuild_parameter)
#: Opcodes that create an object (each counts against :data:`MAX_OBJECTS`).
_CREATING = frozenset(b'(NJKMGX\x8a\x8b\x8c\x8d\x8e\x96BCUT)t\x85\x86\x87]l}d\x8f\x91'
                      b'cR\x93\x81\x92Q')
_NEWOBJ = {id(t): (t, n) for t, _, n in _GLOBALS.values() if n is not None}

#: The names files may hold (besides torch's storage types, e.g. ``torch.FloatStorage``).
ALLOWED_GLOBALS = frozenset(_GLOBALS)


def _storage_type(module: str, name: str):
    """torch's stand-in for ``torch.<X>Storage`` (what torch's loaders push), or None."""
    if module != 'torch' or not name.endswith('Storage'):
        return None
    try:
        return torch.serialization.StorageType(name)
    except KeyError:
        return None


def _canonical(module: str, name: str) -> Tuple[str, str]:
    """The Python 3 name of a protocol-2 global (``__builtin__`` -> ``builtins``)."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


def is_allowed_global(module: str, name: str) -> bool:
    """Whether ``module.name`` may appear in a safely loaded pickle."""
    module, name = _canonical(module, name)
    return f'{module}.{name}' in _GLOBALS or _storage_type(module, name) is not None


# BUILD: state set only on the kinds checkpoints build, after checking it.
def _build_ordered_dict(inst: OrderedDict, state: Any, built) -> None:
    # state_dict() keeps the modules' versions in ``_metadata``; nothing else is set
    if type(state) is not dict or set(state) - {'_metadata'}:
        _refuse('an OrderedDict may carry only _metadata')
    if '_metadata' in state:
        if type(state['_metadata']) not in (dict, OrderedDict):
            _refuse('OrderedDict._metadata must be a dict')
        inst._metadata = state['_metadata']


def _build_dtype(inst: np.dtype, state: Any, built) -> None:
    # what numpy pickles for a numeric dtype; nothing is set on it
    if state != inst.__reduce__()[2] or type(state) is not tuple:
        _refuse(f'numpy dtype {inst} has state {_short(state)}; only numpy\'s own '
                f'{inst.__reduce__()[2]!r} is allowed')


def _build_array(inst: np.ndarray, state: Any, built) -> None:
    if type(state) is not tuple or len(state) != 5:
        _refuse('a numpy array\'s state must be (version, shape, dtype, fortran, data)')
    version, shape, dtype, fortran, data = state
    if version != 1 or not _is_int(version):
        _refuse(f'numpy array state version {_short(version)} is not supported')
    shape = _int_tuple(shape, 'a numpy array\'s shape', 0)
    dtype = _numeric_dtype(dtype, 'a numpy array\'s dtype')
    if type(fortran) is not bool:
        _refuse('a numpy array\'s order flag must be a bool')
    if type(data) is not bytes or len(data) != _nbytes(shape, dtype):
        _refuse(f'a numpy array of shape {_short(shape)} and dtype {dtype} needs '
                f'{_nbytes(shape, dtype)} bytes of data')
    inst.__setstate__((1, shape, dtype, fortran, data))


def _numeric_array(value: Any, what: str) -> np.ndarray:
    if type(value) is not np.ndarray or value.ndim != 1 \
            or value.dtype.kind not in 'biuf':
        _refuse(f'{what} must be a 1-d numeric numpy array')
    return value


_BUFFER_KEYS = {'max_length', '_log_history', '_count_history'}


def _build_history_buffer(inst: HistoryBuffer, state: Any, built) -> None:
    if type(state) is not dict or not _BUFFER_KEYS <= set(state) <= _BUFFER_KEYS | {
            'statistics_methods'}:
        _refuse(f'a HistoryBuffer\'s state must hold {sorted(_BUFFER_KEYS)} '
                f'(and statistics_methods)')
    methods = state.get('statistics_methods', {})
    if type(methods) is not dict or not all(
            type(v) is _Statistic and v.name == k for k, v in methods.items()):
        _refuse('HistoryBuffer.statistics_methods may name only the built-in statistics '
                f'{list(_STATISTICS)}')
    max_length = state['max_length']
    if not _is_int(max_length) or max_length < 1:
        _refuse(f'HistoryBuffer.max_length must be a positive int, got {_short(max_length)}')
    logs = _numeric_array(state['_log_history'], 'HistoryBuffer._log_history')
    counts = _numeric_array(state['_count_history'], 'HistoryBuffer._count_history')
    if len(logs) != len(counts):
        _refuse('HistoryBuffer logs and counts differ in length')
    # mmengine's default statistics: the file's methods are never applied or registered
    inst.__dict__.update(max_length=max_length, _log_history=logs.copy(),
                         _count_history=counts.copy())  # a later BUILD cannot change them
    HistoryBuffer._set_default_statistics(inst)


def _build_namespace(inst: argparse.Namespace, state: Any, built) -> None:
    if type(state) is not dict or not all(
            type(k) is str and k.isidentifier() and not k.startswith('_') for k in state):
        _refuse('an argparse.Namespace\'s attributes must be public names')
    inst.__dict__.update(state)


_BUILD = {OrderedDict: _build_ordered_dict, np.ndarray: _build_array,
          HistoryBuffer: _build_history_buffer, argparse.Namespace: _build_namespace}


# The opcode machine.
_LOCATION = re.compile(r'cpu|cuda(:\d{1,4})?|mps|xpu(:\d{1,4})?')


def _storage_bytes(pid: tuple) -> int:
    dtype = getattr(pid[1], 'dtype', torch.uint8)
    return pid[4] * torch._utils._element_size(dtype)


def _storage_id(pid: Any, limit: int) -> None:
    """Refuse a persistent id that is not torch's id of a stored tensor (a legacy
    storage cannot be larger than the file, ``limit`` bytes)."""
    ok = type(pid) is tuple and len(pid) in (5, 6) and pid[0] in ('storage', b'storage')
    if ok:
        storage_type, key, location, numel = pid[1:5]
        ok = ((type(storage_type) is torch.serialization.StorageType
               or storage_type is torch.UntypedStorage)
              and type(key) is str and len(key) < 256
              and type(location) in (str, bytes) and len(location) < 64
              and _LOCATION.fullmatch(location if type(location) is str
                                      else location.decode('ascii', 'replace')) is not None
              and _is_int(numel) and numel >= 0)
        if len(pid) == 6:  # the legacy format: (..., view metadata or None)
            view = pid[5]
            ok = ok and (view is None or (
                type(view) is tuple and len(view) == 3 and type(view[0]) is str
                and _is_int(view[1]) and _is_int(view[2]) and min(view[1:]) >= 0))
            ok = ok and _storage_bytes(pid) <= limit
    if not ok:
        _refuse('a persistent id is not a stored tensor\'s')


class SafeUnpickler:
    """A pickle machine that does only what :mod:`nose_mm.checkpoint.unpickler` allows.

    The interface of :class:`pickle.Unpickler` as torch uses it.

    Args:
        file: A binary file positioned at the pickle.
        encoding (str): Decoding of protocol-0/1 8-bit strings. Defaults to ``'ASCII'``.
        errors (str): Their decoding errors. Defaults to ``'strict'``.
    """

    def __init__(self, file, *, encoding: str = 'ASCII', errors: str = 'strict'):
        self._file = file
        self._encoding, self._errors = encoding, errors
        try:  # a real file (the legacy format): its size bounds the storages it can hold
            self._limit = os.fstat(file.fileno()).st_size
        except (AttributeError, OSError, io.UnsupportedOperation):
            self._limit = len(file.getbuffer()) if hasattr(file, 'getbuffer') else 0

    def persistent_load(self, pid):
        raise UnsafeContentError('the pickle refers to data outside it (persistent id)')

    def find_class(self, module: str, name: str) -> Any:
        module, name = _canonical(module, name)
        full = f'{module}.{name}'
        if full in _GLOBALS:
            return _GLOBALS[full][0]
        storage = _storage_type(module, name)
        if storage is None:
            raise UnsafeGlobalsError([full])
        return storage

    def load(self) -> Any:
        start = self._file.tell()
        refused = [f'{m}.{n}' for m, n in scan_globals(self._file)
                   if not is_allowed_global(m, n)]
        if refused:
            raise UnsafeGlobalsError([_canonical_name(n) for n in refused])
        self._file.seek(start)
        return self._run()

    def _run(self) -> Any:
        read, readline = self._file.read, self._file.readline
        stack: List[Any] = []
        marks: List[List[Any]] = []
        memo: Dict[int, Any] = {}
        built: set = set()
        zeroed: Dict[int, Any] = {}
        roots: set = set()
        stored = objects = tensors = 0  # storage bytes (legacy), objects created, tensors
        checked_keys: Dict[int, Any] = {}
        sizes: Dict[int, Tuple[Any, int]] = {}  # id -> (tuple / frozenset, expanded size)
        push = stack.append

        def sized(value):
            """Record the expanded size of a new tuple / frozenset (hashing walks all of it)."""
            total = 1
            for v in value:
                if id(v) in sizes:
                    total += sizes[id(v)][1]
                else:
                    total += 1 + len(v) if type(v) in (tuple, frozenset) else 1
            if total > 1 + len(value):  # nested: saturate, the number can double a level
                sizes[id(value)] = (value, min(total, MAX_EXPANDED_SIZE + 1))
            return value

        def key(value):
            """Only values with a cheap, collision-free hash go into dicts and sets."""
            if _scalar_key(value):
                return value
            if type(value) in (tuple, frozenset):
                if id(value) in checked_keys:
                    return value
                expanded = sizes[id(value)][1] if id(value) in sizes else 1 + len(value)
                if expanded > MAX_KEY_SIZE:
                    _refuse(f'a dict key or set item expands to more than {MAX_KEY_SIZE} items')
                for item in value:
                    key(item)
                checked_keys[id(value)] = value
                return value
            _refuse(f'a dict key or set item is a {_describe(value)}; only strings, bytes, '
                    f'small ints and tuples of them are allowed')

        def pop_mark() -> List[Any]:
            nonlocal stack, push
            items = stack
            if not marks:
                _refuse('the pickle is malformed (no mark)')
            stack = marks.pop()
            push = stack.append
            return items

        def read_exact(size: int) -> bytes:
            data = read(size)
            if len(data) != size:
                raise EOFError('the pickle ends early')
            return data

        def unpack(fmt: str, size: int):
            return struct.unpack(fmt, read_exact(size))[0]

        def container(kind):
            target = stack[-1] if stack else None
            if type(target) not in kind:
                _refuse(f'it adds items to a {_describe(target)}')
            return target

        while True:
            op = read(1)
            if not op:
                raise EOFError('the pickle ends without STOP')
            code = op[0]
            if code in _CREATING:
                objects += 1
                if objects > MAX_OBJECTS:
                    _refuse(f'it creates more than {MAX_OBJECTS} objects')
            if code == 0x80:  # PROTO
                if read_exact(1)[0] > 5:
                    _refuse('unknown pickle protocol')
            elif code == 0x95:  # FRAME: framing is only a read-ahead hint
                read_exact(8)
            elif code == 0x2e:  # STOP
                if len(stack) != 1 or marks:
                    _refuse('the pickle is malformed (stack at STOP)')
                return stack[0]
            elif code == 0x28:  # MARK
                marks.append(stack)
                stack = []
                push = stack.append
            elif code == 0x30:  # POP
                if stack:
                    stack.pop()
                else:
                    pop_mark()
            elif code == 0x31:  # POP_MARK
                pop_mark()
            elif code == 0x4e:  # NONE
                push(None)
            elif code == 0x88:  # NEWTRUE
                push(True)
            elif code == 0x89:  # NEWFALSE
                push(False)
            elif code == 0x4a:  # BININT
                push(unpack('<i', 4))
            elif code == 0x4b:  # BININT1
                push(read_exact(1)[0])
            elif code == 0x4d:  # BININT2
                push(unpack('<H', 2))
            elif code == 0x47:  # BINFLOAT
                push(unpack('>d', 8))
            elif code in _LENGTH_PREFIXED:  # strings, bytes, long ints: length, then data
                fmt, size, kind = _LENGTH_PREFIXED[code]
                data = read_exact(unpack(fmt, size))
                if kind == 'text':
                    push(data.decode('utf-8', 'surrogatepass'))
                elif kind == 'old':  # protocol-0/1 8-bit strings
                    push(data if self._encoding == 'bytes'
                         else data.decode(self._encoding, self._errors))
                elif kind == 'int':
                    push(int.from_bytes(data, 'little', signed=True))
                else:
                    push(kind(data))
            elif code == 0x29:  # EMPTY_TUPLE
                push(())
            elif code == 0x74:  # TUPLE
                items = sized(tuple(pop_mark()))
                push(items)
            elif code in (0x85, 0x86, 0x87):  # TUPLE1 / TUPLE2 / TUPLE3
                n = code - 0x84
                if len(stack) < n:
                    _refuse('the pickle is malformed (short stack)')
                items = sized(tuple(stack[-n:]))
                del stack[-n:]
                push(items)
            elif code == 0x5d:  # EMPTY_LIST
                push([])
            elif code == 0x6c:  # LIST
                items = pop_mark()
                push(items)
            elif code == 0x61:  # APPEND
                item = stack.pop()
                container((list, )).append(item)
            elif code == 0x65:  # APPENDS
                items = pop_mark()
                container((list, )).extend(items)
            elif code == 0x7d:  # EMPTY_DICT
                push({})
            elif code == 0x64:  # DICT
                items = pop_mark()
                if len(items) % 2:
                    _refuse('the pickle is malformed (odd items)')
                items = {key(k): v for k, v in zip(items[::2], items[1::2])}
                push(items)
            elif code == 0x73:  # SETITEM
                value, name = stack.pop(), stack.pop()
                container((dict, OrderedDict))[key(name)] = value
            elif code == 0x75:  # SETITEMS
                items = pop_mark()
                if len(items) % 2:
                    _refuse('the pickle is malformed (odd items)')
                target = container((dict, OrderedDict))
                for i in range(0, len(items), 2):
                    target[key(items[i])] = items[i + 1]
            elif code == 0x8f:  # EMPTY_SET
                push(set())
            elif code == 0x90:  # ADDITEMS
                items = [key(v) for v in pop_mark()]
                container((set, )).update(items)
            elif code == 0x91:  # FROZENSET
                items = sized(frozenset(key(v) for v in pop_mark()))
                push(items)
            elif code == 0x71:  # BINPUT
                memo[read_exact(1)[0]] = stack[-1]
            elif code == 0x72:  # LONG_BINPUT
                memo[unpack('<I', 4)] = stack[-1]
            elif code == 0x94:  # MEMOIZE
                memo[len(memo)] = stack[-1]
            elif code in (0x68, 0x6a):  # BINGET / LONG_BINGET
                index = read_exact(1)[0] if code == 0x68 else unpack('<I', 4)
                if index not in memo:
                    _refuse('the pickle is malformed (memo)')
                push(memo[index])
            elif code == 0x63:  # GLOBAL
                module = readline()[:-1].decode('utf-8', 'surrogatepass')
                name = readline()[:-1].decode('utf-8', 'surrogatepass')
                push(self.find_class(module, name))
            elif code == 0x93:  # STACK_GLOBAL
                name, module = stack.pop(), stack.pop()
                if type(module) is not str or type(name) is not str:
                    _refuse('STACK_GLOBAL needs two names')
                push(self.find_class(module, name))
            elif code == 0x52:  # REDUCE
                args = stack.pop()
                func = stack[-1]
                entry = _REDUCE.get(id(func))
                if entry is None or entry[0] is not func:
                    _refuse(f'it calls {_describe(func)}, which cannot be called')
                if type(args) is not tuple:
                    _refuse('REDUCE arguments must be a tuple')
                if entry[1] in _TENSOR_BUILDERS:
                    tensors += 1
                    if tensors > MAX_TENSORS:
                        _refuse(f'it builds more than {MAX_TENSORS} tensors')
                stack[-1] = entry[1](*args)
            elif code in (0x81, 0x92):  # NEWOBJ / NEWOBJ_EX
                kwargs = stack.pop() if code == 0x92 else {}
                args = stack.pop()
                cls = stack.pop()
                entry = _NEWOBJ.get(id(cls))
                if entry is None or entry[0] is not cls:
                    _refuse(f'it creates a {_describe(cls)}, which cannot be created')
                if type(args) is not tuple or kwargs != {}:
                    _refuse(f'{_describe(cls)} is created without arguments')
                push(entry[1](*args))
            elif code == 0x62:  # BUILD
                state = stack.pop()
                inst = stack[-1]
                kind = np.dtype if isinstance(inst, np.dtype) else type(inst)
                build = _build_dtype if kind is np.dtype else _BUILD.get(kind)
                if build is None:
                    _refuse(f'it sets the state of a {_describe(inst)}')
                if kind is np.dtype:  # numpy shares one dtype object: only checked
                    build(inst, state, built)
                    continue
                if id(inst) in built:
                    _refuse(f'it sets the state of a {_describe(inst)} twice')
                build(inst, state, built)
                built.add(id(inst))
            elif code == 0x51:  # BINPERSID
                pid = stack.pop()
                _storage_id(pid, self._limit)
                if len(pid) == 6 and pid[2] not in roots:  # legacy: read after the pickle
                    roots.add(pid[2])
                    stored += _storage_bytes(pid)
                    if stored > self._limit:
                        _refuse('its storages hold more bytes than the file')
                storage = self.persistent_load(pid)
                if len(pid) == 6 and id(storage) not in zeroed:
                    # legacy: torch fills only listed storages; zeros, not uninitialised memory
                    storage._untyped_storage.fill_(0)
                    zeroed[id(storage)] = storage
                push(storage)
            else:
                _refuse(f'pickle opcode {op!r} is not allowed')


def _canonical_name(full: str) -> str:
    module, _, name = full.rpartition('.')
    module, name = _canonical(module, name)
    return f'{module}.{name}'


def scan_globals(file) -> List[Tuple[str, str]]:
    """Every ``(module, name)`` a pickle names, read without running it (up to its STOP).

    Raises:
        ValueError: The bytes are not a pickle (``pickletools`` cannot read them).
    """
    names: List[Tuple[str, str]] = []
    strings: List[Any] = []
    memo: Dict[int, Any] = {}
    for opcode, arg, _ in pickletools.genops(file):
        op = opcode.name
        if op == 'GLOBAL':
            module, _, name = arg.partition(' ')
            names.append((module, name))
            strings.append(None)
        elif op == 'STACK_GLOBAL':
            pair = strings[-2:]
            if len(pair) == 2 and all(isinstance(s, str) for s in pair):
                names.append((pair[0], pair[1]))
            else:
                names.append(('<computed>', 'STACK_GLOBAL'))
            strings.append(None)
        elif op in ('BINUNICODE', 'SHORT_BINUNICODE', 'BINUNICODE8', 'UNICODE'):
            strings.append(arg)
        elif op in ('BINPUT', 'LONG_BINPUT', 'PUT'):
            memo[arg] = strings[-1] if strings else None
        elif op == 'MEMOIZE':
            memo[len(memo)] = strings[-1] if strings else None
        elif op in ('BINGET', 'LONG_BINGET', 'GET'):
            strings.append(memo.get(arg))
        elif op in ('INST', 'OBJ', 'EXT1', 'EXT2', 'EXT4'):
            names.append(('<opcode>', op))
        elif op in ('FRAME', 'PROTO'):
            continue  # push nothing: a frame may start between a global's two names
        else:
            strings.append(None)
        if len(strings) > 2:
            del strings[:-2]
    return names


#: Leaves of plain data: what a loaded checkpoint may hold besides containers.
_LEAVES = (str, bytes, bytearray, int, float, complex, bool, type(None), torch.dtype,
           torch.device, torch.Size, np.dtype, np.bool_, np.number)


def _children(value: Any) -> List[Any]:
    """Check one loaded value; return the values it holds (to be checked in turn)."""
    kind = type(value)
    if kind in (dict, OrderedDict):
        held = [*value.keys(), *value.values()]
        if kind is OrderedDict:
            extra = set(vars(value)) - {'_metadata'}
            if extra:
                _refuse(f'an OrderedDict carries attributes {sorted(extra)}')
            held += list(vars(value).values())
        return held
    if kind in (list, tuple, set, frozenset):
        return list(value)
    if kind in (torch.Tensor, torch.nn.Parameter):
        if value._backward_hooks:
            _refuse('a tensor carries backward hooks')
        if value.is_quantized or value.is_meta or value.layout != torch.strided:
            _refuse('a tensor is quantized, sparse or has no data (meta)')
        _tensor_dtype(value.dtype)
        return []
    if kind is np.ndarray:
        _numeric_dtype(value.dtype, 'a numpy array\'s dtype')
        return []
    if kind is HistoryBuffer:
        if set(vars(value)) != _BUFFER_KEYS:
            _refuse('a HistoryBuffer was created but not given its state')
        _numeric_array(value._log_history, 'HistoryBuffer._log_history')
        _numeric_array(value._count_history, 'HistoryBuffer._count_history')
        return []
    if kind is argparse.Namespace:
        return list(vars(value).values())
    if not isinstance(value, _LEAVES) or isinstance(value, (_Global, _Statistic)):
        _refuse(f'it holds a {_describe(value)}, which is not plain data')
    return []


def check_plain_data(obj: Any, limit: int = MAX_EXPANDED_SIZE) -> None:
    """Refuse a loaded object that holds anything but plain data, a cycle, or too much.

    Plain data: containers, numbers, strings, bytes, torch dtypes / devices / sizes,
    plain tensors of number dtypes, numeric numpy values, and the ``HistoryBuffer``
    and ``Namespace`` objects :class:`SafeUnpickler` builds; the expanded size
    (shared parts counted each time) is at most ``limit``.

    Raises:
        UnsafeContentError: Naming the first offending value.
    """
    size: Dict[int, int] = {}
    held: Dict[int, List[Any]] = {}
    on_path = set()
    todo: List[Tuple[Any, bool]] = [(obj, False)]
    while todo:
        value, leaving = todo.pop()
        i = id(value)
        if leaving:
            on_path.discard(i)
            total = 1 + sum(size[id(c)] for c in held.pop(i))
            if total > limit:
                _refuse(f'it expands to more than {limit} items (shared parts repeated)')
            size[i] = total
            continue
        if i in size:
            continue
        if i in on_path:
            _refuse('it holds a container inside itself (a cycle)')
        children = _children(value)
        if not children:
            size[i] = 1
            continue
        on_path.add(i)
        held[i] = children
        todo.append((value, True))
        todo.extend((c, False) for c in children)


def _header_value(value: Any) -> bool:
    if type(value) is int:  # magic number, protocol version
        return True
    if type(value) is list:  # storage keys
        return len(value) <= MAX_TENSORS and all(
            type(k) is str and len(k) < 256 for k in value)
    if type(value) is dict:  # system info: {'little_endian': True, 'type_sizes': {...}}
        return len(value) < 16 and all(
            type(k) is str and (type(v) in (int, bool) or (type(v) is dict and len(v) < 16 and all(
                type(a) is str and type(b) is int for a, b in v.items())))
            for k, v in value.items())
    return False


def _load(file, **kwargs) -> Any:
    """``pickle.load`` for torch's legacy-format headers, held to their exact shape."""
    value = SafeUnpickler(file, **kwargs).load()
    if not _header_value(value):
        _refuse(f'a legacy-format header holds a {_describe(value)} of another shape than '
                f'torch writes')
    return value


class _PickleModule:
    """What ``torch.load(pickle_module=...)`` uses: ``Unpickler`` and ``load``."""
    __name__ = 'nose_mm.checkpoint.unpickler'
    Unpickler = SafeUnpickler
    UnpicklingError = pickle.UnpicklingError
    load = staticmethod(_load)


#: Pass as ``torch.load(..., weights_only=False, pickle_module=PICKLE_MODULE)``.
PICKLE_MODULE = _PickleModule()


def loads(data: bytes) -> Any:
    """Unpickle ``data`` (no persistent ids) safely, then :func:`check_plain_data`."""
    loaded = SafeUnpickler(io.BytesIO(data)).load()
    check_plain_data(loaded)
    return loaded
