"""Seed runs become one leaderboard row (mean ± std, n); mismatched seed runs stay apart.

The runs are real: tools/multi_seed.py trains the tiny CIFAR-100 ViT (ResultsHook writes
each results.json), in this process.
"""
import csv
import io
import json
import math
import shutil
import statistics

import numpy as np
import pytest

from tests.test_benchmark.test_tools import CLS_CFG, PRUNED_CFG, _md_table
from tests.utils import data_root_options, import_tool


@pytest.fixture(scope='module')
def seed_runs(tmp_path_factory):
    """base/seed{0,1} and pruned/seed{0,1} (one epoch each); base/seed2 is the pruned
    config at 2 epochs: another config with other removed layers in a seed folder."""
    from nose_mm.datasets import write_cifar100
    top = tmp_path_factory.mktemp('seeds')
    rng = np.random.default_rng(0)
    cifar = str(top / 'cifar100')
    write_cifar100(cifar, rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8),
                   rng.integers(0, 100, 20).tolist(),
                   rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8),
                   rng.integers(0, 100, 10).tolist())
    work = top / 'work_dirs'
    tool = import_tool('multi_seed.py')
    opts = ['--cfg-options', *data_root_options(cifar), 'train_cfg.max_epochs=1']
    for cfg, name in ((CLS_CFG, 'base'), (PRUNED_CFG, 'pruned')):
        assert tool.main([cfg, '--seeds', '0', '1', '--work-dir', str(work / name), '--',
                          *opts]) == 0
    opts[-1] = 'train_cfg.max_epochs=2'
    assert tool.main([PRUNED_CFG, '--seeds', '2', '--work-dir', str(work / 'base'), '--',
                      *opts]) == 0
    return work


def _load(path):
    with open(path) as f:
        return json.load(f)


def test_results_record_seed_and_seedless_config(seed_runs):
    s0, s1 = (_load(seed_runs / 'base' / f'seed{k}' / 'results.json') for k in (0, 1))
    assert (s0['seed'], s1['seed']) == (0, 1)
    assert s0['config_sha256'] != s1['config_sha256']  # seed and work dir differ
    assert s0['config_sha256_noseed'] == s1['config_sha256_noseed']
    other = _load(seed_runs / 'base' / 'seed2' / 'results.json')
    assert other['config_sha256_noseed'] != s0['config_sha256_noseed']


def test_two_seeds_collapse_into_one_row(seed_runs):
    from nose_mm.benchmark.leaderboard import build_leaderboard, render
    tables, problems = build_leaderboard([str(seed_runs)])
    runs = {k: _load(seed_runs / 'base' / f'seed{k}' / 'results.json') for k in (0, 1)}
    pruned = {k: _load(seed_runs / 'pruned' / f'seed{k}' / 'results.json') for k in (0, 1)}
    # the two seeds really differ, so the std is not trivially 0
    assert runs[0]['metrics'] != runs[1]['metrics']

    rows = {r.label: r for t in tables for r in t.rows}
    assert set(rows) == {'base', 'pruned', 'base/seed2'}
    base = rows['base']
    assert base.n == 2 and base.seeds == [0, 1] and base.is_baseline
    for key in ('top1', 'top5'):
        values = [runs[k]['metrics'][key] for k in (0, 1)]
        assert base.per_seed[key] == values
        assert base.metrics[key] == pytest.approx(statistics.fmean(values))
        assert base.metrics_std.get(key, 0.0) == pytest.approx(statistics.stdev(values))

    # Δ against the baseline's mean, judged against the pooled std of both
    top1 = {name: [d[k]['metrics']['top1'] for k in (0, 1)]
            for name, d in (('base', runs), ('pruned', pruned))}
    delta = statistics.fmean(top1['pruned']) - statistics.fmean(top1['base'])
    pooled = math.sqrt((statistics.variance(top1['base'])
                        + statistics.variance(top1['pruned'])) / 2)
    assert rows['pruned'].delta == pytest.approx(delta)
    assert rows['pruned'].beyond_spread is (abs(delta) > 2 * pooled)

    text = render(tables, 'md')
    table = {r['Run / method']: r for r in _md_table(text, 'classification / CIFAR-100')}
    mean, std = statistics.fmean(top1['base']), statistics.stdev(top1['base'])
    assert table['base']['Top-1'] == f'{mean:.2f} ± {std:.2f}'
    assert table['base']['n'] == '2' and table['base']['Δ Top-1'] == 'baseline'
    assert table['pruned']['Δ vs spread'] == ('beyond' if abs(delta) > 2 * pooled
                                              else 'within')
    assert table['base/seed2']['n'] == '1'
    assert table['base/seed2']['Δ vs spread'] == 'spread unknown'
    assert '|Δ| > 2 s_p' in text  # the rule is stated with the tables

    board = {r['Run / method']: r for r in csv.DictReader(io.StringIO(render(tables, 'csv')))}
    assert board['base']['Seeds'] == '0; 1'
    assert board['base']['Top-1 per seed'] == '; '.join(f'{v:.2f}' for v in top1['base'])
    assert board['base']['Top-1'] == f'{mean:.2f}' and board['base']['Top-1 std'] == \
        f'{std:.2f}'
    html = render(tables, 'html')
    assert '<th>Top-1 per seed</th>' in html
    assert '<td>' + '; '.join(f'{v:.2f}' for v in top1['base']) + '</td>' in html
    assert f'<td>{mean:.2f} ± {std:.2f}</td>' in html


