"""What every run has is in the config: runner_type and the run hooks, visible in a dump."""
import glob
import os.path as osp
import re

import pytest
from mmengine.config import Config

from nose_mm.apis.launch import RUN_HOOKS, check_run_defaults
from nose_mm.utils.cli import UserError

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = sorted(f for f in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True)
                 if '_base_' not in f)


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: osp.relpath(p, ROOT))
def test_every_config_declares_the_run_defaults(path):
    cfg = Config.fromfile(path)
    text = cfg.pretty_text
    assert re.search(r"runner_type\s*=\s*'NoseRunner'", text)
    for key, hook in RUN_HOOKS.items():
        assert cfg.default_hooks[key]['type'] == hook
        assert re.search(rf"{key}\s*=\s*dict\(\s*type\s*=\s*'{hook}'", text)
    assert check_run_defaults(cfg, path) == []  # nothing to add


def test_a_config_that_leaves_them_out_gets_them_named(tmp_path):
    path = tmp_path / 'own.py'
    path.write_text("default_hooks = dict(results=None)\n"
                    "custom_hooks = [dict(type='RandomStateHook', neutral_val=False)]\n")
    cfg = Config.fromfile(str(path))
    added = check_run_defaults(cfg, str(path))
    assert added == ["runner_type='NoseRunner'", 'default_hooks.divergence=DivergenceHook']
    assert cfg.runner_type == 'NoseRunner'
    assert cfg.default_hooks == dict(divergence=dict(type='DivergenceHook'))  # results: off
    cfg.default_hooks.random_state = dict(type='RandomStateHook')
    with pytest.raises(UserError, match='RandomStateHook is both default_hooks.random_state and '
                                        'in custom_hooks'):
        check_run_defaults(cfg, str(path))


def test_the_fix_the_refusal_names_works():
    """default_hooks.<key>=None with the hook in custom_hooks: the custom entry is the one,
    and no None is left for mmengine (it takes None only for its own default hooks)."""
    path = osp.join(ROOT, 'configs', 'demo', 'deit-demo_nose_digits-16px.py')
    cfg = Config.fromfile(path)
    cfg.merge_from_dict({'default_hooks.results': None})
    cfg.custom_hooks = list(cfg.custom_hooks) + [dict(type='ResultsHook', count_flops=False)]
    assert check_run_defaults(cfg, path) == []
    assert 'results' not in cfg.default_hooks
    assert all(cfg.default_hooks[key] is not None for key in ('divergence', 'random_state'))
