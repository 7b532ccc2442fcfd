"""nose_mm's unpickler against the pieces an attacker combines (nose_mm issue 20).

The attack that ran code through the earlier allow-list, rebuilt from its parts:
1. a numpy dtype whose BUILD state makes it an object subarray with its flags
   cleared; 2. ``np.ndarray(shape, dtype, buffer)`` over attacker bytes, which
   then holds a forged object pointer; 3. a ``HistoryBuffer`` whose
   ``__setstate__`` takes any attribute (``as_subclass``), called through
   torch's ``_rebuild_from_type_v2``. Each step is written into a real torch
   checkpoint here (``torch.save`` of objects whose ``__reduce__`` emits it) and
   must be refused; the forged pointer is shown to be real under the old
   allow-list first, so the test cannot pass on a harmless file.
"""
import argparse
import copyreg
import io
import pickle
import pickletools
import re
import struct

import numpy as np
import pytest
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from numpy.core import multiarray

from nose_mm.checkpoint.reader import CheckpointLoadError, UnsafeCheckpointError, safe_torch_load
from nose_mm.checkpoint.unpickler import ALLOWED_GLOBALS, loads, scan_globals


class Reduce:
    """Pickles as ``func(*args)`` (then BUILD ``state`` when given)."""

    def __init__(self, func, args, state=None):
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        return (self.func, self.args) + (() if self.state is None else (self.state, ))


def dtype(spec, state=None):
    return Reduce(np.dtype, (spec, False, True), state)


def array(shape, dt, data):
    return Reduce(multiarray._reconstruct, (np.ndarray, (0, ), b'b'),
                  (1, shape, dt, False, data))


class New:
    """Pickles as ``cls.__new__(cls)`` (NEWOBJ) then BUILD ``state``."""

    def __init__(self, cls, state):
        self.cls, self.state = cls, state

    @property
    def __class__(self):  # pickle checks that NEWOBJ builds the object's own class
        return self.cls

    def __reduce__(self):
        return copyreg.__newobj__, (self.cls, ), self.state


new = New


#: Step 1: float64 turned into a one-element object subarray, flags cleared.
FORGED_DTYPE = dtype('f8', (3, '|', (dtype('O'), (1, )), None, None, 8, 8, 0))
#: Step 2: an ndarray over 8 attacker bytes (the address of None) with that dtype.
FORGED_POINTER = Reduce(np.ndarray, ((1, ), FORGED_DTYPE, struct.pack('<Q', id(None))))


def save(tmp_path, obj, name='evil.pth', **kwargs):
    path = tmp_path / name
    torch.save({'state_dict': {'w': torch.ones(2)}, 'meta': {'x': obj}}, path, **kwargs)
    return path


def refused(path, match):
    with pytest.raises(UnsafeCheckpointError, match=match) as info:
        safe_torch_load(path)
    assert str(path) in str(info.value)
    return str(info.value)


def old_allow_list():
    """What nose_mm allowed before issue 20 (with torch's weights_only defaults)."""
    return [np.ndarray, np.dtype, multiarray._reconstruct, multiarray.scalar, HistoryBuffer,
            *sorted({type(np.dtype(c)) for c in '?bhilqBHILQefdgO'} - {np.dtype},
                    key=lambda t: t.__name__)]


def test_the_forged_pointer_is_real_under_the_old_allow_list_and_refused_now(tmp_path):
    path = save(tmp_path, FORGED_POINTER)
    with torch.serialization.safe_globals(old_allow_list()):
        forged = torch.load(path, weights_only=True)['meta']['x']
    # a genuine object array whose element is whatever object the 8 bytes address
    assert forged.dtype == object and forged.reshape(-1)[0] is None
    # the object dtype it is made of is refused before anything is built from it
    refused(path, "numpy dtype 'O' is not allowed")


