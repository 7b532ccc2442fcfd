"""tools/nose_select.py on a segmentation config (the demo's UperNet) as a user runs it.

Attention layers whose output projection is zeroed add nothing to the residual stream:
both task-level criteria must select them first.
"""
import json
import os.path as osp

import pytest
import torch

from tests.utils import REPO, run_tool

SEG_CFG = osp.join(REPO, 'configs', 'demo', 'upernet_deit-demo_digits-seg-64px.py')
CLS_CFG = osp.join(REPO, 'configs', 'demo', 'deit-demo_baseline_digits-16px.py')

pytestmark = pytest.mark.usefixtures('one_thread')


def _zeroed_checkpoint(path, config, zeroed, **options):
    """The config's model (random init) with the attention output of ``zeroed`` set to 0."""
    import nose_mm  # noqa: F401
    from nose_mm.models.builder import build_model_from_cfg
    from nose_mm.utils.config import load_config
    cfg = load_config(config, options)
    torch.manual_seed(0)
    model = build_model_from_cfg(cfg)
    for i in zeroed:
        proj = model.backbone.layers[i].attn.proj
        torch.nn.init.zeros_(proj.weight)
        torch.nn.init.zeros_(proj.bias)
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    return str(path)


@pytest.fixture
def digits_ade20k(tmp_path):
    """An ADE20k-layout set (training 4, validation 2, 64 px) with the demo's 10 + 1 classes."""
    import numpy as np

    from nose_mm.datasets import write_ade20k
    rng = np.random.default_rng(3)
    root = str(tmp_path / 'digits_seg')
    for split, n in (('training', 4), ('validation', 2)):
        images = rng.integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)
        labels = np.ones((n, 64, 64), np.uint8)  # background (class 0 after reduce_zero_label)
        labels[:, 16:48, 8:24] = 4
        labels[:, 16:48, 40:56] = 11
        write_ade20k(root, split, images, labels)
    return osp.join(root, 'ADEChallengeData2016')


def _data(root):
    return [f'{split}_dataloader.dataset.data_root={root}' for split in ('train', 'val', 'test')]


def test_both_task_criteria_select_the_zeroed_layers_first(digits_ade20k, tmp_path):
    # seg_logits: a (randomly initialised) segmentor's checkpoint, zeroed at layers 4 and 2
    seg_ckpt = _zeroed_checkpoint(tmp_path / 'seg.pth', SEG_CFG, [4, 2],
                                  **{'model.backbone.init_cfg': None})
    out = tmp_path / 'seg_logits.json'
    proc = run_tool('nose_select.py', SEG_CFG, seg_ckpt, '-k', 2, '-n', 4, '--batch-size', 3,
                    '--features', 'seg_logits', '--no-progress', '--out', out,
                    '--cfg-options', *_data(digits_ade20k))
    assert 'nose selection of 2 / 6 layers: [2, 4]' in proc.stdout
    record = json.load(open(out))
    assert record['selection'] == [2, 4] and record['task'] == 'segmentation'
    assert record['features'] == 'seg_logits' and record['split'] == 'train'
    assert record['num_samples'] == 4 and record['checkpoint']['path'] == seg_ckpt
    te = dict(zip(record['candidates'], record['te_table'][0]))
    assert te[2] == 0 and te[4] == 0 and all(te[i] != 0 for i in (0, 1, 3, 5))

    # dense, no checkpoint: the backbone the config initialises from a classifier
    # checkpoint (the demo ViT, 16 px, zeroed at layers 1 and 3), no trained head
    cls_ckpt = _zeroed_checkpoint(tmp_path / 'cls.pth', CLS_CFG, [3, 1])
    out = tmp_path / 'dense.json'
    proc = run_tool('nose_select.py', SEG_CFG, '-k', 2, '-n', 4, '--features', 'dense',
                    '--no-progress', '--out', out, '--cfg-options', *_data(digits_ade20k),
                    f'model.backbone.init_cfg.checkpoint={cls_ckpt}')
    assert 'nose selection of 2 / 6 layers: [1, 3]' in proc.stdout
    record = json.load(open(out))
    assert record['selection'] == [1, 3] and record['features'] == 'dense'
    assert record['checkpoint']['path'] == cls_ckpt
    assert record['checkpoint']['loaded_by'] == 'model.backbone.init_cfg'

    # without a checkpoint only the dense criterion runs; one clear line, no file
    out = tmp_path / 'refused.json'
    proc = run_tool('nose_select.py', SEG_CFG, '-k', 2, '-n', 4, '--features', 'seg_logits',
                    '--out', out, '--cfg-options', *_data(digits_ade20k),
                    f'model.backbone.init_cfg.checkpoint={cls_ckpt}', check=False)
    assert proc.returncode == 2 and not out.exists()
    assert "nose_mm: error: features 'seg_logits' read trained weights" in proc.stderr


