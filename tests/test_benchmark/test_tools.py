"""results.json from real tiny runs, tools/benchmark.py and the leaderboard built from them."""
import copy
import csv
import importlib.util
import io
import json
import os
import os.path as osp
import re
import shutil
from html.parser import HTMLParser

import numpy as np
import pytest

from tests.utils import REPO, TEST_CONFIGS, data_root_options, run_tool

CLS_CFG = osp.join(TEST_CONFIGS, 'bench-tiny-vit_cifar100.py')
PRUNED_CFG = osp.join(TEST_CONFIGS, 'bench-tiny-vit-pruned_cifar100.py')
SEG_CFG = osp.join(TEST_CONFIGS, 'bench-tiny-upernet_ade20k.py')
REFERENCE = osp.join(REPO, 'benchmarks', 'reference.yml')
# One attention sublayer of the tiny ViT (embed 32): LN (64) + qkv (32*96+96) + proj (32*32+32).
TINY_ATTN_PARAMS = 64 + 32 * 96 + 96 + 32 * 32 + 32


def _images(rng, n, size):
    return rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """Four real runs (two classification trainings, a test, a segmentation training)
    and a benchmark.json from tools/benchmark.py --compare in the pruned run's dir."""
    from nose_mm.datasets import write_ade20k, write_cifar100
    base = tmp_path_factory.mktemp('bench')
    rng = np.random.default_rng(0)
    cifar = str(base / 'cifar100')
    write_cifar100(cifar, _images(rng, 20, 32), rng.integers(0, 100, 20).tolist(),
                   _images(rng, 10, 32), rng.integers(0, 100, 10).tolist())
    ade = str(base / 'ade')
    for split, n in (('training', 4), ('validation', 2)):
        labels = np.zeros((n, 64, 64), np.uint8)
        labels[:, :32] = 1
        labels[:, 32:] = 5
        write_ade20k(ade, split, _images(rng, n, 64), labels)
    ade = osp.join(ade, 'ADEChallengeData2016')
    work = base / 'work_dirs'
    cls_opts = data_root_options(cifar) + ['train_cfg.max_epochs=1']
    run_tool('train.py', CLS_CFG, '--work-dir', work / 'cls_base', '--cfg-options', *cls_opts)
    run_tool('train.py', PRUNED_CFG, '--work-dir', work / 'cls_pruned', '--cfg-options',
             *cls_opts)
    run_tool('test.py', CLS_CFG, work / 'cls_base' / 'epoch_1.pth', '--work-dir',
             work / 'tests' / 'cls_base_test', '--cfg-options', *data_root_options(cifar))
    run_tool('train.py', SEG_CFG, '--work-dir', work / 'seg', '--cfg-options',
             *data_root_options(ade), 'train_cfg.max_iters=2', 'param_scheduler.0.end=2')
    bench = run_tool('benchmark.py', CLS_CFG, '--compare', PRUNED_CFG, '--batch-size', 2,
                     '--repeats', 3, '--warmup', 1, '--device', 'cpu', '--memory-budget-gb',
                     0.01, '--attention', 'fused', '--out', work / 'cls_pruned' / 'benchmark.json')
    return {'work': work, 'bench_stdout': bench.stdout}


def _results(path):
    with open(path) as f:
        return json.load(f)


def test_results_json_of_train_and_test_runs(runs):
    work = runs['work']
    base = _results(work / 'cls_base' / 'results.json')
    pruned = _results(work / 'cls_pruned' / 'results.json')
    tested = _results(work / 'tests' / 'cls_base_test' / 'results.json')
    seg = _results(work / 'seg' / 'results.json')
    for data in (base, pruned, tested):
        assert (data['format'], data['version']) == ('nose_mm.results', 2)
        assert data['model']['task'] == 'classification' and data['dataset'] == 'CIFAR-100'
        assert data['model']['backbone'] == 'NoseVisionTransformer'
        assert data['model']['arch'] == dict(embed_dims=32, num_layers=4, num_heads=2,
                                              feedforward_channels=64)
        assert set(data['metrics']) == {'top1', 'top5'}
        assert re.fullmatch(r'[0-9a-f]{64}', data['config_sha256'])
        assert data['flops'] > 0 and data['flops_input'] == [3, 32, 32]
        assert 'torch' in data['hardware'] and data['date'].endswith('+00:00')
        assert data['git'] is None or re.fullmatch(r'[0-9a-f]{40}', data['git']['commit'])
        assert data['errors'] == {}
        # each fact once: the model's task and layers live in "model" only
        assert not {'task', 'removed_layers', 'diluted_layers', 'git_commit'} & set(data)
    from nose_mm.benchmark import ResultsRecord
    for name in ('cls_base', 'cls_pruned', 'tests/cls_base_test', 'seg'):  # as written, read
        path = str(work / name / 'results.json')
        assert ResultsRecord.load(path).to_json() == _results(path)
    assert (base['mode'], pruned['mode'], tested['mode']) == ('train', 'train', 'test')
    assert base['model']['removed_layers'] == [] and pruned['model']['removed_layers'] == [0, 2]
    assert base['model']['diluted_layers'] == [] and base['config'] == CLS_CFG
    assert base['checkpoint'] == str(work / 'cls_base' / 'epoch_1.pth')
    assert tested['checkpoint'] == base['checkpoint']
    assert tested['metrics'] == base['metrics'] and tested['params'] == base['params']
    assert base['params'] - pruned['params'] == 2 * TINY_ATTN_PARAMS
    assert pruned['flops'] < base['flops']
    assert base['history'][0]['epoch'] == 1
    assert seg['model']['task'] == 'segmentation' and seg['dataset'] == 'ADE20k'
    assert set(seg['metrics']) == {'mIoU', 'mAcc', 'aAcc'}
    assert seg['checkpoint'].endswith('iter_2.pth') and seg['flops_input'] == [3, 64, 64]


