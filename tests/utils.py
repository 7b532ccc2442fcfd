"""Helpers for tests that run the command-line tools as a user would."""
import os
import os.path as osp
import socket
import subprocess
import sys

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TEST_CONFIGS = osp.join(REPO, 'tests', 'data', 'configs')


def run_tool(*args, env=None, timeout=600, check=True):
    """Run ``python tools/<args>`` from the repo root; return the CompletedProcess."""
    full_env = dict(os.environ)
    full_env['PYTHONPATH'] = REPO + os.pathsep + full_env.get('PYTHONPATH', '')
    full_env.update(env or {})
    cmd = [sys.executable, osp.join(REPO, 'tools', args[0]), *map(str, args[1:])]
    proc = subprocess.run(cmd, cwd=REPO, env=full_env, capture_output=True, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f'{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n'
                             f'{proc.stderr[-5000:]}')
    return proc


def run_script(script, *args, env=None, timeout=600):
    """Run ``bash tools/<script> args`` with this interpreter as PYTHON."""
    full_env = dict(os.environ)
    full_env.update({'PYTHON': sys.executable, 'PORT': str(free_port())})
    full_env.update(env or {})
    cmd = ['bash', osp.join(REPO, 'tools', script), *map(str, args)]
    proc = subprocess.run(cmd, cwd=REPO, env=full_env, capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f'{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n'
                             f'{proc.stderr[-5000:]}')
    return proc


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def data_root_options(root, loaders=('train', 'val', 'test')):
    """``--cfg-options`` pointing every dataloader's dataset at ``root``."""
    return [f'{name}_dataloader.dataset.data_root={root}' for name in loaders]


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