MAE_CFG = osp.join(REPO, 'configs', 'demo', 'upernet_mae-demo_digits-seg-64px.py')


@pytest.mark.parametrize('features', ['seg_logits', 'dense'])
def test_the_authors_recipe_backbone_selects_the_zeroed_layers_first(digits_ade20k, tmp_path,
                                                                    features):
    """The same through the tool on the NoseMAE UperNet (Feature2Pyramid) of the authors'
    recipe: the MAE family gives the segmentor adapter its dense outputs."""
    ckpt = _zeroed_checkpoint(tmp_path / 'mae.pth', MAE_CFG, [3, 0],
                              **{'model.backbone.init_cfg': None})
    out = tmp_path / f'{features}.json'
    proc = run_tool('nose_select.py', MAE_CFG, ckpt, '-k', 2, '-n', 4, '--batch-size', 2,
                    '--features', features, '--no-progress', '--out', out,
                    '--cfg-options', *_data(digits_ade20k))
    assert 'nose selection of 2 / 6 layers: [0, 3]' in proc.stdout
    record = json.load(open(out))
    assert record['selection'] == [0, 3] and record['task'] == 'segmentation'
    te = dict(zip(record['candidates'], record['te_table'][0]))
    assert te[0] == 0 and te[3] == 0 and all(te[i] != 0 for i in (1, 2, 4, 5))


def test_hook_selects_densely_on_the_pretrained_backbone_of_a_segmentation_run(
        digits_ade20k, tmp_path):
    """NoseSelectionHook in a real Runner of the demo's seg dilution config: dense selection
    on the backbone as init_cfg loads it (zeroed layers first), then dilution to lam = 0;
    results.json carries the config's selected_on label."""
    from mmengine.config import Config
    from mmengine.runner import Runner

    from nose_mm.benchmark.records import ResultsRecord
    cls_ckpt = _zeroed_checkpoint(tmp_path / 'cls.pth', CLS_CFG, [0, 5])
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'demo',
                                   'upernet_deit-demo_dilute_digits-seg-64px.py'))
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].dataset.data_root = digits_ade20k
        cfg[key].batch_size = 2
    cfg.model.backbone.init_cfg = dict(type='Pretrained', prefix='backbone.', checkpoint=cls_ckpt,
                                       ignore_keys=[r'ln1\..*'])
    cfg.selected_on = 'dense (pre-trained backbone)'
    cfg.custom_hooks = [
        dict(type='NoseSelectionHook', num_layers=2, features='dense', num_samples=4,
             batch_size=4, progress=False),
        dict(type='DilutionHook', schedule='linear', begin=0, end=1, by_epoch=False)]
    cfg.train_cfg.max_iters = cfg.train_cfg.val_interval = 2
    cfg.default_hooks.checkpoint.interval = 2
    cfg.param_scheduler = [dict(type='PolyLR', power=1.0, begin=0, end=2, by_epoch=False)]
    cfg.work_dir = str(tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    runner.train()
    record = json.load(open(tmp_path / 'work' / 'selection.json'))
    assert record['selection'] == [0, 5] and record['task'] == 'segmentation'
    assert record['features'] == 'dense' and record['source'] == 'NoseSelectionHook'
    assert runner.model.backbone.diluted_layers == (0, 5)
    assert runner.model.backbone.get_dilution_lam() == 0
    results = ResultsRecord.load(str(tmp_path / 'work' / 'results.json'))
    assert results.model.selected_on == 'dense (pre-trained backbone)'
    assert results.model.diluted_layers == [0, 5]
    # the leaderboard says how the set was chosen, after the run name
    from nose_mm.benchmark.info import selected_on
    from nose_mm.benchmark.leaderboard import rows_from_runs
    rows, _ = rows_from_runs([str(tmp_path / 'work')])
    assert [r.label for r in rows] == ['work (set: dense (pre-trained backbone))']
    assert selected_on({}) is None
    with pytest.raises(ValueError, match='selected_on must be a non-empty string'):
        selected_on({'selected_on': ['dense']})

    # seg_logits in a run that loads no trained segmentor would read a fresh head: refused
    cfg.custom_hooks = [dict(type='NoseSelectionHook', num_layers=2, features='seg_logits',
                             num_samples=4, progress=False)]
    cfg.work_dir = str(tmp_path / 'fresh')
    with pytest.raises(ValueError, match="'seg_logits' read the trained decode head"):
        Runner.from_cfg(cfg).train()
    assert not (tmp_path / 'fresh' / 'selection.json').exists()
