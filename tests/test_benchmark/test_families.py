"""results.json of tiny Swin and DeiT-III runs, named by their family on the leaderboard."""
import json
import os.path as osp

import pytest

from nose_mm.benchmark.info import arch_name, model_info
from tests.utils import TEST_CONFIGS, data_root_options, run_tool

SWIN_NAME = 'Swin custom(d16,h[1, 2, 4],depths=[2, 2, 2])'
DEIT3_NAME = 'DeiT-III custom(d32,L4,h2,ffn64)'


def test_family_arch_names():
    assert arch_name('tiny', 'NoseSwinTransformer') == 'swin-tiny'
    assert arch_name('s', 'mmpretrain.DeiT3') == 'deit3-s'
    assert arch_name('s', 'NoseVisionTransformer') == 's'  # ViT names unchanged
    cfg = dict(model=dict(type='ImageClassifier',
                          backbone=dict(type='NoseSwinTransformer', arch='tiny')))
    assert model_info(cfg)['display'] == 'Swin-T'
    cfg['model']['backbone'] = dict(type='NoseDeiT3', arch='s')
    assert model_info(cfg)['display'] == 'DeiT-III-S'
    cfg['model']['backbone'] = dict(type='VisionTransformer', arch='s')
    assert model_info(cfg)['display'] == 'ViT-S'


@pytest.mark.slow  # two training runs: about 40 s on an idle 2-core machine, 100 s loaded
def test_swin_and_deit3_runs_on_the_leaderboard(tiny_cifar100, tmp_path):
    work = tmp_path / 'work_dirs'
    opts = ['--cfg-options', *data_root_options(tiny_cifar100), 'train_cfg.max_epochs=1']
    run_tool('train.py', osp.join(TEST_CONFIGS, 'tiny-swin_cifar100.py'), '--work-dir',
             work / 'swin', *opts)
    run_tool('train.py', osp.join(TEST_CONFIGS, 'tiny-deit3_cifar100.py'), '--work-dir',
             work / 'deit3', *opts, 'model.backbone.removed_layers=[1]')
    swin = json.load(open(work / 'swin' / 'results.json'))
    deit3 = json.load(open(work / 'deit3' / 'results.json'))
    assert swin['model']['backbone'] == 'NoseSwinTransformer'
    assert swin['model']['display'] == SWIN_NAME and swin['flops'] > 0
    assert deit3['model']['display'] == DEIT3_NAME and deit3['model']['removed_layers'] == [1]

    out = tmp_path / 'board.md'
    run_tool('leaderboard.py', work, '--out', out)
    rows = [line.split('|')[1:-1] for line in out.read_text().splitlines()
            if line.startswith('| ') and not line.startswith('| #')]
    models = {r[2].strip(): r[1].strip() for r in rows}  # run / method -> model
    assert models['swin'] == SWIN_NAME and models['deit3'] == DEIT3_NAME
