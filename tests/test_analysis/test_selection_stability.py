"""Selection stability across calibration seeds: the summary and the tool on tiny CIFAR-100."""
import json
import os.path as osp

import pytest
import torch

from nose_mm.analysis.selection_stability import (check_num_samples_grid, smallest_stable_n,
                                                  stability_rows)
from tests.utils import TEST_CONFIGS, import_tool

CFG = osp.join(TEST_CONFIGS, 'tiny-vit_cifar100.py')


def _tool():
    return import_tool('analysis/selection_stability.py')


def _run(n, seed, selection, split='train', mode='identity', size=None):
    return dict(split=split, n=n, num_samples=size or (100 if n == 'all' else n), seed=seed,
                skip_mode=mode, selection=selection)


def test_stability_rows_and_smallest_stable_n():
    runs = [_run(8, 0, [3, 1, 0]), _run(8, 1, [1, 3, 2]), _run(8, 2, [0, 1, 3]),
            _run(32, 0, [1, 3, 0]), _run(32, 1, [3, 1, 2]), _run(32, 2, [3, 1, 0]),
            _run('all', 0, [3, 1, 2])]
    rows = {(r['k'], r['n']): r for r in stability_rows(runs, [2, 3])}
    r = rows[2, 8]  # sets {1, 3}, {1, 3}, {0, 1}
    assert (r['distinct'], r['modal'], r['seeds']) == (2, [1, 3], 3)
    assert r['agreement'] == pytest.approx(2 / 3) and r['matches_all'] == pytest.approx(2 / 3)
    assert not r['stable'] and r['sets'] == [[1, 3], [1, 3], [0, 1]]
    assert rows[2, 32]['stable'] and rows[2, 32]['matches_all'] == 1.0
    assert rows[2, 'all']['stable'] and rows[2, 'all']['seeds'] == 1
    assert rows[3, 32]['distinct'] == 2 and rows[3, 32]['matches_all'] == pytest.approx(1 / 3)
    assert {(s['k'], s['n']) for s in smallest_stable_n(rows.values())} == {(2, 32),
                                                                             (3, 'all')}
    # one set for every seed, but not the all-images one: not stable
    other = stability_rows([_run(8, 0, [0, 1]), _run(8, 1, [1, 0]), _run('all', 0, [2, 3])],
                           [2])
    assert [(r['n'], r['distinct'], r['stable']) for r in other] == [(8, 1, False),
                                                                     ('all', 1, True)]
    # no N is stable: None
    assert smallest_stable_n(stability_rows([_run(8, 0, [0]), _run(8, 1, [1])], [1])) == [
        dict(split='train', skip_mode='identity', k=1, n=None, num_samples=None)]


@pytest.mark.parametrize('values, message', [
    (['1'], "num_samples '1' must be an int >= 2 or 'all'"),
    (['x'], "num_samples 'x' must be an int >= 2 or 'all'"),
    (['8', '8'], "num_samples values given twice: ['8', '8']"),
    ([], 'no num_samples given'),
])
def test_num_samples_grid_errors(values, message):
    with pytest.raises(ValueError, match=message.replace('[', r'\[').replace(']', r'\]')):
        check_num_samples_grid(values)
    assert check_num_samples_grid(['all', '16', 4]) == [4, 16, 'all']


def test_selection_stability_tool(tiny_cifar100, tmp_path, capsys):
    import nose_mm  # noqa: F401
    from nose_mm.models.builder import build_model_from_cfg
    from nose_mm.selection import select_from_config
    from nose_mm.utils.config import load_config
    options = {f'{s}_dataloader.dataset.data_root': tiny_cifar100 for s in ('train', 'val')}
    cfg = load_config(CFG, options)
    ckpt = str(tmp_path / 'tiny.pth')
    torch.save({'state_dict': build_model_from_cfg(cfg).state_dict(), 'meta': {}}, ckpt)
    out = tmp_path / 'stab'
    argv = [CFG, ckpt, '-k', '1', '2', '-n', '4', '16', 'all', '--seeds', '0', '1',
            '--skip-modes', 'identity', 'compensated', '--batch-size', '3', '--out', str(out),
            '--cfg-options', *[f'{k}={v}' for k, v in options.items()]]
    assert _tool().main(argv) == 0
    printed = capsys.readouterr().out
    assert '| train | identity |' in printed and 'K = 2' in printed
    record = json.load(open(out / 'selection_stability.json'))
    assert record['format'] == 'nose_mm.selection_stability'
    assert record['dataset_sizes'] == {'train': 20, 'val': 10}
    assert record['num_samples'] == [4, 16, 'all'] and record['environment']['device'] == 'cpu'
    assert 'selection_stability.py' in record['command'] and record['date'].endswith('UTC')
    runs = {(r['split'], r['n'], r['seed'], r['skip_mode']): r for r in record['runs']}
    # train: N = 4 and 16 with 2 seeds, all once; val (10 images): N = 4 with 2 seeds, all once;
    # for both skip modes
    assert len(runs) == 2 * (2 + 2 + 1 + 2 + 1)
    assert ('val', 16, 0, 'identity') not in runs and runs['val', 'all', 0, 'identity'][
        'num_samples'] == 10
    # every run is the selection the tool / hook would make with those settings
    for key in [('train', 4, 1, 'compensated'), ('val', 'all', 0, 'identity')]:
        run = runs[key]
        expected = select_from_config(cfg, ckpt, 2, num_samples=run['num_samples'],
                                      seed=key[2], split=key[0], skip_mode=key[3],
                                      batch_size=3, progress=False)
        assert run['selection'] == expected['selection']
        assert run['te_first'] == expected['te_table'][0]
    rows = record['rows']
    assert len(rows) == 2 * 2 * (3 + 2)  # (split, mode) x k x N
    assert {(s['split'], s['skip_mode'], s['k']) for s in record['smallest_stable_n']} == {
        (s, m, k) for s in ('train', 'val') for m in ('identity', 'compensated') for k in (1, 2)}
    with open(out / 'selection_stability.md') as f:
        assert f.read().strip() in printed


@pytest.mark.parametrize('extra, message', [
    (['-k', '2', '-n', '1'], "num_samples '1' must be an int >= 2 or 'all'"),
    (['-k', '0'], 'num_layers must be a positive int, got 0'),
    (['-k', '2', '--splits', 'val', '--cfg-options', 'val_dataloader=None'],
     'the config has no val_dataloader.dataset to calibrate on'),
    (['-k', '2', '--splits', 'train'], "checkpoint 'missing.pth' does not exist"),
])
def test_selection_stability_tool_errors(tiny_cifar100, tmp_path, capsys, extra, message):
    out = tmp_path / 'stab'
    argv = [CFG, 'missing.pth', '--out', str(out), '--cfg-options',
            f'train_dataloader.dataset.data_root={tiny_cifar100}', *extra]
    assert _tool().main(argv) == 2
    assert capsys.readouterr().err == f'nose_mm: error: {message}\n'
    assert not out.exists()