def test_mismatched_seed_run_stays_apart_with_a_warning(seed_runs):
    from nose_mm.benchmark.leaderboard import rows_from_runs
    rows, problems = rows_from_runs([str(seed_runs)])
    other = next(r for r in rows if r.label == 'base/seed2')
    assert other.n == 1 and other.removed_layers == [0, 2]
    warning = next(p for p in problems if p.startswith('base/seed2: differs'))
    assert warning.startswith('base/seed2: differs from the seed run(s) base/seed0, '
                              'base/seed1 in config (seed removed) ')
    assert 'removed_layers [0, 2] vs []' in warning
    assert warning.endswith(': kept as a separate row')
    assert len(problems) == 1


def test_malformed_and_repeated_seed_runs_stay_apart(seed_runs, tmp_path, capsys):
    """Copies of a real run: a repeated seed, a malformed seed (the file fails its schema:
    named and skipped) and an unseeded run in seed folders."""
    work = tmp_path / 'work'
    shutil.copytree(seed_runs / 'base', work / 'base',
                    ignore=shutil.ignore_patterns('*.pth', 'seed2'))
    shutil.copytree(work / 'base' / 'seed0', work / 'base' / 'seed5')  # seed 0 again
    bad = _load(work / 'base' / 'seed1' / 'results.json')
    bad['seed'] = 'one'
    (work / 'base' / 'seed7').mkdir()
    with open(work / 'base' / 'seed7' / 'results.json', 'w') as f:
        json.dump(bad, f)
    bad['seed'] = None
    (work / 'base' / 'seed8').mkdir()
    with open(work / 'base' / 'seed8' / 'results.json', 'w') as f:
        json.dump(bad, f)
    tool = import_tool('leaderboard.py')
    assert tool.main([str(work), '--no-reference', '--out', str(tmp_path / 'b.md'),
                      '--allow-partial']) == 0
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"nose_mm: warning: {work / 'base' / 'seed7' / 'results.json'}: \"seed\" is 'one', "
        'expected an integer or null',
        'nose_mm: warning: base/seed5: seed 0 repeats the seed of base/seed0 (same config '
        'and model): kept as a separate row, not averaged',
        'nose_mm: warning: base/seed8: records no seed (randomness.seed unset): kept as a '
        'separate row']
    table = _md_table((tmp_path / 'b.md').read_text(), 'classification / CIFAR-100')
    assert sorted((r['Run / method'], r['n']) for r in table) == [
        ('base', '2'), ('base/seed5', '1'), ('base/seed8', '1')]


