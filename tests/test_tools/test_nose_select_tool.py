"""tools/nose_select.py and the analysis tools, as a user runs them, on tiny CIFAR-100."""
import importlib.util
import json
import os.path as osp

import pytest
import torch

from tests.utils import REPO, TEST_CONFIGS, run_tool

CFG = osp.join(TEST_CONFIGS, 'tiny-vit_cifar100.py')


def _tool(path):
    """Import a tool script as a module (its ``main(argv)`` runs in-process)."""
    spec = importlib.util.spec_from_file_location(osp.basename(path)[:-3],
                                                  osp.join(REPO, 'tools', path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _checkpoint(path, config=CFG, **options):
    """Save the initial weights of a test config's model (with ``options``) to ``path``."""
    import nose_mm  # noqa: F401
    from nose_mm.models.builder import build_model_from_cfg
    from nose_mm.utils.config import load_config
    cfg = load_config(config, options)
    torch.save({'state_dict': build_model_from_cfg(cfg).state_dict(), 'meta': {}}, path)
    return str(path)


@pytest.fixture
def ckpt(tmp_path):
    return _checkpoint(tmp_path / 'tiny.pth')


def _opts(root):
    return ['--cfg-options', f'train_dataloader.dataset.data_root={root}']


def test_select_tool_writes_the_selection_json(tiny_cifar100, ckpt, tmp_path):
    out = tmp_path / 'sel' / 'selection.json'
    proc = run_tool('nose_select.py', CFG, ckpt, '--num-layers', 2, '--num-samples', 10,
                    '--batch-size', 4, '--seed', 1, '--out', out, *_opts(tiny_cifar100))
    assert 'nose selection of 2 / 4 layers' in proc.stdout
    assert 'NOSE selection (K=2)' in proc.stderr  # the progress bar
    record = json.load(open(out))
    from nose_mm.selection import file_sha256, load_selection
    assert load_selection(str(out)) == record['selection'] and len(record['selection']) == 2
    assert record['method'] == 'nose' and record['criterion'] == 'abs'
    assert record['num_samples'] == 10 and record['seed'] == 1 and record['batch_size'] == 4
    assert record['checkpoint'] == {'path': ckpt, 'sha256': file_sha256(ckpt)}
    assert record['config'] == CFG
    assert len(record['te_table']) == 2 and record['te_table'][1].count(None) == 1
    assert len(record['entropies']['per_step']) == 2
    assert record['cost']['forward_equivalents'] > 1 and record['timing']['total_s'] > 0

    # the heatmap of that file (paper Fig. 4)
    assert _tool('analysis/plot_te_heatmap.py').main([str(out), '--out',
                                                      str(tmp_path / 'fig')]) == 0
    assert (tmp_path / 'fig' / 'te_heatmap.png').stat().st_size > 0
    rows = open(tmp_path / 'fig' / 'te_heatmap.csv').read().splitlines()
    assert rows[0] == 'step,selected,layer_0,layer_1,layer_2,layer_3' and len(rows) == 3


def test_select_tool_baseline_and_same_subset_for_any_batch_size(tiny_cifar100, ckpt,
                                                                 tmp_path):
    select = _tool('nose_select.py')
    outs = []
    for bs in (3, 10):
        outs.append(tmp_path / f'bs{bs}.json')
        assert select.main([CFG, ckpt, '-k', '2', '-n', '10', '--batch-size', str(bs),
                            '--no-progress', '--out', str(outs[-1]),
                            *_opts(tiny_cifar100)]) == 0
    a, b = (json.load(open(p)) for p in outs)
    assert a['selection'] == b['selection']
    assert a['entropies']['full'] == pytest.approx(b['entropies']['full'], abs=1e-4)
    out = tmp_path / 'cos.json'
    assert select.main([CFG, ckpt, '-k', '3', '-n', '6', '--method', 'cosine', '--out',
                        str(out), *_opts(tiny_cifar100)]) == 0
    record = json.load(open(out))
    assert record['method'] == 'cosine' and len(record['selection']) == 3
    assert set(record['scores']['values']) == {'0', '1', '2', '3'}


def test_select_tool_val_split_and_compensated_skip(tiny_cifar100, ckpt, tmp_path):
    from nose_mm.selection import select_from_config
    from nose_mm.utils.config import load_config
    select = _tool('nose_select.py')
    opts = ['--cfg-options', f'val_dataloader.dataset.data_root={tiny_cifar100}']
    out = tmp_path / 'val.json'
    # the val split has 10 images (the train split 20): N = 10 is all of it
    assert select.main([CFG, ckpt, '-k', '3', '-n', '10', '--split', 'val', '--skip-mode',
                        'compensated', '--no-progress', '--out', str(out), *opts]) == 0
    record = json.load(open(out))
    assert (record['split'], record['skip_mode'], record['num_samples']) == ('val',
                                                                            'compensated', 10)
    cfg = load_config(CFG, {'val_dataloader.dataset.data_root': tiny_cifar100,
                            'train_dataloader.dataset.data_root': tiny_cifar100})
    assert (record['preset'], record['preset_overrides']) == (
        'default', {'num_samples': 10, 'skip_mode': 'compensated', 'split': 'val'})
    same = select_from_config(cfg, ckpt, 3, num_samples=10, split='val',
                              skip_mode='compensated', progress=False)
    assert same['te_table'] == record['te_table']
    # --preset reference: the same measurement, val images streamed through full passes
    # (the tiny val split has 10 images, not the preset's 49,920)
    assert select.main([CFG, ckpt, '-k', '3', '--preset', 'reference', '-n', '10',
                        '--batch-size', '4', '--no-progress', '--out', str(out), *opts]) == 0
    ref = json.load(open(out))
    assert (ref['preset'], ref['preset_overrides']) == (
        'reference', {'batch_size': 4, 'num_samples': 10})
    assert (ref['split'], ref['skip_mode'], ref['features'], ref['evaluator'],
            ref['calibration_images']) == ('val', 'compensated', 'head_input', 'naive', 'stream')
    assert same['calibration_images'] == 'keep' and same['evaluator'] == 'cached'
    assert ref['selection'] == same['selection']
    for row, expected in zip(ref['te_table'], same['te_table']):
        assert [v is None for v in row] == [v is None for v in expected]
        assert [v for v in row if v is not None] == pytest.approx(
            [v for v in expected if v is not None], abs=1e-6)
    identity = select_from_config(cfg, ckpt, 3, num_samples=10, split='val', progress=False)
    train = select_from_config(cfg, ckpt, 3, num_samples=10, split='train', progress=False)
    assert identity['te_table'][0] != record['te_table'][0]  # the skip mode matters
    assert train['te_table'][0] != identity['te_table'][0]  # other images
    assert (identity['split'], identity['skip_mode']) == ('val', 'identity')


def test_select_tool_clear_errors(tiny_cifar100, ckpt, tmp_path, capsys):
    select = _tool('nose_select.py')
    out = str(tmp_path / 's.json')

    def error(*argv):
        assert select.main([*map(str, argv), '--out', out]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith('nose_mm: error: ') and '\n' not in err
        return err

    opts = _opts(tiny_cifar100)
    assert 'cannot select 5 layers from 4 candidate layers [0, 1, 2, 3]' in error(
        CFG, ckpt, '-k', 5, '-n', 4, *opts)
    assert 'num_samples=21 is larger than the calibration dataset (20 images)' in error(
        CFG, ckpt, '-k', 2, '-n', 21, *opts)
    other = _checkpoint(tmp_path / 'other.pth', **{'model.backbone.arch.num_layers': 3})
    msg = error(CFG, other, '-k', 2, '-n', 4, *opts)
    assert "does not fit the model: 12 missing keys (backbone.layers.3." in msg
    wide = _checkpoint(tmp_path / 'wide.pth', **{'model.head.num_classes': 7})
    assert ('2 shape mismatches (checkpoint vs model) (head.layers.head.weight (7, 32) vs '
            '(100, 32)') in error(CFG, wide, '-k', 2, '-n', 4, *opts)
    assert "checkpoint 'missing.pth' does not exist" in error(CFG, 'missing.pth', '-k', 2,
                                                              *opts)
    assert "config file 'nope.py' does not exist" in error('nope.py', ckpt, '-k', 2)
    assert 'does not exist (set by train_dataloader.dataset.data_root)' in error(
        CFG, ckpt, '-k', 2, '--cfg-options', 'train_dataloader.dataset.data_root=/nonexistent')
    assert 'num_samples=11 is larger than the calibration dataset (10 images)' in error(
        CFG, ckpt, '-k', 2, '-n', 11, '--split', 'val', '--cfg-options',
        f'val_dataloader.dataset.data_root={tiny_cifar100}')
    assert 'does not exist (set by val_dataloader.dataset.data_root)' in error(
        CFG, ckpt, '-k', 2, '--split', 'val', *opts)
    assert not osp.exists(out)


def test_block_entropy_and_frequency_tools(tiny_cifar100, ckpt, tmp_path):
    args = [CFG, ckpt, '-n', '6', '--batch-size', '3', *_opts(tiny_cifar100)]
    assert _tool('analysis/block_entropy.py').main(args + ['--out', str(tmp_path / 'e')]) == 0
    rows = open(tmp_path / 'e' / 'block_entropy.csv').read().splitlines()
    assert rows[0] == 'block,attn_entropy,mlp_entropy,attn_cosine' and len(rows) == 5
    assert (tmp_path / 'e' / 'block_entropy.png').stat().st_size > 0
    assert _tool('analysis/frequency.py').main(args + ['--out', str(tmp_path / 'f'),
                                                       '--edges', '0.25', '0.6']) == 0
    rows = [r.split(',') for r in open(tmp_path / 'f' / 'frequency.csv').read().splitlines()]
    assert rows[0] == ['block', 'low', 'mid', 'high'] and len(rows) == 5
    for row in rows[1:]:
        assert sum(map(float, row[1:])) == pytest.approx(1.0)
    assert (tmp_path / 'f' / 'frequency.png').stat().st_size > 0
    assert (tmp_path / 'f' / 'frequency_profile.csv').is_file()


@pytest.mark.parametrize('config, num_layers', [('tiny-swin_cifar100.py', 6),
                                                ('tiny-deit3_cifar100.py', 4)])
def test_select_and_analysis_tools_on_swin_and_deit3(tiny_cifar100, tmp_path, config,
                                                     num_layers):
    config = osp.join(TEST_CONFIGS, config)
    ckpt = _checkpoint(tmp_path / 'tiny.pth', config)
    out = tmp_path / 'selection.json'
    args = ['-n', '6', '--batch-size', '3', *_opts(tiny_cifar100)]
    assert _tool('nose_select.py').main([config, ckpt, '-k', '2', '--no-progress', '--out',
                                         str(out), *args]) == 0
    record = json.load(open(out))
    assert record['candidates'] == list(range(num_layers)) and len(record['selection']) == 2
    assert len(record['te_table']) == 2 and len(record['te_table'][0]) == num_layers
    assert _tool('analysis/block_entropy.py').main([config, ckpt, *args, '--out',
                                                    str(tmp_path / 'e')]) == 0
    rows = open(tmp_path / 'e' / 'block_entropy.csv').read().splitlines()
    assert len(rows) == num_layers + 1
