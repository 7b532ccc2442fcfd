"""The schema of results.json / benchmark.json: round trips, one validation naming the bad
key and value, schema versions refused by name, ratios derived from the stored rounds."""
import copy
import json

import pytest

from nose_mm.benchmark.leaderboard import load_reference
from nose_mm.benchmark.records import (BenchmarkRecord, RecordError, ResultsRecord,
                                       SCHEMA_VERSION)

MODEL = {'task': 'classification', 'type': 'ImageClassifier',
         'backbone': 'NoseVisionTransformer', 'arch': {'embed_dims': 32, 'num_layers': 4},
         'arch_name': 'vit-d32-L4', 'display': 'ViT (d32, L4)', 'neck': None,
         'head': 'VisionTransformerClsHead', 'removed_layers': [0, 2], 'diluted_layers': [],
         'dilution_lam': None, 'token_merge': None}
RESULTS = {
    'format': 'nose_mm.results', 'version': SCHEMA_VERSION, 'mode': 'train', 'status': 'ok',
    'error': None, 'dataset': 'CIFAR-100', 'model': MODEL, 'metrics': {'top1': 12.5, 'top5': 40.0},
    'tta': False, 'epoch': 1, 'iter': 5,
    'history': [{'epoch': 1, 'iter': 5, 'metrics': {'accuracy/top1': 12.5}}],
    'params': 19000, 'backbone_params': 18000, 'flops': 600000, 'flops_input': [3, 32, 32],
    'config': '/x/cfg.py', 'config_sha256': 'a' * 64, 'config_sha256_noseed': 'b' * 64,
    'seed': 0, 'checkpoint': '/x/epoch_1.pth', 'best_checkpoint': None, 'work_dir': '/x',
    'git': {'commit': 'c' * 40, 'dirty': False, 'repo': '/repo'},
    'date': '2026-01-01T00:00:00+00:00', 'hardware': {'torch': '2.5'}, 'errors': {}}


def _benchmark(seconds_a=(0.2, 0.1, 0.4), seconds_b=(0.1, 0.1, 0.1)):
    def entry(name, seconds, removed):
        return {'params': 100 if name == 'a' else 80, 'flops': 1000 if name == 'a' else 500,
                'seconds': list(seconds), 'peak_memory_bytes': None, 'name': name,
                'config': f'/x/{name}.py', 'config_sha256': None, 'checkpoint': None,
                'model': dict(MODEL, removed_layers=removed), 'largest_batch': None,
                'tracked': None}
    return {'format': 'nose_mm.benchmark', 'version': SCHEMA_VERSION, 'run_id': 'r1',
            'date': '2026-01-01T00:00:00+00:00', 'hardware': {}, 'git': None,
            'settings': {'batch_size': 4, 'img_size': [32, 32], 'img_size_source': 'given',
                         'device': 'cpu', 'precision': 'fp32', 'warmup': 1, 'repeats': 3,
                         'part': 'model', 'num_threads': 1, 'clock': 'wall', 'memory': False,
                         'memory_train': False, 'memory_budget_gb': None,
                         'memory_method': None, 'memory_optimizer': None,
                         'tracked_method': None},
            'models': [entry('a', seconds_a, []), entry('b', seconds_b, [0, 2])]}


def _write(path, data):
    path.write_text(json.dumps(data))
    return str(path)


def test_results_round_trip(tmp_path):
    record = ResultsRecord.load(_write(tmp_path / 'results.json', RESULTS))
    assert record.to_json() == RESULTS
    assert record.task == 'classification' and record.model.removed_layers == [0, 2]
    assert record.history[0].metrics == {'accuracy/top1': 12.5} and record.git.commit == 'c' * 40
    record.save(str(tmp_path / 'again.json'))
    assert json.loads((tmp_path / 'again.json').read_text()) == RESULTS
    assert record.unranked() is None