def test_benchmark_tool_compare_writes_its_json(runs):
    from nose_mm.benchmark import BenchmarkRecord
    path = runs['work'] / 'cls_pruned' / 'benchmark.json'
    assert (_results(path)['format'], _results(path)['version']) == ('nose_mm.benchmark', 2)
    report = BenchmarkRecord.load(str(path))
    assert report.settings.to_json() == dict(report.settings.to_json(), batch_size=2,
                                             img_size=[32, 32], device='cpu',
                                             precision='fp32', repeats=3, warmup=1)
    a, b = report.models
    assert a.model.removed_layers == [] and b.model.removed_layers == [0, 2]
    assert len(a.seconds) == 3
    assert a.params - b.params == 2 * TINY_ATTN_PARAMS
    ratios = report.ratios(b)
    assert ratios.params == pytest.approx(b.params / a.params)
    assert ratios.flops == pytest.approx(b.flops / a.flops)
    assert ratios.ratio_of_medians == pytest.approx(report.img_per_s(b) / report.img_per_s(a))
    out = runs['bench_stdout']
    assert 'ratios B/A: params' in out and 'img/s (median; repeats:' in out
    assert 'cpu' in out and 'fp32' in out and 'batch 2' in out
    assert 'working load @ 0.01 GiB B/A (tracked): fused attention +' in out


