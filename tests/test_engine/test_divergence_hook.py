"""DivergenceHook: a non-finite loss stops training with one line, exit 2, and no results.json
row that the leaderboard would rank."""
import json
import os.path as osp

import pytest

from tests.utils import TEST_CONFIGS, data_root_options, run_tool

pytestmark = pytest.mark.usefixtures('one_thread')

CLS_CFG = osp.join(TEST_CONFIGS, 'tiny-vit_cifar100.py')
HINT = ('no checkpoint was saved before it: train again with a lower learning rate than '
        'lr=1e+10 (--cfg-options optim_wrapper.optimizer.lr=...) or clip gradients '
        '(optim_wrapper.clip_grad)')


@pytest.mark.slow  # one tools/train.py process: ~35 s on the shared 2-core machine
def test_lr_1e10_stops_with_one_line_exit_2_and_a_failed_row(tiny_cifar100, tmp_path):
    from nose_mm.benchmark.leaderboard import rows_from_runs
    work = tmp_path / 'work'
    proc = run_tool('train.py', CLS_CFG, '--work-dir', work, '--cfg-options',
                    *data_root_options(tiny_cifar100), 'optim_wrapper.optimizer.lr=1e10',
                    check=False)
    message = f'training diverged: loss is nan at iteration 2 (epoch 1); {HINT}'
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1] == f'nose_mm: error: {message}'
    assert 'Traceback' not in proc.stderr
    assert not list(work.glob('*.pth'))  # nothing saved after the divergence
    with open(work / 'results.json') as f:
        row = json.load(f)
    assert (row['status'], row['error'], row['metrics']) == ('failed', message, {})
    rows, problems = rows_from_runs([str(work)])
    assert rows == []
    assert problems == [f'{work / "results.json"}: "status" is \'failed\' ({message}): a failed '
                        f'run is not ranked']


def test_patience_from_the_config(tiny_cifar100, tmp_path):
    from mmengine.config import Config

    from nose_mm.apis import build_runner, setup_train_cfg
    from nose_mm.engine.hooks import TrainingDivergedError
    from nose_mm.utils.cli import UserError
    cfg = Config.fromfile(CLS_CFG)
    cfg.merge_from_dict(dict(o.split('=') for o in data_root_options(tiny_cifar100)))
    cfg.optim_wrapper.optimizer.lr = 1e10
    both = cfg.copy()
    both.custom_hooks = [dict(type='DivergenceHook', patience=2)]
    with pytest.raises(UserError, match=r'DivergenceHook is both default_hooks.divergence and '
                                        r'in custom_hooks; keep one'):
        setup_train_cfg(both, CLS_CFG, work_dir=str(tmp_path / 'work'))
    cfg.default_hooks.divergence.patience = 2  # the runtime declares the hook every run has
    setup_train_cfg(cfg, CLS_CFG, work_dir=str(tmp_path / 'work'))
    assert [cfg.default_hooks[k]['type'] for k in ('results', 'divergence', 'random_state')] \
        == ['ResultsHook', 'DivergenceHook', 'RandomStateHook']
    runner = build_runner(cfg)
    with pytest.raises(TrainingDivergedError) as info:
        runner.train()
    # patience tolerates non-finite losses (an AMP step skipped), never non-finite weights:
    # the NaN loss of iteration 2 is tolerated, the NaN weights its update left are not
    message = (f'training diverged: the update left 56 of 56 parameter tensors non-finite '
               f'(backbone.cls_token, ...; loss=nan) at iteration 2 (epoch 1); {HINT}')
    assert str(info.value) == message
    with open(tmp_path / 'work' / 'results.json') as f:
        row = json.load(f)
    assert (row['status'], row['error']) == ('failed', message)


@pytest.mark.parametrize('patience', [-1, 1.5, True, '2'])
def test_bad_patience_is_named(patience):
    from nose_mm.engine.hooks import DivergenceHook
    with pytest.raises(ValueError) as info:
        DivergenceHook(patience=patience)
    assert str(info.value) == f'patience must be an integer >= 0, got {patience!r}'