@pytest.mark.parametrize('change, message', [
    (dict(mode='predict'), '"mode" is \'predict\', expected one of train, val, test'),
    (dict(seed='one'), '"seed" is \'one\', expected an integer or null'),
    (dict(seed=True), '"seed" is True, expected an integer or null'),
    (dict(params=1.5), '"params" is 1.5, expected an integer or null'),
    (dict(metrics={'top1': 'high'}), '"metrics.top1" is \'high\', expected a number'),
    (dict(model=dict(MODEL, removed_layers=[0, 'x'])),
     '"model.removed_layers[1]" is \'x\', expected an integer'),
    (dict(model=dict(MODEL, task='detection')),
     '"model.task" is \'detection\', expected one of classification, segmentation'),
    (dict(history=[{'epoch': 1, 'iter': 5}]),
     '"history[0].metrics" is missing (an object)'),
    (dict(git={'commit': 'c', 'dirty': None, 'repo': None, 'branch': 'x'}),
     'unknown key "git.branch" (allowed: commit, dirty, repo)'),
    (dict(task='classification'), 'unknown key "task" (allowed: mode, status, error, dataset'),
])
def test_a_bad_value_is_named_with_what_is_allowed(tmp_path, change, message):
    path = _write(tmp_path / 'results.json', dict(RESULTS, **change))
    with pytest.raises(RecordError) as info:
        ResultsRecord.load(path)
    assert str(info.value).startswith(f'{path}: {message}')


def test_missing_key_is_refused_never_defaulted(tmp_path):
    data = dict(RESULTS)
    del data['config_sha256_noseed']
    path = _write(tmp_path / 'results.json', data)
    with pytest.raises(RecordError, match=r'"config_sha256_noseed" is missing \(a string\)$'):
        ResultsRecord.load(path)


def test_other_schema_versions_and_formats_are_refused_by_name(tmp_path):
    old = dict(RESULTS, version=1)
    path = _write(tmp_path / 'results.json', old)
    with pytest.raises(RecordError) as info:
        ResultsRecord.load(path)
    assert str(info.value) == (
        f"{path}: schema version 1: this nose_mm reads nose_mm.results version "
        f"{SCHEMA_VERSION} only; write the file again with nose_mm's ResultsHook "
        '(tools/train.py, tools/test.py)')
    with pytest.raises(RecordError, match=r"\"format\" is 'nose_mm.benchmark', expected "
                                          r"'nose_mm.results'"):
        ResultsRecord.load(_write(tmp_path / 'b.json', _benchmark()))
    (tmp_path / 'bad.json').write_text('{"format": ')
    with pytest.raises(RecordError, match='bad.json: is not valid JSON'):
        ResultsRecord.load(str(tmp_path / 'bad.json'))
    with pytest.raises(RecordError, match='none.json: cannot be read'):
        ResultsRecord.load(str(tmp_path / 'none.json'))


def test_save_checks_the_record_and_leaves_no_file(tmp_path):
    record = ResultsRecord.from_json(copy.deepcopy(RESULTS))
    record.params = 'many'
    with pytest.raises(RecordError, match='"params" is \'many\', expected an integer or null'):
        record.save(str(tmp_path / 'results.json'))
    assert list(tmp_path.iterdir()) == []


def test_unranked_runs_say_why():
    failed = ResultsRecord.from_json(dict(RESULTS, status='failed', error='diverged',
                                          metrics={}))
    assert failed.unranked() == '"status" is \'failed\' (diverged): a failed run is not ranked'
    partial = ResultsRecord.from_json(dict(RESULTS, metrics={}))
    assert partial.unranked().startswith('"metrics" holds none of top1, top5')