def _load_tool(name):
    spec = importlib.util.spec_from_file_location(f'_tool_{name}',
                                                  osp.join(REPO, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_tool_user_errors(capsys, tmp_path):
    tool = _load_tool('benchmark')
    assert tool.main([CLS_CFG, '--device', 'cpu', '--memory-optimizer', 'adamw']) == 2
    assert 'nose_mm: error: the memory optimizer must be one of sgd, adamw, with a training ' \
        'step (--train-memory)' in capsys.readouterr().err
    assert tool.main([CLS_CFG, str(tmp_path / 'none.pth')]) == 2
    assert 'does not exist' in capsys.readouterr().err
    assert tool.main([CLS_CFG, '--device', 'cpu', '--batch-size', '0']) == 2
    assert 'batch_size must be an integer >= 1, got 0' in capsys.readouterr().err


def _add_synthetic_runs(work):
    """Copies of real results with chosen metrics, for a deterministic ranking."""
    base = _results(work / 'cls_base' / 'results.json')
    pruned = _results(work / 'cls_pruned' / 'results.json')
    hi_base = copy.deepcopy(base)
    hi_base['metrics'] = {'top1': 60.0, 'top5': 80.0}
    hi_base['date'] = '2099-01-01T00:00:00+00:00'  # the latest baseline run of this arch
    hi_pruned = copy.deepcopy(pruned)
    hi_pruned['metrics'] = {'top1': 61.5, 'top5': 81.0}
    for name, data in (('syn_base', hi_base), ('syn_pruned', hi_pruned)):
        os.makedirs(work / 'synthetic' / name)
        with open(work / 'synthetic' / name / 'results.json', 'w') as f:
            json.dump(data, f)
    # A malformed and a partial results.json: reported, skipped, never rewritten.
    os.makedirs(work / 'broken')
    with open(work / 'broken' / 'results.json', 'w') as f:
        f.write('{"format": "nose_mm.results", "task": ')
    partial = copy.deepcopy(base)
    partial['metrics'] = {}
    os.makedirs(work / 'partial')
    with open(work / 'partial' / 'results.json', 'w') as f:
        json.dump(partial, f)
    bad_date = copy.deepcopy(base)  # a second baseline candidate with a wrong type
    bad_date['date'] = 5
    os.makedirs(work / 'bad_date')
    with open(work / 'bad_date' / 'results.json', 'w') as f:
        json.dump(bad_date, f)
    return {p: (open(p, 'rb').read(), os.stat(p).st_mtime_ns)
            for p in (str(work / 'broken' / 'results.json'),
                      str(work / 'partial' / 'results.json'),
                      str(work / 'bad_date' / 'results.json'))}


class _Tables(HTMLParser):

    def __init__(self):
        super().__init__()
        self.rows, self.classes, self._cell = [], [], None

    def handle_starttag(self, tag, attrs):
        if tag == 'tr':
            self.rows.append([])
            self.classes.append(dict(attrs).get('class'))
        elif tag in ('td', 'th'):
            self._cell = ''

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data

    def handle_endtag(self, tag):
        if tag in ('td', 'th'):
            self.rows[-1].append(self._cell)
            self._cell = None


def _md_table(text, title):
    section = text.split(f'## {title}\n', 1)[1].split('\n## ', 1)[0]
    lines = [ln for ln in section.splitlines() if ln.startswith('|')]
    header = [c.strip() for c in lines[0].strip('|').split('|')]
    return [dict(zip(header, (c.strip() for c in ln.strip('|').split(' | '))))
            for ln in lines[2:]]


def test_leaderboard_md_csv_html(runs, tmp_path):
    work = runs['work']
    before = _add_synthetic_runs(work)
    out = tmp_path / 'board.md'
    refused = run_tool('leaderboard.py', work, '--out', out, check=False)
    assert refused.returncode == 2 and not out.exists()  # inputs left out: refused
    assert refused.stderr.splitlines()[-1].startswith('nose_mm: error: 3 input(s) cannot be used')
    proc = run_tool('leaderboard.py', work, '--out', out, '--plot', tmp_path / 'board.png',
                    '--allow-partial')
    err = proc.stderr
    assert f'nose_mm: warning: {work / "broken" / "results.json"}: is not valid JSON' in err
    assert f'nose_mm: warning: {work / "partial" / "results.json"}: "metrics" holds none ' \
        f'of top1, top5' in err
    assert f'nose_mm: warning: {work / "bad_date" / "results.json"}: "date" is 5, expected a ' \
        f'string\n' in err
    for path, (content, mtime) in before.items():
        assert open(path, 'rb').read() == content and os.stat(path).st_mtime_ns == mtime
    assert (tmp_path / 'board.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert 'board.png (1 points)' in proc.stdout  # the benchmarked pruned run

    text = out.read_text()
    assert '## classification / CIFAR-100' in text and '## segmentation / ADE20k' in text
    skipped = text.split('## Skipped inputs (this leaderboard is partial)\n', 1)[1]
    assert all(f'- {work / name / "results.json"}: ' in skipped
               for name in ('broken', 'partial', 'bad_date'))
    cifar = _md_table(text, 'classification / CIFAR-100')
    labels = [r['Run / method'] for r in cifar]
    assert labels[:2] == ['synthetic/syn_pruned', 'synthetic/syn_base']
    assert set(labels) == {'synthetic/syn_pruned', 'synthetic/syn_base', 'cls_base',
                           'cls_pruned', 'tests/cls_base_test'}
    top1 = [float(r['Top-1']) for r in cifar]
    assert top1 == sorted(top1, reverse=True)
    assert [r['#'] for r in cifar] == ['1', '2', '3', '4', '5']
    assert cifar[0]['Δ Top-1'] == '+1.50' and cifar[0]['Removed layers'] == '[0, 2]'
    assert cifar[1]['Δ Top-1'] == 'baseline' and cifar[1]['Removed layers'] == 'none'
    pruned = next(r for r in cifar if r['Run / method'] == 'cls_pruned')
    assert float(pruned['img/s']) > 0 and \
        pruned['Throughput setting'] == 'torch cpu fp32 bs2 32px tracked mem'
    bench = json.loads((work / 'cls_pruned' / 'benchmark.json').read_text())['models'][1]
    assert float(pruned['Mem (MiB)']) == pytest.approx(bench['peak_memory_bytes'] / 2**20,
                                                       abs=0.051)
    load = bench['largest_batch']['batch_size']
    assert pruned['Working load @ budget'] == f'{load} @ 0.01 GiB' and load > 2
    assert pruned['Source'].startswith('measured (train): ')
    assert next(r for r in cifar if r['Run / method'] == 'cls_base')['img/s'] == ''

    imagenet = _md_table(text, 'classification / ImageNet-1k')
    nose_b = next(r for r in imagenet if r['Run / method'] == 'NOSE 40% (pruned)')
    assert (nose_b['Top-1'], nose_b['Removed layers'], nose_b['Δ Top-1']) == \
        ('81.83', '[0, 1, 3, 4, 6]', '+0.03')
    assert nose_b['Source'].startswith('reported: ')
    assert [r['Top-1'] for r in imagenet] == sorted((r['Top-1'] for r in imagenet),
                                                    key=float, reverse=True)
    ade = _md_table(text, 'segmentation / ADE20k')
    reported_s = {r['Run / method'].split(' (')[0]: (r['mIoU'], r['mIoU(ms+flip)'])
                  for r in ade if r['Model'] == 'DeiT-S' and r['Source'].startswith('rep')}
    assert reported_s == {'UperNet, no neck': ('42.87', '43.79'),
                          'UperNet + MultiLevelNeck': ('43.82', '45.07')}
    assert any(r['Run / method'] == 'seg' for r in ade)

    from nose_mm.benchmark.leaderboard import build_leaderboard, render
    tables, problems = build_leaderboard([str(work)], REFERENCE)
    assert len(problems) == 3  # broken, partial, bad_date
    rows = list(csv.DictReader(io.StringIO(render(tables, 'csv'))))
    cifar_csv = [r for r in rows if r['Dataset'] == 'CIFAR-100']
    assert [r['Run / method'] for r in cifar_csv] == labels
    assert {r['Task'] for r in rows} == {'classification', 'segmentation'}
    deit_b = [r for r in rows if r['Run / method'] == 'DeiT-B baseline (NOSE paper)']
    assert deit_b[0]['Top-1'] == '81.80' and deit_b[0]['Params (M)'] == '86.57'
    assert deit_b[0]['Δ Top-1'] == 'baseline'

    parser = _Tables()
    parser.feed(render(tables, 'html'))
    body = [(c, r) for c, r in zip(parser.classes, parser.rows) if c]
    assert sum(c == 'measured' for c, _ in body) == 6  # 5 CIFAR-100 runs + 1 ADE20k
    assert sum(c == 'reported' for c, _ in body) == sum(r.reported for t in tables
                                                        for r in t.rows) > 20
    assert all(r[-1].startswith('reported: ') for c, r in body if c == 'reported')


def test_benchmark_merge_only_for_the_matching_model(runs, tmp_path):
    from nose_mm.benchmark import ResultsRecord
    from nose_mm.benchmark.leaderboard import collect_runs
    from nose_mm.benchmark.leaderboard.collect import read_timing
    work = runs['work']
    (run, ), notes = collect_runs([str(work / 'cls_pruned')])
    record, entry = run.timing
    assert notes == [] and entry.name == 'b' and run.label == 'cls_pruned'
    assert entry.model.removed_layers == [0, 2] and record.models[1] is entry
    bench = str(work / 'cls_pruned' / 'benchmark.json')
    reason = read_timing(bench, ResultsRecord.load(str(work / 'seg' / 'results.json')))
    assert reason.startswith(f"{bench}: not merged: measures ('classification'")
    assert "not the run's model ('segmentation'" in reason
    # a benchmark.json beside the segmentation run that is not one: named, not merged
    seg = tmp_path / 'seg'
    shutil.copytree(work / 'seg', seg, ignore=shutil.ignore_patterns('*.pth'))
    (seg / 'benchmark.json').write_text('{"format": "nose_mm.benchmark", "version": 1}')
    (run, ), notes = collect_runs([str(seg)])
    assert run.timing is None and notes == [
        f'{seg / "benchmark.json"}: not merged: schema version 1: this nose_mm reads '
        'nose_mm.benchmark version 2 only; write the file again with tools/benchmark.py --out']


def test_leaderboard_no_runs_keeps_output(runs, tmp_path, capsys):
    """A mistyped or empty folder: one error line, exit 2, the old leaderboard untouched."""
    out = tmp_path / 'board.md'
    run_tool('leaderboard.py', runs['work'] / 'cls_base', '--out', out)
    good = out.read_bytes()
    assert b'cls_base' in good
    empty = tmp_path / 'empty'
    empty.mkdir()
    tool = _load_tool('leaderboard')
    for folder in (runs['work'] / 'cls_bsae', empty):
        assert tool.main([str(folder), '--out', str(out)]) == 2
        assert capsys.readouterr().err.splitlines()[-1] == (
            f"nose_mm: error: no runs found (searched {str(folder)!r} for results.json up to "
            f"2 levels below); {str(out)!r} not written")
        assert out.read_bytes() == good
