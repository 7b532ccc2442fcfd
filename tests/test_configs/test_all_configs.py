"""Every config under configs/ loads and builds its model (new configs are covered
automatically), and the README/metafile conventions hold."""
import glob
import os.path as osp

import pytest
import yaml
from mmengine.config import Config

from tests.utils import REPO

CONFIGS = sorted(p for p in glob.glob(osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
                 if '_base_' not in p)


def _build(cfg):
    import nose_mm  # noqa: F401
    if cfg.get('default_scope') == 'mmseg':
        from mmseg.registry import MODELS
        from mmseg.utils import register_all_modules
        register_all_modules(init_default_scope=False)
    else:
        from mmpretrain.registry import MODELS
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        return MODELS.build(cfg.model)


def test_configs_were_found():
    assert len(CONFIGS) >= 20


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: osp.relpath(p, REPO))
def test_config_loads_and_builds(path):
    cfg = Config.fromfile(path)
    assert cfg.get('custom_imports', {}).get('imports') == ['nose_mm']
    for key in ('train_dataloader', 'val_dataloader', 'val_evaluator', 'optim_wrapper',
                'train_cfg', 'default_scope'):
        assert cfg.get(key) is not None, f'{path} lacks {key}'
    model = _build(cfg)
    backbone = model.backbone
    removed = cfg.model.backbone.get('removed_layers') or []
    diluted = cfg.model.backbone.get('diluted_layers') or []
    assert list(backbone.removed_layers) == list(removed)
    assert list(backbone.diluted_layers) == list(diluted)
    blocks = backbone.dilutable_blocks()
    for i in removed:
        assert not hasattr(blocks[i], 'attn')


@pytest.mark.parametrize('family', ['imagenet', 'cifar100', 'ade20k'])
def test_family_has_readme_and_metafile_listed_in_model_index(family):
    folder = osp.join(REPO, 'configs', family)
    assert osp.isfile(osp.join(folder, 'README.md'))
    meta = yaml.safe_load(open(osp.join(folder, 'metafile.yml')))
    index = yaml.safe_load(open(osp.join(REPO, 'model-index.yml')))
    assert f'configs/{family}/metafile.yml' in index['Import']
    names = set()
    for model in meta['Models']:
        assert osp.isfile(osp.join(REPO, model['Config'])), model['Config']
        names.add(model['Name'])
        for result in model['Results']:
            assert result['Task'] and result['Dataset'] and result['Metrics']
    assert len(names) == len(meta['Models'])
