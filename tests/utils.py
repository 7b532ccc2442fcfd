"""Helpers for tests that run the command-line tools as a user would."""
import atexit
import importlib.util
import json
import os
import os.path as osp
import select
import shutil
import signal
import subprocess
import sys
import tempfile

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TEST_CONFIGS = osp.join(REPO, 'tests', 'data', 'configs')


#: set to 1 to start every tool in a new interpreter instead of tests/tool_server.py
FRESH_ENV = 'NOSE_MM_TEST_FRESH_PROCESS'


class _ToolServer:
    """Client of ``tests/tool_server.py``: one pre-imported interpreter for the session."""

    def __init__(self):
        env = dict(os.environ)
        env['PYTHONPATH'] = REPO + os.pathsep + env.get('PYTHONPATH', '')
        self.folder = tempfile.mkdtemp(prefix='nose_mm_tools_')
        self.log = osp.join(self.folder, 'server.log')
        with open(self.log, 'w') as log:
            self.proc = subprocess.Popen(
                [sys.executable, osp.join(REPO, 'tests', 'tool_server.py')], cwd=REPO, env=env,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
                bufsize=1)
        self.calls = 0
        self._reply(timeout=300)  # ready

    def _reply(self, timeout=None):
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else None
        if not line:
            if ready or self.proc.poll() is not None:
                raise RuntimeError('tests/tool_server.py stopped; its log:\n'
                                   + open(self.log).read()[-3000:])
            return None
        return json.loads(line)

    def run(self, tool, args, env, timeout):
        self.calls += 1
        out = osp.join(self.folder, f'{self.calls}.out')
        err = osp.join(self.folder, f'{self.calls}.err')
        self.proc.stdin.write(json.dumps(dict(tool=tool, args=args, env=env, cwd=REPO,
                                              stdout=out, stderr=err)) + '\n')
        self.proc.stdin.flush()
        pid = self._reply(timeout=60)['pid']
        reply = self._reply(timeout=timeout)
        timed_out = reply is None
        if timed_out:
            os.killpg(pid, signal.SIGKILL)
            reply = self._reply(timeout=60)
        with open(out) as f_out, open(err) as f_err:
            stdout, stderr = f_out.read(), f_err.read()
        os.remove(out)
        os.remove(err)
        cmd = [sys.executable, osp.join(REPO, 'tools', tool), *args]
        if timed_out:
            raise subprocess.TimeoutExpired(cmd, timeout, stdout, stderr)
        return subprocess.CompletedProcess(cmd, reply['returncode'], stdout, stderr)

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.folder, ignore_errors=True)


_SERVER = None


def _server():
    global _SERVER
    if _SERVER is None or _SERVER.proc.poll() is not None:
        _SERVER = _ToolServer()
        atexit.register(_SERVER.close)
    return _SERVER


def run_tool(*args, env=None, timeout=600, check=True):
    """Run ``python tools/<args>`` from the repo root; return the CompletedProcess.

    The tool runs in its own process forked from ``tests/tool_server.py`` (the
    imports done once per session); ``NOSE_MM_TEST_FRESH_PROCESS=1`` starts a
    new interpreter per call instead.
    """
    full_env = dict(os.environ)
    full_env['PYTHONPATH'] = REPO + os.pathsep + full_env.get('PYTHONPATH', '')
    full_env.update(env or {})
    argv = [str(a) for a in args[1:]]
    cmd = [sys.executable, osp.join(REPO, 'tools', args[0]), *argv]
    if os.environ.get(FRESH_ENV) == '1':
        proc = subprocess.run(cmd, cwd=REPO, env=full_env, capture_output=True, text=True,
                              timeout=timeout)
    else:
        proc = _server().run(args[0], argv, full_env, timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f'{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n'
                             f'{proc.stderr[-5000:]}')
    return proc


def import_tool(path):
    """Import ``tools/<path>`` as a module; its ``main(argv)`` runs the tool in-process."""
    name = 'tool_' + path[:-3].replace('/', '_')
    spec = importlib.util.spec_from_file_location(name, osp.join(REPO, 'tools', path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_script(script, *args, env=None, timeout=600):
    """Run ``bash tools/<script> args`` with this interpreter as PYTHON."""
    full_env = dict(os.environ)
    full_env['PYTHON'] = sys.executable
    full_env.pop('PORT', None)  # one node: torchrun --standalone chooses a free port
    full_env.update(env or {})
    cmd = ['bash', osp.join(REPO, 'tools', script), *map(str, args)]
    proc = subprocess.run(cmd, cwd=REPO, env=full_env, capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f'{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n'
                             f'{proc.stderr[-5000:]}')
    return proc


def data_root_options(root, loaders=('train', 'val', 'test')):
    """``--cfg-options`` pointing every dataloader's dataset at ``root``."""
    return [f'{name}_dataloader.dataset.data_root={root}' for name in loaders]


def assert_top1_of(top1, num_images):
    """``top1`` (percent) must be ``100 * k / num_images`` for a whole number ``k`` of images.

    Fails when the metric was computed on another number of images (a split
    dropped or duplicated across ranks, the wrong dataset), unlike a range check.
    """
    correct = top1 * num_images / 100.0
    assert abs(correct - round(correct)) < 1e-3 * num_images and 0 <= round(correct) \
        <= num_images, f'top1={top1} is not k/{num_images} of the images'
    return round(correct)


def reference_pruned_forward(model, x, removed):
    """Logits of a timm ViT computed as the reference code's pruned model: blocks in
    ``removed`` compute ``x = 2x; x = x + mlp(norm2(x))`` (no norm1 / attention)."""
    h = model.norm_pre(model._pos_embed(model.patch_embed(x)))
    for i, block in enumerate(model.blocks):
        if i in removed:
            h = 2 * h
            h = h + block.mlp(block.norm2(h))
        else:
            h = block(h)
    return model.head(model.norm(h)[:, 0])