def test_step_1_a_steered_dtype_is_refused(tmp_path):
    refused(save(tmp_path, FORGED_DTYPE), "numpy dtype 'O' is not allowed")
    # the same state over a numeric subarray: the state is not numpy's own
    numeric = dtype('f8', (3, '|', (dtype('f8'), (1, )), None, None, 8, 8, 0))
    message = refused(save(tmp_path, numeric), 'numpy dtype float64 has state')
    assert "only numpy's own (3, '<', None, None, None, -1, -1, 0) is allowed" in message
    # the uint64 dtype with numpy's list-pickle flag
    refused(save(tmp_path, dtype('u8', (3, '<', None, None, None, -1, -1, 0x3f))),
            'numpy dtype uint64 has state')
    for spec in ('O', 'V8', 'U4', 'M8[s]'):  # object, void / structured, text, datetime
        refused(save(tmp_path, dtype(spec)), re.escape(f"numpy dtype '{spec}' is not allowed"))
    # numpy's own dtype pickles load: every allowed numeric type, both orders a file has
    for spec in ('?', 'i1', 'u2', 'i4', 'i8', 'f2', 'f4', 'f8', 'c16'):
        value = np.arange(3).astype(spec)
        torch.save({'a': value, 's': value[0]}, tmp_path / 'ok.pth')
        out = safe_torch_load(tmp_path / 'ok.pth')
        assert out['a'].dtype == value.dtype and np.array_equal(out['a'], value)
        assert type(out['s']) is type(value[0]) and out['s'] == value[0]
    # big-endian arrays (not written on the machines torch supports) are refused too
    refused(save(tmp_path, np.arange(3, dtype='>i4')), r"numpy dtype int32 has state \(3, '>'")


def test_step_2_arrays_only_from_numpys_own_pickle(tmp_path):
    refused(save(tmp_path, FORGED_POINTER), "numpy dtype 'O' is not allowed")
    # ndarray is a token, not a callable
    refused(save(tmp_path, Reduce(np.ndarray, ((1, ), dtype('f8'), b'\0' * 8))),
            'it calls numpy.ndarray, which cannot be called')
    # data that does not fit the shape, an object dtype, a second BUILD
    refused(save(tmp_path, array((4, ), dtype('f8'), b'\0' * 8)), 'needs 32 bytes of data')
    refused(save(tmp_path, array((1, ), dtype('O'), b'\0' * 8)), "numpy dtype 'O' is not")
    refused(save(tmp_path, Reduce(multiarray._reconstruct, (HistoryBuffer, (0, ), b'b'))),
            'numpy _reconstruct is allowed only as numpy pickles a plain ndarray')
    fine = np.arange(6, dtype=np.float32).reshape(2, 3)
    twice = Reduce(multiarray._reconstruct, (np.ndarray, (0, ), b'b'), fine.__reduce__()[2])
    data = pickle.dumps(twice, protocol=2)
    assert data.endswith(b'b.')
    with pytest.raises(pickle.UnpicklingError, match='twice'):
        loads(data[:-1] + pickle.dumps(fine.__reduce__()[2], protocol=2)[2:-1] + b'b.')
    assert np.array_equal(loads(data), fine)


