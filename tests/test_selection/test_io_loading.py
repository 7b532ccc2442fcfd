"""Selection files, calibration data from a config, and strict checkpoint loading."""
import json
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from nose_mm.selection import (build_calibration_dataset, build_calibration_loader,
                               calibration_dataset_cfg, calibration_indices, load_selection,
                               load_selection_record, save_selection)
from nose_mm.selection.loading import check_calibration_data
from nose_mm.checkpoint.fit import CheckpointFitError, load_checkpoint_strict
from nose_mm.utils.cli import UserError
from tests.utils import TEST_CONFIGS

from .conftest import build_tiny_classifier


def test_selection_file_round_trip_and_errors(tmp_path):
    path = str(tmp_path / 'a' / 'selection.json')
    save_selection(path, dict(method='nose', selection=[4, 0, 2], te_table=[[None, 1.0]]))
    assert load_selection(path) == [4, 0, 2]
    assert load_selection_record(path)['te_table'] == [[None, 1.0]]
    with pytest.raises(FileNotFoundError, match='does not exist'):
        load_selection(str(tmp_path / 'missing.json'))
    (tmp_path / 'bad.json').write_text('{not json')
    with pytest.raises(ValueError, match='is not valid JSON'):
        load_selection(str(tmp_path / 'bad.json'))
    (tmp_path / 'dup.json').write_text(json.dumps(dict(selection=[1, 1])))
    with pytest.raises(ValueError, match='distinct non-negative layer indices, got \\[1, 1\\]'):
        load_selection(str(tmp_path / 'dup.json'))
    with pytest.raises(ValueError, match='got None'):
        save_selection(path, dict(method='nose'))


def test_calibration_uses_the_train_split_with_the_test_pipeline(tiny_cifar100):
    cfg = Config.fromfile(osp.join(TEST_CONFIGS, 'tiny-vit_cifar100.py'))
    cfg.train_dataloader.dataset.data_root = tiny_cifar100
    ds_cfg = calibration_dataset_cfg(cfg)
    assert ds_cfg['split'] == 'train'
    assert ds_cfg['pipeline'] == [dict(type='PackInputs')]  # no RandomFlip
    assert cfg.train_dataloader.dataset.pipeline[0]['type'] == 'RandomFlip'  # cfg untouched
    dataset = build_calibration_dataset(cfg)
    assert len(dataset) == 20
    # wrapped datasets get the test pipeline too
    cfg.train_dataloader.dataset = dict(type='RepeatDataset', times=2,
                                        dataset=cfg.train_dataloader.dataset)
    assert calibration_dataset_cfg(cfg)['dataset']['pipeline'] == [dict(type='PackInputs')]
    # without test/val dataloaders the top-level test_pipeline is used
    cfg.test_dataloader = cfg.val_dataloader = None
    cfg.test_pipeline = [dict(type='Resize', scale=32), dict(type='PackInputs')]
    assert calibration_dataset_cfg(cfg)['dataset']['pipeline'] == cfg.test_pipeline
    cfg.test_pipeline = None
    with pytest.raises(ValueError, match='no test or val pipeline'):
        calibration_dataset_cfg(cfg)
    loader = build_calibration_loader(dataset, 7, batch_size=3, seed=0)
    assert [len(b['inputs']) for b in loader] == [3, 3, 1]


def test_calibration_on_the_val_split(tiny_cifar100):
    cfg = Config.fromfile(osp.join(TEST_CONFIGS, 'tiny-vit_cifar100.py'))
    cfg.val_dataloader.dataset.data_root = tiny_cifar100
    cfg.train_dataloader.dataset.data_root = tiny_cifar100
    cfg.val_dataloader.dataset.pipeline = [dict(type='RandomFlip', prob=1.0,
                                                direction='horizontal'), dict(type='PackInputs')]
    ds_cfg = calibration_dataset_cfg(cfg, 'val')
    # the val dataset as configured (the reference measured on it), its own pipeline
    assert ds_cfg['split'] == 'test' and ds_cfg['pipeline'] == cfg.val_dataloader.dataset.pipeline
    assert len(build_calibration_dataset(cfg, 'val')) == 10
    assert len(build_calibration_dataset(cfg, 'train')) == 20
    with pytest.raises(ValueError, match="unknown split 'test'; allowed: train, val"):
        calibration_dataset_cfg(cfg, 'test')
    cfg.val_dataloader = None
    with pytest.raises(ValueError, match='the config has no val_dataloader.dataset to '
                                         'calibrate on'):
        check_calibration_data(cfg, 'val')
    cfg.train_dataloader.dataset.data_root = '/nonexistent'
    with pytest.raises(UserError, match="dataset folder '/nonexistent' does not exist"):
        check_calibration_data(cfg, 'train')


