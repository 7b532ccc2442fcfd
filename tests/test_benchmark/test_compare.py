"""tools/benchmark.py with N models in one run, token merging in the model identity,
and segmentation models at their test size."""
import json
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope

from nose_mm.benchmark import match_benchmark, measure_size, model_info
from tests.utils import TEST_CONFIGS, import_tool

BASE = osp.join(TEST_CONFIGS, 'bench-tiny-vit_cifar100.py')
PRUNED = osp.join(TEST_CONFIGS, 'bench-tiny-vit-pruned_cifar100.py')
SEG = osp.join(TEST_CONFIGS, 'bench-tiny-upernet_ade20k.py')
FAST = ['--batch-size', '2', '--repeats', '3', '--warmup', '0', '--device', 'cpu']

pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.fixture(scope='module')
def tool():
    return import_tool('benchmark.py')


def _derived(tmp_path, name, base, text):
    path = tmp_path / name
    path.write_text(f'_base_ = [{base!r}]\n{text}\n')
    return str(path)


def _results_of(cfg_path, task='classification'):
    """The model part of the results.json a run of this config writes."""
    info = model_info(Config.fromfile(cfg_path))
    return {'task': task, 'model': info, 'removed_layers': info['removed_layers']}


def test_three_models_timed_in_one_run(tool, tmp_path, capsys):
    tome = _derived(tmp_path, 'tome.py', PRUNED,
                    'model = dict(backbone=dict(token_merge=dict(r=4, start=0)))')
    out = tmp_path / 'benchmark.json'
    assert tool.main([BASE, '--compare', PRUNED, '--compare', tome, *FAST, '--clock',
                      'process', '--out', str(out)]) == 0
    printed = capsys.readouterr().out
    report = json.loads(out.read_text())
    base, pruned, merged = report['models']
    assert [m['name'] for m in report['models']] == ['a', 'b', 'c']
    assert [m['config'] for m in report['models']] == [BASE, PRUNED, tome]
    assert report['settings']['clock'] == 'process' and report['settings']['img_size'] == [32, 32]
    assert report['settings']['img_size_source'] == 'model.backbone.img_size'
    assert {m['timed_together'] for m in report['models']} == {report['run_id']}
    assert all(m['ratios']['baseline'] == {'name': 'a', 'config': BASE,
                                           'config_sha256': base['config_sha256']}
               for m in report['models'])
    assert report['ratios'] is None  # the flat A/B summary is for two models only
    # merging removes no parameter; 17 tokens -> 13 -> 9 in the attention layers 1 and 3
    assert merged['params'] == pruned['params'] < base['params']
    assert merged['flops'] < pruned['flops'] < base['flops']
    assert base['model']['token_merge'] is None and pruned['model']['token_merge'] is None
    assert merged['model']['token_merge'] == {'r': 4, 'start': 0, 'prop_attn': True}
    for entry in report['models']:
        ratios, seconds = entry['ratios'], entry['throughput']['seconds_repeats']
        assert ratios['flops'] == pytest.approx(entry['flops'] / base['flops'])
        assert ratios['params'] == pytest.approx(entry['params'] / base['params'])
        per_round = [a / b for a, b in zip(base['throughput']['seconds_repeats'], seconds)]
        assert ratios['throughput']['repeats'] == pytest.approx(per_round)
        assert ratios['throughput']['median'] == pytest.approx(sorted(per_round)[1])
        assert ratios['throughput']['q1'] <= ratios['throughput']['median'] <= \
            ratios['throughput']['q3']
    assert 'ratios B/A: params' in printed and 'ratios C/A: params' in printed
    assert 'token merging r=4 from attention layer 0' in printed
    # the leaderboard's match: a NOSE + ToMe run never takes the pruned-only figures
    assert match_benchmark(_results_of(PRUNED), report)[0]['name'] == 'b'
    assert match_benchmark(_results_of(tome), report)[0]['name'] == 'c'
    other = _derived(tmp_path, 'tome8.py', PRUNED,
                     'model = dict(backbone=dict(token_merge=dict(r=8, start=0)))')
    entry, reason = match_benchmark(_results_of(other), report)
    assert entry is None and '(task, arch, removed layers, token merging)' in reason
    assert '\'{"prop_attn": true, "r": 8, "start": 0}\')' in reason