def test_step_3_history_buffer_state_and_the_call_gadgets(tmp_path):
    good = HistoryBuffer([1.0, 3.0], [1, 1])
    state = good.__getstate__()
    # an extra attribute (the as_subclass gadget) is refused
    evil = dict(state, as_subclass=Reduce(getattr, (HistoryBuffer, 'current')))
    refused(save(tmp_path, new(HistoryBuffer, evil)), "a HistoryBuffer's state must hold")
    # statistics methods may only name themselves: the file cannot make mean() the max
    swapped = dict(state, statistics_methods={'mean': Reduce(getattr, (HistoryBuffer, 'max'))})
    before = dict(HistoryBuffer._statistics_methods)
    refused(save(tmp_path, new(HistoryBuffer, swapped)), 'may name only the built-in')
    assert HistoryBuffer._statistics_methods == before
    # getattr gives no callable, and nothing else is reachable through it
    refused(save(tmp_path, Reduce(getattr, (HistoryBuffer, '__init__'))),
            r"getattr\(mmengine.logging.history_buffer.HistoryBuffer, '__init__'\)")
    refused(save(tmp_path, Reduce(getattr, (HistoryBuffer, 'current'))), 'not plain data')
    # torch's general rebuild (calls anything, then ret.as_subclass) is not allowed at all
    gadget = Reduce(torch._tensor._rebuild_from_type_v2,
                    (HistoryBuffer, HistoryBuffer, (), {}))
    message = refused(save(tmp_path, gadget), 'holds')
    assert "'torch._tensor._rebuild_from_type_v2'" in message
    # arrays in a buffer must be numeric 1-d; a legitimate buffer loads with its class intact
    bad = dict(state, _log_history=np.zeros((2, 2)))
    refused(save(tmp_path, new(HistoryBuffer, bad)), '1-d numeric numpy array')
    torch.save({'h': good}, tmp_path / 'ok.pth')
    loaded = safe_torch_load(tmp_path / 'ok.pth')['h']
    assert type(loaded) is HistoryBuffer and loaded.mean() == 2.0 and loaded.max() == 3.0
    assert HistoryBuffer._statistics_methods == before


def test_every_other_gadget_torch_allows_is_refused(tmp_path):
    t = torch.ones(2)
    t.extra = 'python state'  # pickled through _rebuild_from_type_v2
    assert "'torch._tensor._rebuild_from_type_v2'" in refused(save(tmp_path, t), 'holds')
    # a tensor with a backward hook (code run in backward)
    from collections import OrderedDict
    hooks = OrderedDict(h=Reduce(getattr, (HistoryBuffer, 'mean')))

    class Hooked:
        def __reduce__(self):
            return (torch._utils._rebuild_parameter, (torch.ones(2), True, hooks))
    refused(save(tmp_path, Hooked()), 'backward hooks')
    # an OrderedDict may carry only state_dict metadata (attributes shadow its methods)
    od = OrderedDict(a=1)
    od.keys_of = 'an attribute'
    refused(save(tmp_path, od), 'an OrderedDict may carry only _metadata')
    # a Namespace attribute that shadows its repr helpers
    ns = argparse.Namespace(ok=1)
    setattr(ns, '_get_kwargs', 1)
    refused(save(tmp_path, ns), 'public names')
    refused(save(tmp_path, Reduce(torch.Tensor, ())), "holds 'torch.Tensor'")
    from collections import Counter
    refused(save(tmp_path, Counter('ab')), "holds 'collections.Counter'")


def test_the_refusal_lists_every_name_in_both_formats(tmp_path):
    evil = {'a': Reduce(eval, ('1', )), 'b': Reduce(print, ('x', ))}
    for legacy in (False, True):
        path = save(tmp_path, evil, name=f'e{legacy}.pth',
                    _use_new_zipfile_serialization=not legacy)
        message = refused(path, 'holds')
        assert "holds 'builtins.eval', 'builtins.print', which is not allowed" in message


def test_scan_globals_reads_every_protocol():
    obj = {'h': HistoryBuffer([1.0], [1]), 'a': np.ones(2)}
    for protocol in (2, 3, 4, 5):
        names = {f'{m}.{n}' for m, n in scan_globals(io.BytesIO(pickle.dumps(obj, protocol)))}
        assert names >= {'numpy.dtype'}, protocol
        assert all(n in ALLOWED_GLOBALS or n.startswith('__builtin__') for n in names), names
        out = loads(pickle.dumps(obj, protocol))
        assert out['h'].mean() == 1.0 and np.array_equal(out['a'], np.ones(2))


