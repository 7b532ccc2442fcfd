"""tools/benchmark.py with N models in one run, token merging in the model identity,
and segmentation models at their test size."""
import json
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope

from nose_mm.benchmark import BenchmarkRecord, measure_size, model_info
from nose_mm.benchmark.records import ModelInfo
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


def _model_of(cfg_path):
    """The model part of the results.json a run of this config writes."""
    return ModelInfo.from_json(model_info(Config.fromfile(cfg_path)))


def test_three_models_timed_in_one_run(tool, tmp_path, capsys):
    tome = _derived(tmp_path, 'tome.py', PRUNED,
                    'model = dict(backbone=dict(token_merge=dict(r=4, start=0)))')
    out = tmp_path / 'benchmark.json'
    assert tool.main([BASE, '--compare', PRUNED, '--compare', tome, *FAST, '--clock',
                      'process', '--out', str(out)]) == 0
    printed = capsys.readouterr().out
    stored = json.loads(out.read_text())
    report = BenchmarkRecord.load(str(out))
    assert report.to_json() == stored  # the file is the record, nothing else
    base, pruned, merged = report.models
    assert [m.name for m in report.models] == ['a', 'b', 'c']
    assert [m.config for m in report.models] == [BASE, PRUNED, tome]
    assert report.settings.clock == 'process' and report.settings.img_size == [32, 32]
    assert report.settings.img_size_source == 'model.backbone.img_size'
    # each fact once: the run id at the top, no derived img/s or ratios in the file
    assert stored['run_id'] == report.run_id and 'timed_together' not in out.read_text()
    assert 'ratios' not in stored and 'img_per_s' not in out.read_text()
    # merging removes no parameter; 17 tokens -> 13 -> 9 in the attention layers 1 and 3
    assert merged.params == pruned.params < base.params
    assert merged.flops < pruned.flops < base.flops
    assert base.model.token_merge is None and pruned.model.token_merge is None
    assert merged.model.token_merge == {'r': 4, 'start': 0, 'prop_attn': True}
    for entry in report.models:
        ratios = report.ratios(entry)
        assert ratios.flops == pytest.approx(entry.flops / base.flops)
        assert ratios.params == pytest.approx(entry.params / base.params)
        per_round = [a / b for a, b in zip(base.seconds, entry.seconds)]
        assert ratios.paired_rounds == pytest.approx(per_round)
        assert ratios.paired_ratio['median'] == pytest.approx(sorted(per_round)[1])
        assert ratios.paired_ratio['q1'] <= ratios.paired_ratio['median'] <= \
            ratios.paired_ratio['q3']
        assert report.img_per_s(entry) == pytest.approx(2 * sorted(1 / s for s in
                                                                   entry.seconds)[1])
    assert 'ratios B/A: params' in printed and 'ratios C/A: params' in printed
    assert 'token merging r=4 from attention layer 0' in printed
    # the leaderboard's match: a NOSE + ToMe run never takes the pruned-only figures
    assert report.entry_for(_model_of(PRUNED))[0].name == 'b'
    assert report.entry_for(_model_of(tome))[0].name == 'c'
    other = _derived(tmp_path, 'tome8.py', PRUNED,
                     'model = dict(backbone=dict(token_merge=dict(r=8, start=0)))')
    entry, reason = report.entry_for(_model_of(other))
    assert entry is None and '(task, arch, removed layers, token merging)' in reason
    assert '\'{"prop_attn": true, "r": 8, "start": 0}\')' in reason


def test_one_config_twice_has_equal_counts(tool, tmp_path, capsys):
    out = tmp_path / 'ab.json'
    assert tool.main([BASE, '--compare', BASE, *FAST, '--out', str(out)]) == 0
    report = BenchmarkRecord.load(str(out))
    a, b = report.models
    r = report.ratios(b)
    assert r.params == r.flops == 1.0 and a.model == b.model
    assert r.ratio_of_medians == pytest.approx(report.img_per_s(b) / report.img_per_s(a))
    assert f'ratio of medians {r.ratio_of_medians:.3f}' in capsys.readouterr().out


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
    report = BenchmarkRecord.load(str(out))
    assert report.settings.img_size == [64, 64]
    assert report.settings.img_size_source == 'model.data_preprocessor.size (the crop)'
    base, cut = report.models
    assert base.model.task == cut.model.task == 'segmentation'
    assert cut.model.removed_layers == [0, 2] and base.model.removed_layers == []
    assert cut.params < base.params and cut.flops < base.flops
    assert report.img_per_s(base) > 0 and report.ratios(cut).paired_ratio['median'] > 0
    # the run's results.json (same model_info) takes these figures
    assert report.entry_for(_model_of(pruned))[0].name == 'b'


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