def test_two_models_keep_the_ab_summary(tool, tmp_path):
    out = tmp_path / 'ab.json'
    assert tool.main([BASE, '--compare', BASE, *FAST, '--out', str(out)]) == 0
    report = json.loads(out.read_text())
    a, b = report['models']
    r = report['ratios']
    assert r['throughput_paired'] == b['ratios']['throughput']['median']
    assert r['throughput_paired_repeats'] == b['ratios']['throughput']['repeats']
    assert r['throughput'] == pytest.approx(b['throughput']['img_per_s']
                                            / a['throughput']['img_per_s'])
    assert r['params'] == r['flops'] == 1.0 and a['model'] == b['model']


def test_model_info_token_merge_from_config_and_built_model():
    from nose_mm.benchmark import build_model
    cfg = Config.fromfile(PRUNED)
    assert model_info(cfg)['token_merge'] is None
    cfg.model.backbone.token_merge = dict(r=[2, 3], start=0, prop_attn=False)
    assert model_info(cfg)['token_merge'] == {'r': [2, 3], 'start': 0, 'prop_attn': False}
    built = build_model(cfg)
    assert model_info(cfg, built)['token_merge'] == {'r': [2, 3], 'start': 0,
                                                     'prop_attn': False}
    cfg.model.backbone.token_merge = dict(r=-1)
    with pytest.raises(ValueError, match='r must be a non-negative int'):
        model_info(cfg)


def test_segmentation_baseline_and_pruned_at_the_test_crop(tool, tmp_path):
    pruned = _derived(tmp_path, 'seg-pruned.py', SEG,
                      "model = dict(backbone=dict(type='NoseVisionTransformer', "
                      'removed_layers=[0, 2]))')
    out = tmp_path / 'seg.json'
    with DefaultScope.overwrite_default_scope('mmpretrain'):  # restored after the mmseg build
        assert tool.main([SEG, '--compare', pruned, *FAST, '--out', str(out)]) == 0
    report = json.loads(out.read_text())
    assert report['settings']['img_size'] == [64, 64]
    assert report['settings']['img_size_source'] == 'model.data_preprocessor.size (the crop)'
    base, cut = report['models']
    assert base['model']['task'] == cut['model']['task'] == 'segmentation'
    assert cut['model']['removed_layers'] == [0, 2] and base['model']['removed_layers'] == []
    assert cut['params'] < base['params'] and cut['flops'] < base['flops']
    assert base['throughput']['img_per_s'] > 0 and cut['ratios']['throughput']['median'] > 0
    # the run's results.json (same model_info) takes these figures
    assert match_benchmark(_results_of(pruned, 'segmentation'), report)[0]['name'] == 'b'


def test_segmentation_measure_size():
    cfg = Config.fromfile(SEG)
    assert measure_size(cfg) == ((64, 64), 'model.data_preprocessor.size (the crop)')
    cfg.model.test_cfg = dict(mode='slide', crop_size=(48, 40), stride=(32, 32))
    assert measure_size(cfg) == ((48, 40),
                                 'model.test_cfg.crop_size (slide inference: one window)')
    cfg.model.test_cfg = dict(mode='whole')
    cfg.test_dataloader.dataset.pipeline = [
        dict(type='LoadImageFromFile'), dict(type='Resize', scale=(96, 80), keep_ratio=False)]
    assert measure_size(cfg) == ((80, 96), 'test pipeline Resize scale')  # scale is (W, H)
    cfg.test_dataloader.dataset.pipeline[1]['keep_ratio'] = True  # sizes vary: the crop
    assert measure_size(cfg)[0] == (64, 64)
    assert measure_size(Config.fromfile(BASE)) == ((32, 32), 'model.backbone.img_size')


def test_compare_user_errors(tool, capsys):
    assert tool.main([BASE, '--compare', PRUNED, 'a.pth', 'b.pth']) == 2
    assert capsys.readouterr().err == ('nose_mm: error: --compare takes CONFIG [CHECKPOINT], '
                                       'got 3 values: ' + PRUNED + ' a.pth b.pth\n')
    assert tool.main([BASE, '--compare', PRUNED, 'missing.pth']) == 2
    assert capsys.readouterr().err == "nose_mm: error: checkpoint 'missing.pth' does not exist\n"