def test_malformed_and_hostile_pickles_are_one_error(tmp_path):
    cases = {
        'ext': b'\x80\x02\x82\x01.',  # EXT1: copyreg's extension registry
        'inst': b'(ios\nsystem\n.',  # protocol-0 INST
        'deep': b'\x80\x02' + b']' * 200000 + b'.',
        'memo': b'\x80\x02h\x05.',
        'stack': b'\x80\x02t.',
        'truncated': b'\x80\x02X\xff\xff\x00\x00ab',
        'huge': b'\x80\x02\x8b\xff\xff\xff\x7f',
    }
    for name, data in cases.items():
        with pytest.raises((pickle.UnpicklingError, EOFError, ValueError)):
            loads(data)
        # as a legacy-format checkpoint: one CheckpointLoadError naming the file
        path = tmp_path / f'{name}.pth'
        path.write_bytes(data)
        with pytest.raises(CheckpointLoadError, match=str(path)):
            safe_torch_load(path)


def test_dtypes_numpy_shares_load_from_separate_pickles(tmp_path):
    # np.dtype('f8') is one object: separate pickles of it BUILD it more than once
    a, b = np.ones(2), np.zeros(3)
    torch.save({'x': [a], 'y': {'z': b}, 's': [np.float64(1), np.float64(2)]}, tmp_path / 'd.pth')
    out = safe_torch_load(tmp_path / 'd.pth')
    assert np.array_equal(out['y']['z'], b) and out['s'][1] == 2.0


def _shared_tuple(depth: int) -> bytes:
    """Opcodes (no PROTO) pushing t_depth, t_k = (t_{k-1}, t_{k-1}): 2**depth leaves."""
    ops = b'N'  # t_0 = None
    for i in range(depth):  # LONG_BINPUT i, POP, LONG_BINGET i twice, TUPLE2
        index = struct.pack('<I', i)
        ops += b'r' + index + b'0' + b'j' + index + b'j' + index + b'\x86'
    return ops


def test_shared_structures_cannot_make_loading_exponential():
    # as a dict key: hashing would visit 2**40 items; refused at once
    with pytest.raises(pickle.UnpicklingError, match='expands to more than 256 items'):
        loads(b'\x80\x02}' + _shared_tuple(40) + b'Ns.')
    # as a value: printing or saving it would; the loaded object is refused
    with pytest.raises(pickle.UnpicklingError, match='expands to more than 10000000 items'):
        loads(b'\x80\x02' + _shared_tuple(40) + b'.')
    small = loads(b'\x80\x02' + _shared_tuple(3) + b'.')
    assert small == (((None, None), ) * 2, ) * 2
    # ints equal modulo 2**61 - 1 collide in a set: only small ints are keys
    colliding = [1 + k * (2**61 - 1) for k in range(1, 4)]
    with pytest.raises(pickle.UnpicklingError, match='only strings, bytes, small ints'):
        loads(pickle.dumps({v: 0 for v in colliding}, protocol=2))
    with pytest.raises(pickle.UnpicklingError, match='only strings, bytes, small ints'):
        loads(pickle.dumps({0.5: 1}, protocol=2))
    # a list holding itself (a cycle) is refused
    cyclic = []
    cyclic.append(cyclic)
    with pytest.raises(pickle.UnpicklingError, match='a cycle'):
        loads(pickle.dumps(cyclic, protocol=2))
    # a refusal names a shared structure without printing it
    with pytest.raises(pickle.UnpicklingError) as info:
        loads(b'\x80\x02cnumpy\ndtype\n' + _shared_tuple(30) + b'\x89\x88\x87R.')
    assert str(info.value).startswith('numpy dtype tuple is not allowed')


