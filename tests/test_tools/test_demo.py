"""A shortened built-in demo runs end to end, and its leaderboard holds that run's numbers."""
import json
import os.path as osp

import pytest

from tests.utils import run_tool


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_quick_demo_end_to_end(tmp_path):
    work = tmp_path / 'demo'
    proc = run_tool('demo.py', '--quick', '--work-dir', work, '--data-root', tmp_path / 'digits',
                    '--seg-data-root', tmp_path / 'digits_seg', timeout=900)
    summary = json.load(open(work / 'summary.json'))

    # real data: the scikit-learn digits, 10 classes, 1797 images
    assert len(list((tmp_path / 'digits' / 'train').iterdir())) == 10
    # each method removed 2 layers, NOSE's come from its selection file
    nose_sel = json.load(open(work / 'selection_nose.json'))
    assert sorted(nose_sel['selection']) == summary['pruned']['nose']['removed_layers']
    assert len(nose_sel['te_table']) == 2
    for method in ('nose', 'random', 'first'):
        row = summary['pruned'][method]
        assert len(row['removed_layers']) == 2
        assert row['params'] < summary['baseline']['params']
        assert row['throughput_ratio'] > 0
    assert summary['pruned']['first']['removed_layers'] == [0, 1]
    # pruned checkpoints really lack the removed attention
    import torch
    keys = torch.load(work / 'pruned_nose.pth', weights_only=False)['state_dict']
    for i in summary['pruned']['nose']['removed_layers']:
        assert not any(k.startswith(f'backbone.layers.{i}.attn.') for k in keys)

    # every number in the leaderboard comes from this run's results files
    board = open(work / 'leaderboard_demo.md').read()
    base = json.load(open(work / 'baseline' / 'results.json'))
    assert f"{base['metrics']['top1']:.2f}" in board
    for method in ('nose', 'random', 'first'):
        res = json.load(open(work / f'pruned_{method}' / 'results.json'))
        assert f"{res['metrics']['top1']:.2f}" in board
        assert f'pruned_{method}' in board
    seg = json.load(open(work / 'seg_nose' / 'results.json'))
    assert f"{seg['metrics']['mIoU']:.2f}" in board
    assert 'baseline top-1' in proc.stdout
    for name in ('leaderboard.md', 'leaderboard.csv', 'leaderboard.html'):
        assert osp.getsize(work / name) > 0
    assert (work / 'plots' / 'accuracy_vs_throughput.png').is_file()
    assert list((work / 'plots').glob('*heatmap*.png'))
