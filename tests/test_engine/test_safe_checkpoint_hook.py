"""SafeCheckpointHook: a run killed while it writes a checkpoint keeps a loadable one."""
import glob
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

from tests.utils import REPO, TEST_CONFIGS, data_root_options, run_tool

CLS_CFG = osp.join(TEST_CONFIGS, 'tiny-vit_cifar100.py')

# Runs tools/train.py with mmengine's local file writer patched: the second
# checkpoint write puts half of its bytes on disk, then the process dies
# (os._exit: no cleanup, as with SIGKILL / OOM / pre-emption).
KILL_DURING_SECOND_SAVE = r'''
import os, runpy, sys
from mmengine.fileio.backends.local_backend import LocalBackend
put, saves = LocalBackend.put, []
def half_put(self, obj, filepath):
    if '.pth' in str(filepath):
        saves.append(filepath)
        if len(saves) == 2:
            with open(filepath, 'wb') as f:
                f.write(obj[:len(obj) // 2])
                f.flush()
                os.fsync(f.fileno())
            os._exit(137)
    put(self, obj, filepath)
LocalBackend.put = half_put
sys.argv = sys.argv[1:]
sys.exit(runpy.run_path(sys.argv[0], run_name='__main__'))
'''


def _train_killed(work, opts, *extra):
    cmd = [sys.executable, '-c', KILL_DURING_SECOND_SAVE, osp.join(REPO, 'tools', 'train.py'),
           CLS_CFG, '--work-dir', str(work), '--cfg-options', *opts, *extra]
    env = dict(__import__('os').environ, PYTHONPATH=REPO)
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def _load(path):
    return torch.load(path, map_location='cpu', weights_only=False)


@pytest.mark.slow  # two tools/train.py runs: ~70 s on the shared 2-core machine
def test_kill_during_save_keeps_a_loadable_checkpoint_and_resume_finishes(
        tiny_cifar100, tmp_path):
    work = tmp_path / 'work'
    opts = [*data_root_options(tiny_cifar100), 'default_hooks.checkpoint.max_keep_ckpts=1']
    proc = _train_killed(work, opts)
    assert proc.returncode == 137, proc.stderr[-3000:]
    # Killed half-way through epoch_2.pth: only its temporary file is partial.
    assert [osp.basename(p) for p in glob.glob(str(work / '*.pth'))] == ['epoch_1.pth']
    temps = glob.glob(str(work / '.epoch_2.pth.*.nose_mm-tmp'))
    assert len(temps) == 1 and osp.getsize(temps[0]) < osp.getsize(work / 'epoch_1.pth')
    last = (work / 'last_checkpoint').read_text()
    assert last == str(work / 'epoch_1.pth') and osp.isfile(last)
    assert _load(last)['meta']['epoch'] == 1

    proc = run_tool('train.py', CLS_CFG, '--work-dir', work, '--resume', '--cfg-options', *opts)
    log = proc.stdout + proc.stderr
    assert 'resumed epoch: 1, iter: 5' in log
    assert f'SafeCheckpointHook: removed {temps[0]}, left by a save that did not finish' in log
    assert not glob.glob(str(work / '.*'))
    # Resumed and finished; max_keep_ckpts=1 removed epoch_1 after epoch_2 was in place.
    assert sorted(osp.basename(p) for p in glob.glob(str(work / '*.pth'))) == ['epoch_2.pth']
    assert (work / 'last_checkpoint').read_text() == str(work / 'epoch_2.pth')
    assert _load(work / 'epoch_2.pth')['meta']['epoch'] == 2
    assert (work / 'results.json').is_file()


@pytest.mark.slow
def test_the_same_kill_loses_mmengines_checkpoint(tiny_cifar100, tmp_path):
    """The kill above is real: with mmengine's CheckpointHook it leaves nothing to resume."""
    work = tmp_path / 'work'
    opts = [*data_root_options(tiny_cifar100), 'default_hooks.checkpoint.max_keep_ckpts=1',
            'default_hooks.checkpoint.type=CheckpointHook']
    assert _train_killed(work, opts).returncode == 137
    assert not (work / 'epoch_1.pth').exists()
    with pytest.raises(Exception):
        _load(work / 'epoch_2.pth')  # half written
    assert (work / 'last_checkpoint').read_text() == str(work / 'epoch_1.pth')


def test_refuses_other_storage_backends():
    from nose_mm.engine.hooks import SafeCheckpointHook
    with pytest.raises(ValueError, match=r"^SafeCheckpointHook writes local folders only; got "
                       r"backend_args=\{'backend': 'petrel'\} \(allowed backend: 'local'\); use "
                       r"mmengine's CheckpointHook for other storage$"):
        SafeCheckpointHook(interval=1, backend_args=dict(backend='petrel'))


def test_every_config_uses_a_safe_checkpoint_hook():
    import nose_mm  # noqa: F401
    from mmengine.registry import HOOKS

    from nose_mm.engine.hooks import SafeCheckpointHook
    paths = glob.glob(osp.join(REPO, 'configs', '**', '*.py'), recursive=True) + \
        glob.glob(osp.join(TEST_CONFIGS, '*.py'))
    paths = [p for p in paths if '_base_' not in p]
    assert len(paths) > 20
    for path in paths:
        cfg = Config.fromfile(path)
        hook_type = cfg.default_hooks.checkpoint.type
        assert issubclass(HOOKS.get(hook_type), SafeCheckpointHook), (path, hook_type)


def test_previous_best_is_removed_only_after_the_new_best_is_saved(tiny_cifar100, tmp_path,
                                                                    monkeypatch, one_thread):
    from nose_mm.apis import build_runner, setup_train_cfg
    cfg = Config.fromfile(CLS_CFG)
    cfg.merge_from_dict(dict(o.split('=') for o in data_root_options(tiny_cifar100)))
    cfg.merge_from_dict({'train_cfg.max_epochs': 1, 'val_cfg': None, 'val_dataloader': None,
                         'val_evaluator': None, 'default_hooks.checkpoint.max_keep_ckpts': 1,
                         'default_hooks.checkpoint.save_best': 'acc',
                         'default_hooks.checkpoint.rule': 'greater'})
    setup_train_cfg(cfg, CLS_CFG, work_dir=str(tmp_path / 'work'))
    runner = build_runner(cfg)
    runner.train()
    hook = next(h for h in runner.hooks if type(h).__name__ == 'SafeCheckpointHook')
    work = tmp_path / 'work'
    hook.after_val_epoch(runner, {'acc': 1.0})
    runner.train_loop._epoch = 2
    hook.after_val_epoch(runner, {'acc': 2.0})
    assert sorted(p.name for p in work.glob('best_*.pth')) == ['best_acc_epoch_2.pth']

    class Killed(Exception):
        pass

    def killed_save(*args, **kwargs):
        raise Killed

    runner.train_loop._epoch = 3
    with monkeypatch.context() as patch:  # the process dies while the new best is written
        patch.setattr(runner, 'save_checkpoint', killed_save)
        with pytest.raises(Killed):
            hook.after_val_epoch(runner, {'acc': 3.0})
    # mmengine's hook would have removed it before writing the new one.
    assert sorted(p.name for p in work.glob('best_*.pth')) == ['best_acc_epoch_2.pth']
    assert _load(work / 'best_acc_epoch_2.pth')['meta']['epoch'] == 2
    assert osp.isfile((work / 'last_checkpoint').read_text())