def test_calibration_subset_is_seeded_and_checked():
    a = calibration_indices(100, 10, seed=5)
    assert a == calibration_indices(100, 10, seed=5) == sorted(set(a)) and len(a) == 10
    assert a != calibration_indices(100, 10, seed=6)
    assert calibration_indices(4, 4) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match='num_samples=11 is larger than the calibration '
                                         'dataset \\(10 images\\)'):
        calibration_indices(10, 11)
    with pytest.raises(ValueError, match='int >= 2'):
        calibration_indices(10, 1)
    with pytest.raises(ValueError, match='batch_size must be a positive int, got 0'):
        build_calibration_loader(list(range(10)), 4, batch_size=0)


def test_load_checkpoint_strict(tmp_path):
    model = build_tiny_classifier(num_layers=2)
    other = build_tiny_classifier(num_layers=2, seed=1)
    path = str(tmp_path / 'ddp.pth')
    torch.save({'module.' + k: v for k, v in other.state_dict().items()}, path)
    load_checkpoint_strict(model, path)
    assert torch.equal(model.head.layers.head.weight, other.head.layers.head.weight)
    state = other.state_dict()
    state['extra.weight'] = torch.zeros(1)
    del state['backbone.ln1.bias']
    torch.save({'state_dict': state}, path)
    # the same error, in the same form, as a misfit in a Runner
    with pytest.raises(CheckpointFitError) as info:
        load_checkpoint_strict(model, path)
    assert str(info.value) == (f"checkpoint {path!r} does not fit the model: 1 missing keys "
                               f"(backbone.ln1.bias); 1 unexpected keys (extra.weight)")


@pytest.mark.parametrize('config', ['demo/deit-demo_baseline_digits-16px.py',
                                    'imagenet/deit-small_8xb128-300e_in1k-224px.py'])
def test_built_model_normalises_with_the_config_data_preprocessor(config):
    """The top-level ``data_preprocessor`` (mean / std) is merged into the model, as
    mmengine's Runner does; without it the tools would read unnormalised images."""
    from nose_mm.models.builder import build_model_from_cfg
    from tests.utils import REPO
    cfg = Config.fromfile(osp.join(REPO, 'configs', config))
    cfg.model.backbone.init_cfg = None
    cfg.model.init_cfg = None
    preprocessor = build_model_from_cfg(cfg).data_preprocessor
    expected = torch.tensor(cfg.data_preprocessor['mean']).view(-1, 1, 1)
    assert torch.equal(preprocessor.mean, expected)
    assert preprocessor.to_rgb is cfg.data_preprocessor.get('to_rgb', False)


def test_presets():
    from nose_mm.selection import PRESETS, SelectionSettings, preset_record, preset_settings
    from nose_mm.selection.presets import REFERENCE_NUM_SAMPLES
    # main_lambda.py: 130 val batches of int(1.5 * 256) images with --batch-size 256
    assert REFERENCE_NUM_SAMPLES == 49_920
    assert preset_settings() == SelectionSettings()
    ref = preset_settings('reference', num_layers=5)
    assert (ref.skip_mode, ref.split, ref.num_samples, ref.batch_size, ref.features,
            ref.evaluator, ref.calibration_images, ref.num_layers) == (
        'compensated', 'val', 49_920, 384, 'head_input', 'naive', 'stream', 5)
    assert preset_record('reference', ref) == dict(preset='reference', preset_overrides={})
    assert preset_record(None, ref)['preset_overrides'] == {
        k: v for k, v in PRESETS['reference'].items() if k != 'features'}
    with pytest.raises(ValueError, match="unknown preset 'paper'; allowed: default, reference"):
        preset_settings('paper')
    with pytest.raises(ValueError, match="calibration_images='stream' needs evaluator='naive'"):
        preset_settings('reference', evaluator='cached')
