"""Reliability probes, round 2 (issue 26): the faults and bad inputs a new user meets on the
demo configs, each with the message the user reads. Nothing may be lost (no checkpoint of
non-finite weights, no shrunk leaderboard, no stale results.json ranked) and nothing may be
silently wrong (a diluted fine-tune's checkpoints, a resume with another config).

Tools run in-process (``main(argv)``) on a tiny copy of the demo's digits data (the
ImageNet folder layout) with the demo's model; one training run is shared by the probes
that only need its checkpoints.
"""
import json
import os.path as osp
import re

import pytest
import torch

from nose_mm.utils import cli
from tests.utils import REPO, import_tool

pytestmark = pytest.mark.usefixtures('one_thread')

DEMO = osp.join(REPO, 'configs', 'demo')
BASE_CFG = osp.join(DEMO, 'deit-demo_baseline_digits-16px.py')
NOSE_CFG = osp.join(DEMO, 'deit-demo_nose_digits-16px.py')
DEIT3_CFG = osp.join(DEMO, 'deit3-demo_baseline_digits-16px.py')
ERR = 'nose_mm: error: '


@pytest.fixture(autouse=True)
def _no_debug(monkeypatch):
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)


@pytest.fixture(scope='module')
def digits(tmp_path_factory):
    """32 train / 16 val digits at 16 px in the ImageNet layout (the demo's data, smaller)."""
    from projects.demo.data import DIGIT_CLASSES, load_digit_images

    from nose_mm.datasets import write_image_folder
    images, labels = load_digit_images(16)
    root = str(tmp_path_factory.mktemp('digits'))
    write_image_folder(root, 'train', images[:32], labels[:32].tolist(), DIGIT_CLASSES)
    write_image_folder(root, 'val', images[32:48], labels[32:48].tolist(), DIGIT_CLASSES)
    return root


def tiny(root, *more, iters=2):
    """``--cfg-options`` for a short demo run on ``root``: ``iters`` iterations of 16."""
    return ['--cfg-options', *(f'{s}_dataloader.dataset.data_root={root}'
                               for s in ('train', 'val', 'test')),
            'train_dataloader.batch_size=16', 'val_dataloader.batch_size=16',
            'test_dataloader.batch_size=16', f'train_cfg.max_epochs={max(1, iters // 2)}',
            'train_cfg.val_interval=100', 'default_hooks.checkpoint.interval=1',
            'default_hooks.results.count_flops=False', *more]


def run(capsys, tool, *argv):
    """``tools/<tool>`` in-process: ``(status, stderr lines)``."""
    capsys.readouterr()
    status = import_tool(tool).main([str(a) for a in argv])
    return status, capsys.readouterr().err.strip().splitlines()


def error(capsys, tool, *argv):
    """The one ``nose_mm: error:`` line of a tool that must fail with exit 2."""
    status, err = run(capsys, tool, *argv)
    assert status == 2, err[-20:]
    assert err and err[-1].startswith(ERR), err[-20:]
    assert not any('Traceback' in line for line in err), err[-40:]
    return err[-1][len(ERR):]


# ---------------------------------------------------------------- data lost

def test_diverging_run_saves_no_non_finite_checkpoint_and_keeps_the_last_good(
        capsys, digits, tmp_path):
    """lr 1e10, a checkpoint every iteration, max_keep_ckpts=1: the loss of iteration 2 is
    finite but its update is not; iter_2.pth must not be written, iter_1.pth must stay."""
    work = tmp_path / 'work'
    message = error(capsys, 'train.py', BASE_CFG, '--work-dir', work,
                    *tiny(digits, 'optim_wrapper.optimizer.lr=1e10',
                          'default_hooks.checkpoint.by_epoch=False',
                          'default_hooks.checkpoint.max_keep_ckpts=1', iters=4))
    good = work / 'iter_1.pth'
    assert re.match(r'training diverged: the update left \d+ of 80 parameter tensors '
                    r'non-finite \(backbone\.cls_token, \.\.\.; loss=[\d.e+]+\) ', message)
    assert ' at iteration 2 (epoch 1); nothing after it was saved; the last checkpoint, ' \
        f'{good}, holds finite weights: start a new run from them with a lower learning rate ' \
        f'than lr=1e+10 (--cfg-options load_from={good} optim_wrapper.optimizer.lr=...) or ' \
        'clip gradients (optim_wrapper.clip_grad); --resume would bring back the diverging ' \
        'learning rate with the optimizer state' in message
    assert sorted(p.name for p in work.glob('*.pth')) == ['iter_1.pth']
    assert (work / 'last_checkpoint').read_text() == str(good)
    state = torch.load(good, map_location='cpu', weights_only=False)['state_dict']
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
    record = json.loads((work / 'results.json').read_text())
    assert (record['status'], record['error']) == ('failed', message)
    # the advice works: a new run from those weights with a sane lr trains and saves
    status, err = run(capsys, 'train.py', BASE_CFG, '--work-dir', tmp_path / 'again',
                      *tiny(digits, f'load_from={good}', 'optim_wrapper.optimizer.lr=1e-3'))
    assert status == 0, err[-10:]
    assert (tmp_path / 'again' / 'epoch_1.pth').is_file()