def test_spread_functions():
    from nose_mm.benchmark.seeds import (beyond_spread, config_sha256_noseed, mean_std,
                                         parse_seed_folder, pooled_std, seed_folder)
    assert mean_std([1.0, 2.0, 4.0]) == (pytest.approx(7 / 3), pytest.approx(
        statistics.stdev([1.0, 2.0, 4.0])))
    assert mean_std([3.0]) == (3.0, None) and mean_std([]) == (None, None)
    assert pooled_std([(1.0, 3), (2.0, 5)]) == pytest.approx(math.sqrt((2 + 4 * 4) / 6))
    assert pooled_std([(1.0, 3), (None, 1)]) is None
    # s_p = 1: a difference of 2.5 is beyond 2 s_p, 1.5 is within, n = 1 is unknown
    assert beyond_spread(12.5, 1.0, 3, 10.0, 1.0, 3) is True
    assert beyond_spread(11.5, 1.0, 3, 10.0, 1.0, 3) is False
    assert beyond_spread(20.0, None, 1, 10.0, 1.0, 3) is None
    assert parse_seed_folder('a/dilute/seed12') == ('a/dilute', 12)
    assert parse_seed_folder('a/dilute/' + seed_folder(3)) == ('a/dilute', 3)
    assert parse_seed_folder('a/seedling') == ('a/seedling', None)
    assert parse_seed_folder('seed2') == ('seed2', 2)

    from mmengine.config import Config
    cfg = Config(dict(model=dict(type='X'), randomness=dict(seed=0, deterministic=False),
                      work_dir='a', load_from='a/x.pth'))
    same = Config(dict(model=dict(type='X'), randomness=dict(seed=3, deterministic=False),
                       work_dir='b', load_from='b/x.pth'))
    other = Config(dict(model=dict(type='Y'), randomness=dict(seed=0, deterministic=False)))
    assert config_sha256_noseed(cfg) == config_sha256_noseed(same) != \
        config_sha256_noseed(other)
    assert cfg.randomness.seed == 0 and cfg.work_dir == 'a'  # the config is untouched


def test_multi_seed_user_errors(tmp_path, capsys):
    tool = import_tool('multi_seed.py')
    assert tool.main([CLS_CFG, '--seeds', '1', '1']) == 2
    assert capsys.readouterr().err.strip() == \
        'nose_mm: error: --seeds must be distinct integers >= 0, got [1, 1]'
    assert tool.main([CLS_CFG, '--seeds', '0', '--', '--cfg-options',
                      'randomness.seed=4']) == 2
    assert capsys.readouterr().err.strip() == (
        "nose_mm: error: 'randomness.seed' is set per seed by multi_seed.py; remove it from "
        'the tool arguments')
    missing = str(tmp_path / 'none.py')
    assert tool.main([missing, '--seeds', '0']) == 2
    assert capsys.readouterr().err.strip() == f'nose_mm: error: config {missing!r} does not exist'


def test_speed_ratio_from_one_timing_run(seed_runs, tmp_path):
    """One interleaved benchmark of the baseline and the pruned model serves both seed rows;
    a model timed in another run is marked and shows no ratio."""
    from nose_mm.benchmark.leaderboard import build_leaderboard, render
    work = tmp_path / 'work'
    shutil.copytree(seed_runs, work, ignore=shutil.ignore_patterns('*.pth'))
    bench = import_tool('benchmark.py')
    opts = ['--batch-size', '2', '--repeats', '3', '--warmup', '1', '--device', 'cpu',
            '--no-memory']
    assert bench.main([CLS_CFG, '--compare', PRUNED_CFG, *opts, '--out',
                       str(work / 'base' / 'benchmark.json')]) == 0
    shutil.copyfile(work / 'base' / 'benchmark.json', work / 'pruned' / 'benchmark.json')
    assert bench.main([PRUNED_CFG, *opts, '--out',
                       str(work / 'base' / 'seed2' / 'benchmark.json')]) == 0
    from nose_mm.benchmark import BenchmarkRecord
    together = BenchmarkRecord.load(str(work / 'base' / 'benchmark.json'))
    ratio = together.ratios(together.models[1]).paired_ratio

    tables, problems = build_leaderboard([str(work)])
    rows = {r.label: r for t in tables for r in t.rows}
    assert rows['pruned'].timed_together == rows['base'].timed_together == together.run_id
    assert rows['pruned'].speed_ratio == ratio and not rows['pruned'].speed_mark
    assert rows['base/seed2'].speed_mark and rows['base/seed2'].speed_ratio is None
    table = {r['Run / method']: r for r in _md_table(render(tables, 'md'),
                                                     'classification / CIFAR-100')}
    assert table['pruned']['Speed vs baseline'] == \
        f"{ratio['median']:.3f} (IQR {ratio['q1']:.3f}-{ratio['q3']:.3f})"
    assert table['base']['Speed vs baseline'] == '1.000 (IQR 1.000-1.000)'
    assert table['base/seed2']['img/s'].endswith(' †')
    assert table['base/seed2']['Speed vs baseline'] == ''
    assert not table['pruned']['img/s'].endswith('†')
    board = {r['Run / method']: r for r in csv.DictReader(io.StringIO(render(tables, 'csv')))}
    assert board['pruned']['Timed in run'] == together.run_id
    assert float(board['pruned']['Speed q1']) <= float(board['pruned']['Speed vs baseline']) \
        <= float(board['pruned']['Speed q3'])


