"""tools/analysis/benchmark_interleaved.py: baseline, pruned and pruned + ToMe in one run."""
import importlib.util
import json
import os.path as osp

import pytest

from tests.utils import REPO, TEST_CONFIGS

BASE = osp.join(TEST_CONFIGS, 'bench-tiny-vit_cifar100.py')
PRUNED = osp.join(TEST_CONFIGS, 'bench-tiny-vit-pruned_cifar100.py')

# Tiny models on a shared 2-core machine: one intra-op thread is much faster.
pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.fixture(scope='module')
def tool():
    """The script as a module: ``main(argv)`` is what the command line runs."""
    spec = importlib.util.spec_from_file_location(
        'benchmark_interleaved', osp.join(REPO, 'tools', 'analysis', 'benchmark_interleaved.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_three_models_interleaved(tool, tmp_path, capsys):
    merged = tmp_path / 'bench-tiny-vit-pruned-tome_cifar100.py'
    merged.write_text(f'_base_ = [{PRUNED!r}]\n'
                      f'model = dict(backbone=dict(token_merge=dict(r=4, start=0)))\n')
    out = tmp_path / 'three.json'
    assert tool.main([BASE, PRUNED, str(merged), '--batch-size', '2', '--repeats', '2',
                      '--warmup', '0', '--out', str(out)]) == 0
    assert f'nose_mm: wrote {out}' in capsys.readouterr().out
    report = json.loads(out.read_text())
    assert report['settings']['batch_size'] == 2 and report['settings']['img_size'] == [32, 32]
    base, pruned, tome = report['models']
    assert [m['config'] for m in report['models']] == [BASE, PRUNED, str(merged)]
    assert base['ratios']['flops'] == base['ratios']['throughput'] == 1.0
    # merging removes no parameter; 17 tokens -> 13 -> 9 in the attention layers 1 and 3
    assert tome['params'] == pruned['params'] < base['params']
    assert tome['flops'] < pruned['flops'] < base['flops']
    for entry in (pruned, tome):
        assert entry['ratios']['flops'] == pytest.approx(entry['flops'] / base['flops'])
        assert len(entry['img_per_s_repeats']) == 2 and entry['img_per_s'] > 0


def test_bad_arguments_are_one_line_errors(tool, capsys):
    assert tool.main([BASE, PRUNED, '--checkpoints', 'none']) == 2
    assert capsys.readouterr().err == (
        'nose_mm: error: --checkpoints takes one entry per config (2), got 1\n')
    missing = osp.join(REPO, 'no-such.py')
    assert tool.main([BASE, missing]) == 2
    assert capsys.readouterr().err == f'nose_mm: error: config file {missing!r} does not exist\n'
    assert tool.main([BASE, '--repeats', '0']) == 2
    assert capsys.readouterr().err == ('nose_mm: error: need --batch-size >= 1, --repeats >= 1 '
                                       'and --warmup >= 0, got 8, 0, 2\n')
