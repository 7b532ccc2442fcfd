"""Helpers for tests that run the command-line tools as a user would."""
import importlib.util
import os
import os.path as osp
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
