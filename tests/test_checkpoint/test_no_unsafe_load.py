"""No code of nose_mm reads a file in a way that can run code from it, but the safe reader.

``torch.load`` / ``pickle.load`` unpickle with the C unpickler (any callable the file
names), and ``Config.fromstring`` / ``fromfile`` of text taken from a checkpoint executes
it; every file nose_mm reads goes through ``nose_mm.checkpoint`` (``docs/design.md``).
The allowed places: the safe reader itself (it passes its own unpickler to ``torch.load``,
and holds the opt-in trusted load) and the loader benchmark, which times the unsafe load on
a file it has just written.
"""
import ast
import os
import os.path as osp

from tests.utils import REPO

ALLOWED = {
    'nose_mm/checkpoint/reader.py': {'torch.load'},
    'nose_mm/checkpoint/unpickler.py': set(),
    'tools/analysis/benchmark_load.py': {'torch.load'},
}
#: Calls that can run code from what they read.
UNSAFE = {'torch.load', 'pickle.load', 'pickle.loads', 'Config.fromstring', 'dill.load',
          'cloudpickle.load', 'pickle.Unpickler'}


def _dotted(node):
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return '.'.join(reversed(parts))
    return None


def _unsafe_calls(path):
    with open(path, encoding='utf-8') as f:
        tree = ast.parse(f.read(), path)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func) or ''
        if name in UNSAFE or name.endswith('.Config.fromstring'):
            found.append((node.lineno, name))
        if name in ('np.load', 'numpy.load') and any(
                k.arg == 'allow_pickle' and not (isinstance(k.value, ast.Constant)
                                                 and k.value.value is False)
                for k in node.keywords):
            found.append((node.lineno, name + '(allow_pickle)'))
    return found


def test_only_the_safe_reader_unpickles_or_runs_file_contents():
    offenders = []
    for top in ('nose_mm', 'tools', 'projects'):
        for root, _, files in os.walk(osp.join(REPO, top)):
            for name in files:
                if not name.endswith('.py'):
                    continue
                path = osp.join(root, name)
                rel = osp.relpath(path, REPO).replace(os.sep, '/')
                allowed = ALLOWED.get(rel, set())
                offenders += [f'{rel}:{line}: {call}' for line, call in _unsafe_calls(path)
                              if call not in allowed]
    assert offenders == []


def test_the_check_sees_the_calls_it_looks_for(tmp_path):
    probe = tmp_path / 'probe.py'
    probe.write_text('import torch, pickle\nfrom mmengine.config import Config\n'
                     'torch.load("a", weights_only=False)\npickle.loads(b"")\n'
                     'Config.fromstring("x = 1", file_format=".py")\n'
                     'np.load("a.npy", allow_pickle=True)\nnp.load("b.npy")\n')
    assert _unsafe_calls(str(probe)) == [(3, 'torch.load'), (4, 'pickle.loads'),
                                         (5, 'Config.fromstring'),
                                         (6, 'np.load(allow_pickle)')]