def test_archive_tricks_are_refused(tmp_path):
    import zipfile
    good = tmp_path / 'good.pth'
    torch.save({'w': torch.zeros(1000)}, good)
    packed = tmp_path / 'packed.pth'  # the same records, deflated: torch would inflate them
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(packed, 'w', zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    with pytest.raises(CheckpointLoadError, match="data.pkl' is compressed"):
        safe_torch_load(packed)
    # quantized / bit tensors and tensors without data (meta) are refused
    for tensor in (torch.quantize_per_tensor(torch.ones(4), 0.1, 0, torch.qint8),
                   torch.ones(4, device='meta')):
        torch.save({'w': tensor}, tmp_path / 'odd.pth')
        with pytest.raises(UnsafeCheckpointError):
            safe_torch_load(tmp_path / 'odd.pth')


def test_legacy_storages_hold_the_files_bytes_or_zeros(tmp_path):
    """The legacy format fills storages after the pickle, only those it lists."""
    path = tmp_path / 'legacy.pth'
    torch.save({'w': torch.arange(6.0)}, path, _use_new_zipfile_serialization=False)
    data = path.read_bytes()
    # keep magic, protocol, sys info and the object; an empty key list, no data: the
    # tensor's storage would be uninitialised memory
    f = io.BytesIO(data)
    for _ in range(4):
        list(pickletools.genops(f))
    cut = tmp_path / 'cut.pth'
    cut.write_bytes(data[:f.tell()] + pickle.dumps([], protocol=2))
    out = safe_torch_load(cut)
    assert torch.equal(out['w'], torch.zeros(6))
    assert torch.equal(safe_torch_load(path)['w'], torch.arange(6.0))


def test_a_builder_given_wrong_arguments_is_the_one_line_error(tmp_path, capsys):
    from tests.utils import import_tool
    # an allowed callable called with the wrong number of arguments (TypeError), and a
    # tensor torch refuses to build (RuntimeError)
    from collections import OrderedDict
    storage = torch.ones(2).storage()  # a view far larger than its 2-element storage
    oversized = Reduce(torch._utils._rebuild_tensor_v2,
                       (storage, 0, (10**6, ), (1, ), False, OrderedDict()))
    for name, obj in (('args', Reduce(np.dtype, ('f8', False, True, 'extra'))),
                      ('oversized', oversized)):
        path = save(tmp_path, obj, name=f'{name}.pth')
        assert import_tool('prune.py').main([str(path), str(tmp_path / 'out.pth')]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("nose_mm: error: ") and str(path) in err[0]
        assert not (tmp_path / 'out.pth').exists()


def _zip_entries(data: bytes):
    """(central directory offset, [(entry offset in the directory, name)]) of a zip."""
    size, offset = struct.unpack('<II', data[-10:-2])
    entries, p = [], offset
    while p < offset + size:
        n, m, k = struct.unpack('<HHH', data[p + 28:p + 34])
        entries.append((p, data[p + 46:p + 46 + n].decode()))
        p += 46 + n + m + k
    return offset, size, entries


def test_archives_laid_out_otherwise_than_torch_save_are_refused(tmp_path):
    good = tmp_path / 'good.pth'
    torch.save({'a': torch.zeros(4096), 'b': torch.ones(4096)}, good)
    data = good.read_bytes()
    assert data[-22:-18] == b'PK\x05\x06'  # no archive comment
    offset, size, entries = _zip_entries(data)
    # two central directories: Python's zipfile would read the second, torch the first
    twice = tmp_path / 'twice.pth'
    twice.write_bytes(data[:offset + size] + data[offset:offset + size] + data[-22:])
    with pytest.raises(CheckpointLoadError, match='its central directory is not where'):
        safe_torch_load(twice)
    # two records over one stored block (one 16 KiB block loaded as many tensors)
    where = {name.rsplit('/', 2)[-2] + '/' + name.rsplit('/', 1)[-1]: p for p, name in entries}
    first = struct.unpack('<I', data[where['data/0'] + 42:where['data/0'] + 46])[0]
    overlap = bytearray(data)
    overlap[where['data/1'] + 42:where['data/1'] + 46] = struct.pack('<I', first)
    (tmp_path / 'overlap.pth').write_bytes(bytes(overlap))
    with pytest.raises(CheckpointLoadError, match='torch.save does not write such archives'):
        safe_torch_load(tmp_path / 'overlap.pth')
    assert torch.equal(safe_torch_load(good)['b'], torch.ones(4096))
    # a huge value of the file in torch's own message: the line stays short
    import zipfile
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(tmp_path / 'order.pth', 'w') as dst:
        for info in src.infolist():
            body = b'A' * 100_000 if info.filename.endswith('/byteorder') else src.read(info)
            dst.writestr(info.filename, body)
    with pytest.raises(CheckpointLoadError) as info:
        safe_torch_load(tmp_path / 'order.pth')
    assert 'Unknown endianness' in str(info.value) and len(str(info.value)) < 500


def test_legacy_headers_and_storages_are_held_to_what_torch_writes(tmp_path):
    from torch.serialization import MAGIC_NUMBER, PROTOCOL_VERSION
    path = tmp_path / 'legacy.pth'
    torch.save({'w': torch.zeros(100_000)}, path, _use_new_zipfile_serialization=False)
    data = path.read_bytes()
    head = pickle.dumps(MAGIC_NUMBER, protocol=2) + pickle.dumps(PROTOCOL_VERSION, protocol=2)
    assert data.startswith(head)
    # torch formats the protocol version into its own error: a list here could be huge
    (tmp_path / 'hdr.pth').write_bytes(pickle.dumps(MAGIC_NUMBER, protocol=2)
                                       + pickle.dumps([PROTOCOL_VERSION], protocol=2)
                                       + data[len(head):])
    with pytest.raises(UnsafeCheckpointError, match='a legacy-format header holds a list'):
        safe_torch_load(tmp_path / 'hdr.pth')
    # the pickles without the 400 kB of data they announce: more bytes than the file
    f = io.BytesIO(data)
    for _ in range(4):
        list(pickletools.genops(f))
    (tmp_path / 'short.pth').write_bytes(data[:f.tell()])
    with pytest.raises(UnsafeCheckpointError, match='a persistent id is not a stored tensor'):
        safe_torch_load(tmp_path / 'short.pth')


def test_budgets_of_objects_and_tensors(tmp_path, monkeypatch):
    from nose_mm.checkpoint import unpickler as safe_unpickle
    torch.save({f'w{i}': torch.ones(1) for i in range(5)}, tmp_path / 'five.pth')
    monkeypatch.setattr(safe_unpickle, 'MAX_TENSORS', 4)
    with pytest.raises(UnsafeCheckpointError, match='it builds more than 4 tensors'):
        safe_torch_load(tmp_path / 'five.pth')
    monkeypatch.setattr(safe_unpickle, 'MAX_TENSORS', 5)
    assert len(safe_torch_load(tmp_path / 'five.pth')) == 5
    monkeypatch.setattr(safe_unpickle, 'MAX_OBJECTS', 10)
    with pytest.raises(UnsafeCheckpointError, match='it creates more than 10 objects'):
        safe_torch_load(tmp_path / 'five.pth')


def test_a_protocol_4_file_with_frames_loads(tmp_path):
    # the pickler may start a frame between the two names of a STACK_GLOBAL
    obj = {'a': b'x' * 65507, 'ns': argparse.Namespace(lr=1)}
    torch.save(obj, tmp_path / 'p4.pth', pickle_protocol=4)
    out = safe_torch_load(tmp_path / 'p4.pth')
    assert out['a'] == obj['a'] and out['ns'].lr == 1


def test_prune_names_malformed_meta(tmp_path, capsys):
    from tests.utils import import_tool
    for meta, expected in (
            (dict(dilution_lam=[0]), 'meta["dilution_lam"] must be a number, got a list'),
            (dict(dilution_lam=0.0, dilution_layers=5, dilution_compensate=True),
             'meta["dilution_layers"] must be a list of layer indices, got 5'),
            (dict(dilution_lam=0.0, dilution_layers=[1], dilution_compensate=True,
                  removed_layers=None),
             'meta["removed_layers"] must be a list of layer indices, got None')):
        torch.save({'state_dict': {'w': torch.ones(1)}, 'meta': meta}, tmp_path / 'm.pth')
        assert import_tool('prune.py').main([str(tmp_path / 'm.pth'),
                                             str(tmp_path / 'out.pth')]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f'nose_mm: error: refusing to prune: {expected}']
