"""NoseSelectionHook in real Runners on tiny CIFAR-100: select, save, reuse on resume."""
import json
import os
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.runner import Runner

import nose_mm.engine.hooks.nose_selection_hook as hook_module
from tests.utils import TEST_CONFIGS


def _cfg(data_root, work_dir, hooks, max_epochs=1, backbone='NoseVisionTransformer'):
    cfg = Config.fromfile(osp.join(TEST_CONFIGS, 'tiny-vit_cifar100.py'))
    cfg.model.backbone.type = backbone
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].dataset.data_root = data_root
    cfg.work_dir = str(work_dir)
    cfg.train_cfg.max_epochs = max_epochs
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.custom_hooks = hooks
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1)
    return cfg


def _backbone(runner):
    return runner.model.backbone


SELECT = dict(type='NoseSelectionHook', num_layers=2, num_samples=12, batch_size=5,
              progress=False)


def test_hook_selects_before_training_and_reuses_on_resume(tiny_cifar100, tmp_path,
                                                           monkeypatch):
    work = tmp_path / 'work'
    hooks = [SELECT, dict(type='DilutionHook', end=1)]
    runner = Runner.from_cfg(_cfg(tiny_cifar100, work, hooks))
    seen = {}
    real = hook_module.run_selection

    def spy(model, loader, *args, **kwargs):
        # runs before training: the layers are not diluted yet, lam is untouched
        seen['diluted_before'] = tuple(model.backbone.diluted_layers)
        seen['num_images'] = len(loader.dataset)
        return real(model, loader, *args, **kwargs)

    monkeypatch.setattr(hook_module, 'run_selection', spy)
    runner.train()
    record = json.load(open(work / 'selection.json'))
    assert seen == {'diluted_before': (), 'num_images': 12}
    assert record['method'] == 'nose' and len(record['selection']) == 2
    assert record['num_samples'] == 12 and record['batch_size'] == 5
    assert len(record['te_table']) == 2 and len(record['te_table'][0]) == 4
    assert record['source'] == 'NoseSelectionHook'
    assert _backbone(runner).diluted_layers == tuple(sorted(record['selection']))
    mtime = os.stat(work / 'selection.json').st_mtime_ns

    # resume in the same work dir: the saved selection is reused, nothing is selected
    def fail(*args, **kwargs):
        raise AssertionError('selection ran again on resume')

    monkeypatch.setattr(hook_module, 'run_selection', fail)
    cfg = _cfg(tiny_cifar100, work, hooks, max_epochs=2)
    cfg.resume = True
    resumed = Runner.from_cfg(cfg)
    resumed.train()
    assert resumed.epoch == 2
    assert os.stat(work / 'selection.json').st_mtime_ns == mtime
    assert _backbone(resumed).diluted_layers == tuple(sorted(record['selection']))


def test_hook_calibrates_on_the_val_split_with_compensated_skips(tiny_cifar100, tmp_path):
    # the reference preset: val split, compensated skips (all 10 tiny val images, not 49,920)
    hook = dict(SELECT, preset='reference', num_samples=10)
    cfg = _cfg(tiny_cifar100, tmp_path / 'w', [hook])
    cfg.val_dataloader, cfg.val_cfg, cfg.val_evaluator = (cfg.test_dataloader, dict(),
                                                          cfg.test_evaluator)
    runner = Runner.from_cfg(cfg)
    runner.train()
    record = json.load(open(tmp_path / 'w' / 'selection.json'))
    # all 10 images of the val split (the train split has 20)
    assert (record['split'], record['skip_mode'], record['num_samples']) == ('val',
                                                                            'compensated', 10)
    assert (record['preset'], record['preset_overrides']) == (
        'reference', {'batch_size': 5, 'num_samples': 10})
    assert _backbone(runner).diluted_layers == tuple(sorted(record['selection']))
    # without a val dataloader there is nothing to calibrate on
    runner = Runner.from_cfg(_cfg(tiny_cifar100, tmp_path / 'w2', [hook]))
    with pytest.raises(ValueError, match='the config has no val_dataloader.dataset to '
                                         'calibrate on'):
        runner.train()


def test_hook_uses_a_given_selection_file(tiny_cifar100, tmp_path, monkeypatch):
    from nose_mm.selection import load_selection, save_selection
    given = tmp_path / 'given.json'
    save_selection(str(given), dict(method='nose', selection=[3, 0]))
    monkeypatch.setattr(hook_module, 'run_selection', None)  # must not be called
    hook = dict(type='NoseSelectionHook', selection_file=str(given))
    runner = Runner.from_cfg(_cfg(tiny_cifar100, tmp_path / 'w', [hook], max_epochs=1))
    runner.train()
    assert _backbone(runner).diluted_layers == (0, 3)
    assert load_selection(str(tmp_path / 'w' / 'selection.json')) == [3, 0]

    bad = dict(hook, num_layers=3)
    runner = Runner.from_cfg(_cfg(tiny_cifar100, tmp_path / 'w2', [bad]))
    with pytest.raises(ValueError, match=r'selects 2 layers \[3, 0\] but num_layers=3'):
        runner.train()


def test_hook_errors(tiny_cifar100, tmp_path):
    runner = Runner.from_cfg(_cfg(tiny_cifar100, tmp_path / 'w', [SELECT],
                                  backbone='VisionTransformer'))
    with pytest.raises(TypeError, match='VisionTransformer is not dilutable'):
        runner.train()
    from nose_mm.engine.hooks import NoseSelectionHook
    with pytest.raises(ValueError, match="unknown method 'best'"):
        NoseSelectionHook(num_layers=2, method='best')
    with pytest.raises(ValueError, match='needs num_layers'):
        NoseSelectionHook()
    with pytest.raises(ValueError, match='num_layers must be a positive int, got 0'):
        NoseSelectionHook(num_layers=0)
    with pytest.raises(ValueError, match='does not exist'):
        NoseSelectionHook(selection_file=str(tmp_path / 'missing.json'))
    hook = dict(SELECT, num_samples=50)  # the tiny train split has 20 images
    runner = Runner.from_cfg(_cfg(tiny_cifar100, tmp_path / 'w3', [hook]))
    with pytest.raises(ValueError, match=r'num_samples=50 is larger than the calibration '
                                         r'dataset \(20 images\)'):
        runner.train()
