"""tools/train.py, --resume, load_from and tools/test.py on real Runners and tiny data."""
import os.path as osp
import re

import mmengine
import pytest
import torch

from tests.utils import TEST_CONFIGS, assert_top1_of, data_root_options, run_tool

CLS_CFG = osp.join(TEST_CONFIGS, 'tiny-vit_cifar100.py')
SEG_CFG = osp.join(TEST_CONFIGS, 'tiny-upernet_ade20k.py')


def _load(path):
    return torch.load(path, map_location='cpu', weights_only=False)


def test_runner_checkpoints_need_the_carried_torch_load_fix(tiny_cifar100, tmp_path):
    work = tmp_path / 'work'
    run_tool('train.py', CLS_CFG, '--work-dir', work, '--cfg-options',
             *data_root_options(tiny_cifar100), 'train_cfg.max_epochs=1')
    ckpt = work / 'epoch_1.pth'
    # Plain torch.load (weights_only=True by default since torch 2.6) refuses
    # mmengine's checkpoints: this is what nose_mm.checkpoint.mmengine_loader fixes.
    with pytest.raises(Exception, match='weights_only|Unsupported global'):
        torch.load(ckpt, map_location='cpu')
    import nose_mm  # noqa: F401
    from mmengine.runner import CheckpointLoader
    assert CheckpointLoader.load_checkpoint(str(ckpt))['meta']['epoch'] == 1


def _predict(cfg_path, checkpoint, data_root):
    """Predicted labels of the config's model (``checkpoint`` loaded) on its test set."""
    import torch
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import DATASETS

    from nose_mm.models.builder import build_model_from_cfg
    from nose_mm.utils.config import load_config
    cfg = load_config(cfg_path, {'test_dataloader.dataset.data_root': data_root})
    torch.manual_seed(0)
    model = build_model_from_cfg(cfg, str(checkpoint) if checkpoint else None)
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    with torch.no_grad():
        out = model.test_step(pseudo_collate([dataset[i] for i in range(len(dataset))]))
    return [int(s.pred_label[0]) for s in out]


def test_cifar100_train_resume_load_from_and_test(tiny_cifar100, tmp_path):
    work = tmp_path / 'work'
    opts = data_root_options(tiny_cifar100)
    run_tool('train.py', CLS_CFG, '--work-dir', work, '--cfg-options', *opts,
             'train_cfg.max_epochs=2')
    assert (work / 'epoch_2.pth').is_file()

    # --resume (auto): continues from epoch 2 to epoch 3 with the optimizer state.
    proc = run_tool('train.py', CLS_CFG, '--work-dir', work, '--resume', '--cfg-options', *opts,
                    'train_cfg.max_epochs=3')
    log = proc.stdout + proc.stderr
    assert 'resumed epoch: 2, iter: 10' in log
    ckpt3 = _load(work / 'epoch_3.pth')
    assert ckpt3['meta']['epoch'] == 3 and ckpt3['meta']['iter'] == 15
    assert 'optimizer' in ckpt3 and 'message_hub' in ckpt3

    # --resume PATH resumes from that exact checkpoint.
    proc = run_tool('train.py', CLS_CFG, '--work-dir', tmp_path / 'work2', '--resume',
                    work / 'epoch_2.pth', '--cfg-options', *opts, 'train_cfg.max_epochs=3')
    assert 'resumed epoch: 2, iter: 10' in proc.stdout + proc.stderr

    # load_from: weights only, a fresh schedule.
    proc = run_tool('train.py', CLS_CFG, '--work-dir', tmp_path / 'work3', '--cfg-options',
                    *opts, f'load_from={work / "epoch_3.pth"}', 'train_cfg.max_epochs=1')
    assert 'Load checkpoint from' in proc.stdout + proc.stderr
    assert _load(tmp_path / 'work3' / 'epoch_1.pth')['meta']['epoch'] == 1

    # tools/test.py evaluates the Runner-saved checkpoint with top-1/top-5.
    proc = run_tool('test.py', CLS_CFG, work / 'epoch_3.pth', '--work-dir', tmp_path / 'test',
                    '--out', tmp_path / 'preds.pkl', '--cfg-options', *opts)
    match = re.search(r"'accuracy/top1': ([0-9.]+)", proc.stdout)
    assert match, proc.stdout[-2000:]
    # the reported top-1 is that of the saved predictions, which are those of the
    # checkpoint's model on the 10 test images (a model without the checkpoint differs)
    preds = mmengine.load(tmp_path / 'preds.pkl')
    assert len(preds) == 10
    correct = sum(int(p['pred_label'][0] == p['gt_label'][0]) for p in preds)
    assert assert_top1_of(float(match.group(1)), 10) == correct
    expected = _predict(CLS_CFG, work / 'epoch_3.pth', tiny_cifar100)
    assert [int(p['pred_label'][0]) for p in preds] == expected
    assert expected != _predict(CLS_CFG, None, tiny_cifar100)


def test_ade20k_upernet_train_resume_and_test_miou(tiny_ade20k, tmp_path):
    work = tmp_path / 'work'
    opts = data_root_options(tiny_ade20k)
    run_tool('train.py', SEG_CFG, '--work-dir', work, '--cfg-options', *opts)
    assert (work / 'iter_4.pth').is_file()
    proc = run_tool('train.py', SEG_CFG, '--work-dir', work, '--resume', '--cfg-options', *opts,
                    'train_cfg.max_iters=6', 'param_scheduler.0.end=6')
    assert 'resumed epoch: 0, iter: 4' in proc.stdout + proc.stderr
    assert _load(work / 'iter_6.pth')['meta']['iter'] == 6
    proc = run_tool('test.py', SEG_CFG, work / 'iter_6.pth', '--work-dir', tmp_path / 'test',
                    '--cfg-options', *opts)
    match = re.search(r"'mIoU': ([0-9.]+)", proc.stdout)
    assert match, proc.stdout[-2000:]
    assert 0.0 <= float(match.group(1)) <= 100.0
    # multi-scale + flip through mmseg's TTA model
    proc = run_tool('test.py', SEG_CFG, work / 'iter_6.pth', '--tta', '--work-dir',
                    tmp_path / 'tta', '--cfg-options', *opts)
    assert 'SegTTAModel' in proc.stdout + proc.stderr
    assert re.search(r"'mIoU': ([0-9.]+)", proc.stdout), proc.stdout[-2000:]


@pytest.mark.parametrize('args, message', [
    (['train.py', 'configs/does_not_exist.py'], "config file 'configs/does_not_exist.py' does "
     'not exist'),
    (['train.py', CLS_CFG, '--cfg-options', 'train_dataloader.dataset.data_root=/no/such/dir'],
     "dataset folder '/no/such/dir' does not exist (set by train_dataloader.dataset.data_root)"),
    (['train.py', CLS_CFG, '--launcher', 'kubernetes'], "invalid choice: 'kubernetes'"),
    (['test.py', CLS_CFG, '/no/such.pth'], "checkpoint '/no/such.pth' does not exist"),
])
def test_user_errors_are_one_line(args, message, tmp_path):
    proc = run_tool(*args, '--work-dir', tmp_path / 'w', check=False) if args[0] == 'test.py' \
        else run_tool(*args, check=False)
    assert proc.returncode == 2
    assert 'Traceback' not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert message in last, proc.stderr