def test_benchmark_round_trip_and_derived_ratios(tmp_path):
    data = _benchmark()
    record = BenchmarkRecord.load(_write(tmp_path / 'benchmark.json', data))
    for model in data['models']:  # a file without "runtime" was timed in eager torch
        model.setdefault('runtime', 'torch')
    assert record.to_json() == data
    # a file written before the tracked-memory keys (#24) reads with their defaults
    old = json.loads(json.dumps(data))
    for key in ('memory_optimizer', 'tracked_method'):
        del old['settings'][key]
    for entry in old['models']:
        del entry['tracked']
    assert BenchmarkRecord.load(_write(tmp_path / 'old.json', old)).to_json() == data
    a, b = record.models
    assert record.img_per_s(a) == pytest.approx(4 / 0.2)  # median over rounds of 4 / s
    r = record.ratios(b)
    assert r.paired_rounds == pytest.approx([2.0, 1.0, 4.0])  # per round: a's s / b's s
    assert r.paired_ratio == pytest.approx({'median': 2.0, 'q1': 1.5, 'q3': 3.0})
    assert r.ratio_of_medians == pytest.approx(10.0 / 5.0)
    assert (r.params, r.flops, r.ideal_speedup) == (0.8, 0.5, 2.0)
    assert r.speedup_vs_ideal == pytest.approx(1.0) and r.peak_memory is None
    # the two throughput ratios differ when the rounds do not move together
    skew = BenchmarkRecord.from_json(_benchmark((0.1, 0.2, 0.3), (0.3, 0.1, 0.2)))
    r = skew.ratios(skew.models[1])
    assert r.paired_ratio['median'] == pytest.approx(1.5)
    assert r.ratio_of_medians == pytest.approx(1.0)
    assert record.entry_for(b.model)[0] is b
    with pytest.raises(RecordError, match=r'"models" is \[\], expected at least one'):
        BenchmarkRecord.from_json(dict(data, models=[]))
    no_rounds = copy.deepcopy(data)
    no_rounds['models'][1]['seconds'] = [0.1, 0.0]
    with pytest.raises(RecordError, match=r'"models\[1\].seconds" is \[0.1, 0.0\], expected '
                                          r'positive numbers, one per timed round'):
        BenchmarkRecord.from_json(no_rounds)
    no_rounds['models'][1]['seconds'] = [0.1, 0.2]
    with pytest.raises(RecordError, match=r'"models\[1\].seconds" holds 2 rounds, expected 3 '
                                          r'\(settings.repeats\)'):
        BenchmarkRecord.from_json(no_rounds)
    with pytest.raises(RecordError, match=r'"settings.clock" is \'cpu\', expected one of '
                                          r'wall, process'):
        BenchmarkRecord.from_json(dict(data, settings=dict(data['settings'], clock='cpu')))


def test_reference_entries_are_checked_by_the_same_schema(tmp_path):
    path = tmp_path / 'ref.yml'
    path.write_text('format: nose_mm.reference\nreferences:\n'
                    '  - {id: a, task: classification, dataset: D, model: M, method: x,\n'
                    '     metrics: {top1: 70}, source: s, reported: true}\n'
                    '  - {id: b, task: detection, dataset: D, model: M, method: x,\n'
                    '     metrics: {top1: 70}, source: s, reported: true}\n'
                    '  - {id: c, task: classification, dataset: D, model: M, method: x,\n'
                    '     metrics: {top1: 70}, source: s, reported: false}\n'
                    '  - {id: a, task: classification, dataset: D, model: M, method: x,\n'
                    '     metrics: {top1: 70}, source: s, reported: true, params_m: 5}\n')
    refs, problems = load_reference(str(path))
    assert [(r.id, r.metrics, r.params_m) for r in refs] == [('a', {'top1': 70.0}, None)]
    assert problems == [
        f"{path}: \"references[1].task\" is 'detection', expected one of classification, "
        'segmentation',
        f'{path}: "references[2].reported" is False, expected one of True',
        f"{path}: references[3]: duplicate id 'a'"]


@pytest.mark.parametrize('data', ['nose_mm.results', ['x'], None])
def test_a_top_level_that_is_no_object_is_named(data):
    with pytest.raises(RecordError, match=r'"top level" is .*, expected an object'):
        ResultsRecord.from_json(data)
