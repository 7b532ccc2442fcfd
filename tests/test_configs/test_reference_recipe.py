"""The ImageNet NOSE configs carry the reference recipe (configs/imagenet/README.md), and the
Fig. 3 / CIFAR-100 selection configs select what their names say."""
import glob
import os.path as osp
import re

import pytest
from mmengine.config import Config

from nose_mm.selection.settings import SelectionSettings
from tests.utils import REPO

IN1K = osp.join(REPO, 'configs', 'imagenet')
NOSE_TRAIN = sorted(glob.glob(osp.join(IN1K, 'deit-*_nose-*_8xb256-400e_in1k-224px.py')) +
                    glob.glob(osp.join(IN1K, 'deit-*_random-*_8xb256-400e_in1k-224px.py')) +
                    glob.glob(osp.join(IN1K, 'deit-*_first-*_8xb256-400e_in1k-224px.py')))
SELECTION = sorted(glob.glob(osp.join(IN1K, 'deit-*_random-*.py')) +
                   glob.glob(osp.join(IN1K, 'deit-*_first-*.py')) +
                   glob.glob(osp.join(REPO, 'configs', 'cifar100', 'deit-*_nose-select-*.py')))
BUDGETS = {'tiny': {3, 4}, 'small': {3, 4}, 'base': {5, 6}}


def test_every_budget_has_random_and_first_k_configs():
    found = {(m[1], m[2], int(m[3])) for m in (
        re.search(r'deit-(\w+)_(random|first)-(\d)_', osp.basename(p)) for p in SELECTION) if m}
    assert found == {(arch, method, k) for arch, ks in BUDGETS.items() for k in ks
                     for method in ('random', 'first')}


@pytest.mark.parametrize('path', NOSE_TRAIN, ids=osp.basename)
def test_imagenet_nose_configs_use_the_reference_recipe(path):
    cfg = Config.fromfile(path)
    assert cfg.train_dataloader.sampler.type == 'RepeatAugSampler'
    assert cfg.train_dataloader.sampler.num_repeats == 3
    assert cfg.train_dataloader.drop_last is True  # main_lambda.py's training loader
    assert cfg.optim_wrapper.type == 'AutoAmpOptimWrapper'
    assert cfg.optim_wrapper.get('clip_grad') is None
    assert cfg.default_hooks.checkpoint.get('save_best') is None
    assert cfg.default_hooks.checkpoint.save_last is True
    assert cfg.model.backbone.drop_path_rate == 0.1
    mode = cfg.model.backbone.get('drop_path_mode', 'linear')
    assert mode == ('constant' if 'deit-base' in path else 'linear')
    dilution = [h for h in cfg.custom_hooks if h.type == 'DilutionHook']
    assert [(h.begin, h.end) for h in dilution] == [(0, 299)]


@pytest.mark.parametrize('path', SELECTION, ids=osp.basename)
def test_selection_configs_select_what_their_name_says(path):
    cfg = Config.fromfile(path)
    name = osp.basename(path)
    method, k = re.search(r'_(random|first|nose-select)-(\d)_', name).groups()
    hooks = [h for h in cfg.custom_hooks if h.type == 'NoseSelectionHook']
    assert len(hooks) == 1 and cfg.custom_hooks[0] is hooks[0]  # before DilutionHook
    assert hooks[0].num_layers == int(k)
    # an argument left out takes the SelectionSettings default
    expected = {'nose-select': 'nose'}.get(method, method)
    assert hooks[0].get('method', SelectionSettings.method) == expected
    assert int(k) in BUDGETS[re.match(r'deit-(\w+?)_', name).group(1)]
    assert cfg.model.backbone.diluted_layers is None


REFERENCE_SELECTION = sorted(glob.glob(osp.join(IN1K, '*_nose-select-*-reference_*.py')))


@pytest.mark.parametrize('path', REFERENCE_SELECTION, ids=osp.basename)
def test_reference_selection_configs_use_the_reference_preset(path):
    from nose_mm.engine.hooks import NoseSelectionHook
    from nose_mm.selection import preset_settings
    cfg = Config.fromfile(path)
    k = int(re.search(r'_nose-select-(\d)-reference_', osp.basename(path)).group(1))
    spec = dict(cfg.custom_hooks[0])
    assert spec.pop('type') == 'NoseSelectionHook' and spec['preset'] == 'reference'
    hook = NoseSelectionHook(**spec)
    assert hook.settings == preset_settings('reference', num_layers=k)
    assert cfg.model.backbone.diluted_layers is None


def _decay_of_norms(cfg):
    """(no-decay parameter names, decay of every LayerNorm / BatchNorm parameter) of a
    segmentation config's optimizer, built as mmengine builds it."""
    import torch
    from mmengine.optim import build_optim_wrapper
    from mmseg.registry import MODELS
    cfg.model.pop('pretrained', None)
    cfg.model.backbone.pop('init_cfg', None)
    for head in ('decode_head', 'auxiliary_head'):  # SyncBN needs a process group
        cfg.model[head].norm_cfg = dict(type='BN', requires_grad=True)
    model = MODELS.build(cfg.model)
    groups = build_optim_wrapper(model, cfg.optim_wrapper).optimizer.param_groups
    decay = {id(p): g['weight_decay'] for g in groups for p in g['params']}
    norms = {decay[id(p)] for m in model.modules()
             if isinstance(m, (torch.nn.LayerNorm, torch.nn.BatchNorm2d))
             for p in m.parameters()}
    return sorted(n for n, p in model.named_parameters() if decay[id(p)] == 0), norms


def test_segmentation_weight_decay_as_mmseg_deit_configs_train():
    import nose_mm  # noqa: F401
    import mmseg
    from mmengine.registry import DefaultScope
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    ours = Config.fromfile(osp.join(REPO, 'configs', 'ade20k',
                                    'upernet_deit-small_mln_8xb2-160k_ade20k-512x512.py'))
    theirs = Config.fromfile(osp.join(osp.dirname(mmseg.__file__), '.mim', 'configs', 'vit',
                                      'vit_deit-s16_mln_upernet_8xb2-160k_ade20k-512x512.py'))
    expected = (['backbone.cls_token', 'backbone.pos_embed'], {0.01})
    with DefaultScope.overwrite_default_scope('mmseg'):
        assert _decay_of_norms(theirs) == expected
        assert _decay_of_norms(ours) == expected