def test_speed_checked_against_each_rows_own_baseline():
    """Two archs in one table, each timed with its own baseline in its own run: every
    ratio stands; a row timed apart from its baseline is marked, whatever the others do."""
    from nose_mm.benchmark.leaderboard import Row, build_tables

    def row(label, arch, removed, run, name, ratio):
        return Row(task='classification', dataset='digits', model=arch, label=label,
                   arch=arch, removed_layers=removed, metrics={'top1': 90.0 + len(label)},
                   img_per_s=1000.0 * ratio, timed_together=run, bench_name=name,
                   speed_ratio=dict(median=ratio, q1=ratio, q3=ratio))

    rows = [row('vit', 'vit', [], 'run1', 'a', 1.0),
            row('vit-pruned', 'vit', [1], 'run1', 'b', 1.2),
            row('deit3', 'deit3', [], 'run2', 'a', 1.0),
            row('deit3-pruned', 'deit3', [2], 'run2', 'b', 1.3),
            row('deit3-apart', 'deit3', [3], 'run3', 'a', 1.0)]
    (table, ) = build_tables(rows)
    got = {r.label: (r.speed_mark, r.speed_ratio and r.speed_ratio['median'])
           for r in table.rows}
    assert got == {'vit': (False, 1.0), 'vit-pruned': (False, 1.2), 'deit3': (False, 1.0),
                   'deit3-pruned': (False, 1.3), 'deit3-apart': (True, None)}
    # a baseline that is not the first model of its run: no row of its arch keeps a ratio
    rows = [row('vit', 'vit', [], 'run1', 'b', 0.8),
            row('vit-pruned', 'vit', [1], 'run1', 'a', 1.0),
            row('deit3', 'deit3', [], 'run2', 'a', 1.0),
            row('deit3-pruned', 'deit3', [2], 'run2', 'b', 1.3)]
    (table, ) = build_tables(rows)
    got = {r.label: (r.speed_mark, r.speed_ratio and r.speed_ratio['median'])
           for r in table.rows}
    assert got == {'vit': (False, None), 'vit-pruned': (False, None), 'deit3': (False, 1.0),
                   'deit3-pruned': (False, 1.3)}


def test_hostile_run_names_are_escaped_in_every_format(seed_runs, tmp_path):
    """Run folders (and the fields of their results) are written by anyone: a name with
    HTML or a spreadsheet formula stays text in leaderboard.md, .csv and .html."""
    html_name = '<img src=x onerror=alert(1)>[a](javascript:x)'
    formula = '=HYPERLINK("evil.example")'
    for name in (html_name, formula):
        shutil.copytree(seed_runs / 'base' / 'seed0', tmp_path / 'runs' / name)
    results = tmp_path / 'runs' / html_name / 'results.json'
    record = json.loads(results.read_text())
    record['dataset'] = '<script>x</script>'
    results.write_text(json.dumps(record))
    tool = import_tool('leaderboard.py')
    for fmt in ('md', 'csv', 'html'):
        assert tool.main([str(tmp_path / 'runs'), '--out', str(tmp_path / f'lb.{fmt}')]) == 0
    md = (tmp_path / 'lb.md').read_text()
    assert '<img' not in md and '<script' not in md and '](javascript' not in md
    assert '&lt;img src=x onerror=alert(1)&gt;[a]\\(javascript:x)' in md
    rows = list(csv.DictReader(io.StringIO((tmp_path / 'lb.csv').read_text())))
    labels = {r['Run / method'] for r in rows}
    assert "'" + formula in labels and formula not in labels and html_name in labels
    # numbers keep their sign: only text is neutralised
    assert all(not r['Top-1'].startswith("'") for r in rows)
    page = (tmp_path / 'lb.html').read_text()
    assert '<img' not in page and '&lt;img src=x onerror=alert(1)&gt;' in page
