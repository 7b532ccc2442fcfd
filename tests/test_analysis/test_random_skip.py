"""tools/analysis/random_skip.py (paper Fig. 2) on the demo-sized model and real image folders."""
import copy
import importlib.util
import json
import math
import os.path as osp

import numpy as np
import pytest
import torch

from nose_mm.analysis.random_skip import check_budgets, sample_skip_sets
from tests.utils import REPO

DEMO = osp.join(REPO, 'configs/demo/deit-demo_baseline_digits-16px.py')
CLASSES = [f'digit_{i}' for i in range(10)]

pytestmark = pytest.mark.usefixtures('one_thread')


def _tool():
    spec = importlib.util.spec_from_file_location(
        'random_skip_tool', osp.join(REPO, 'tools', 'analysis', 'random_skip.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def demo(tmp_path):
    """12 val images (16 px, ImageNet folder layout) and the demo model's weights."""
    import nose_mm  # noqa: F401
    from nose_mm.utils.config import load_config
    from nose_mm.datasets import write_image_folder
    from nose_mm.models.builder import build_model_from_cfg
    rng = np.random.default_rng(0)
    root = str(tmp_path / 'digits')
    write_image_folder(root, 'val', rng.integers(0, 256, (12, 16, 16, 3), dtype=np.uint8),
                       [i % 10 for i in range(12)], CLASSES)
    options = {'val_dataloader.dataset.data_root': root}
    torch.manual_seed(0)
    model = build_model_from_cfg(load_config(DEMO, options))
    with torch.no_grad():  # a non-trivial head, so predictions differ between skip sets
        model.head.layers.head.weight.normal_(0, 0.5)
    ckpt = str(tmp_path / 'demo.pth')
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
    return root, ckpt, options


def _oracle(options, ckpt, skip, compensate=False):
    """Top-1 and head-input features of the demo model with ``skip`` diluted at lam = 0
    without compensation (x stays x; with ``compensate``, 2x): the model's own forward,
    not the adapter's."""
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import DATASETS

    from nose_mm.utils.config import load_config
    from nose_mm.models.builder import build_model_from_cfg
    cfg = load_config(DEMO, options)
    model = build_model_from_cfg(cfg, ckpt)
    model.backbone.set_dilution_compensate(compensate)
    model.backbone.set_diluted_layers(list(skip))
    model.backbone.set_dilution_lam(0.0)
    dataset = DATASETS.build(copy.deepcopy(cfg.val_dataloader.dataset))
    data = model.data_preprocessor(pseudo_collate([dataset[i] for i in range(len(dataset))]),
                                   False)
    labels = torch.cat([s.gt_label for s in data['data_samples']])
    with torch.no_grad():
        feats = model.backbone(data['inputs'])[-1]
        logits = model(data['inputs'], mode='tensor')
    accuracy = 100.0 * float((logits.argmax(1) == labels).float().mean())
    return accuracy, feats.double()


def _entropy(feats):
    # std clamped at 1e-12 as docs/method.md says: with every attention skipped the CLS
    # token never sees the image, so its features are constant
    return float(torch.log(feats.std(dim=0).clamp(min=1e-12)).sum())


def test_random_skip_tool_on_the_demo_model(demo, tmp_path, capsys):
    root, ckpt, options = demo
    out = tmp_path / 'fig2'
    argv = [DEMO, ckpt, '--ks', '1', '2', '6', '--num-subsets', '3', '--num-samples', '12',
            '--batch-size', '5', '--seed', '1', '--out', str(out),
            '--cfg-options', f'val_dataloader.dataset.data_root={root}']
    assert _tool().main(argv) == 0
    printed = capsys.readouterr().out
    assert 'k= 1: top-1' in printed and 'over 3 sets' in printed
    record = json.load(open(out / 'random_skip.json'))
    assert record['format'] == 'nose_mm.random_skip' and record['num_images'] == 12
    assert record['candidates'] == list(range(6)) and record['split'] == 'val'
    assert [b['k'] for b in record['budgets']] == [1, 2, 6]
    k1, k2, k6 = record['budgets']
    assert k1['num_subsets'] == 3 and not k1['exhaustive']
    assert len({tuple(s['skip']) for s in k2['subsets']}) == 3
    assert all(len(s['skip']) == 2 for s in k2['subsets'])
    assert k6['exhaustive'] and [s['skip'] for s in k6['subsets']] == [list(range(6))]
    # the numbers against the model's own forward (lam = 0, no compensation = skip)
    full_acc, full_feats = _oracle(options, ckpt, [])
    assert record['full']['accuracy'] == pytest.approx(full_acc)
    assert record['full']['entropy'] == pytest.approx(_entropy(full_feats), abs=1e-6)
    for budget in (k2, k6):
        accs = []
        for subset in budget['subsets']:
            acc, feats = _oracle(options, ckpt, subset['skip'])
            assert subset['accuracy'] == pytest.approx(acc)
            assert subset['te'] == pytest.approx(_entropy(full_feats) - _entropy(feats),
                                                 abs=1e-6)
            accs.append(acc)
        assert budget['accuracy_mean'] == pytest.approx(np.mean(accs))
        assert budget['accuracy_var'] == pytest.approx(np.var(accs))
    # the sets differ in what they do: the analysis sees different models
    assert len({s['te'] for s in k2['subsets']}) == 3
    with open(out / 'random_skip.png', 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    # seeded: the same sets again
    assert _tool().main(argv[:-4] + ['--out', str(tmp_path / 'again')] + argv[-2:]) == 0
    again = json.load(open(tmp_path / 'again' / 'random_skip.json'))
    assert [s['skip'] for b in again['budgets'] for s in b['subsets']] == \
        [s['skip'] for b in record['budgets'] for s in b['subsets']]


def test_random_skip_tool_compensated_on_the_train_split(demo, tmp_path, capsys):
    root, ckpt, options = demo
    out = tmp_path / 'comp'
    # the train split (test pipeline) is the same image folder here
    argv = [DEMO, ckpt, '--ks', '2', '--num-subsets', '2', '--num-samples', '12', '--split',
            'train', '--skip-mode', 'compensated', '--out', str(out), '--cfg-options',
            f'train_dataloader.dataset.data_root={root}',
            'train_dataloader.dataset.data_prefix=val']
    assert _tool().main(argv) == 0
    record = json.load(open(out / 'random_skip.json'))
    assert (record['split'], record['skip_mode']) == ('train', 'compensated')
    _, full_feats = _oracle(options, ckpt, [])
    for subset in record['budgets'][0]['subsets']:
        acc, feats = _oracle(options, ckpt, subset['skip'], compensate=True)
        assert subset['accuracy'] == pytest.approx(acc)
        assert subset['te'] == pytest.approx(_entropy(full_feats) - _entropy(feats), abs=1e-6)


@pytest.mark.parametrize('extra, message', [
    (['--ks', '0'], 'budget k=0 is out of range: the model has 6 attention layers to skip, '
     'so k must be in 1..6'),
    (['--ks', '7'], 'budget k=7 is out of range: the model has 6 attention layers to skip, '
     'so k must be in 1..6'),
    (['--ks', '2', '2'], 'budgets [2] are given twice'),
    (['--num-subsets', '0'], 'num_subsets must be an int >= 1, got 0'),
    (['--num-samples', '13'], 'num_samples=13 is larger than the calibration dataset '
     '(12 images)'),
])
def test_random_skip_tool_errors(demo, tmp_path, capsys, extra, message):
    root, ckpt, _ = demo
    out = tmp_path / 'out'
    argv = [DEMO, ckpt, '--num-samples', '12', '--out', str(out), *extra,
            '--cfg-options', f'val_dataloader.dataset.data_root={root}']
    assert _tool().main(argv) == 2
    assert capsys.readouterr().err == f'nose_mm: error: {message}\n'
    assert not out.exists()


def test_sample_skip_sets():
    subsets, exhaustive = sample_skip_sets(range(12), 3, 50, seed=0)
    assert not exhaustive and len(subsets) == 50
    assert len({tuple(s) for s in subsets}) == 50 and all(s == sorted(s) for s in subsets)
    assert sample_skip_sets(range(12), 3, 50, seed=0) == (subsets, False)
    assert sample_skip_sets(range(12), 3, 50, seed=1)[0] != subsets
    # the sets of one k do not depend on the other budgets asked for
    assert sample_skip_sets(range(12), 3, 5, seed=0)[0] == subsets[:5]
    all_pairs, exhaustive = sample_skip_sets([0, 2, 5], 2, 10)
    assert exhaustive and all_pairs == [[0, 2], [0, 5], [2, 5]]
    assert len(sample_skip_sets(range(12), 6, 100)[0]) == 100 < math.comb(12, 6)
    assert check_budgets([3, 1], 4) == [1, 3]
    with pytest.raises(ValueError, match='no budget k given'):
        check_budgets([], 4)
