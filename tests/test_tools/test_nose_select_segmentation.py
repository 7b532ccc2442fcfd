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


def _data(root):
    return [f'{split}_dataloader.dataset.data_root={root}' for split in ('train', 'val', 'test')]


def test_both_task_criteria_select_the_zeroed_layers_first(tiny_ade20k, tmp_path):
    # seg_logits: a (randomly initialised) segmentor's checkpoint, zeroed at layers 4 and 2
    seg_ckpt = _zeroed_checkpoint(tmp_path / 'seg.pth', SEG_CFG, [4, 2],
                                  **{'model.backbone.init_cfg': None})
    out = tmp_path / 'seg_logits.json'
    proc = run_tool('nose_select.py', SEG_CFG, seg_ckpt, '-k', 2, '-n', 4, '--batch-size', 3,
                    '--features', 'seg_logits', '--no-progress', '--out', out,
                    '--cfg-options', *_data(tiny_ade20k))
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
                    '--no-progress', '--out', out, '--cfg-options', *_data(tiny_ade20k),
                    f'model.backbone.init_cfg.checkpoint={cls_ckpt}')
    assert 'nose selection of 2 / 6 layers: [1, 3]' in proc.stdout
    record = json.load(open(out))
    assert record['selection'] == [1, 3] and record['features'] == 'dense'
    assert record['checkpoint']['path'] == cls_ckpt
    assert record['checkpoint']['loaded_by'] == 'model.backbone.init_cfg'

    # without a checkpoint only the dense criterion runs; one clear line, no file
    out = tmp_path / 'refused.json'
    proc = run_tool('nose_select.py', SEG_CFG, '-k', 2, '-n', 4, '--features', 'seg_logits',
                    '--out', out, '--cfg-options', *_data(tiny_ade20k),
                    f'model.backbone.init_cfg.checkpoint={cls_ckpt}', check=False)
    assert proc.returncode == 2 and not out.exists()
    assert "nose_mm: error: features 'seg_logits' read trained weights" in proc.stderr
    # the classifier default on a segmentor is refused, naming the task's features
    proc = run_tool('nose_select.py', SEG_CFG, seg_ckpt, '-k', 2, '-n', 4, '--out', out,
                    '--cfg-options', *_data(tiny_ade20k), check=False)
    assert proc.returncode == 2 and not out.exists()
    assert "selects on features 'seg_logits' or 'dense'" in proc.stderr
