"""The resume check reads a checkpoint's saved config as data: it never runs it.

``meta['cfg']`` is Python text inside the checkpoint file; ``Config.fromstring`` would
execute it (mmengine runs ``.py`` configs), so a crafted checkpoint given to ``--resume``
would run code although its pickle is read by nose_mm's safe unpickler. The whole path
through ``tools/train.py --resume`` is tested in ``tests/test_reliability``.
"""
import os.path as osp

import pytest
from mmengine.config import Config

from nose_mm.engine.resume_check import check_resume_config, literal_config
from nose_mm.utils.cli import UserError
from tests.utils import REPO

CONFIGS = ('configs/demo/deit-demo_nose_digits-16px.py',
           'configs/imagenet/deit-base_nose-0-1-3-4-6-pruned_in1k-224px.py',
           'configs/ade20k/upernet_deit-small_tinymim_8xb2-amp-160k_ade20k-512x512.py')


@pytest.mark.parametrize('path', CONFIGS)
def test_literal_config_reads_what_mmengine_reads(path):
    text = Config.fromfile(osp.join(REPO, path)).pretty_text
    assert literal_config(text) == Config.fromstring(text, file_format='.py').to_dict()


def _exploit(marker):
    return f"model = dict(type='X')\nx = __import__('os').system('touch {marker}')\n"


@pytest.mark.parametrize('text, line', [
    ("model = dict(a=1)\nimport os\n", 'line 2: Import is not `name = value`'),
    ("model = dict(a=open('f'))\n", 'line 1: Call is not a literal'),
    ("model = dict(a=b)\n", 'line 1: Name is not a literal'),
    ("model = dict(**x)\n", 'line 1: Call is not a literal'),
    ("model = dict(a=1\n", 'line 1: not valid Python'),
])
def test_literal_config_refuses_anything_but_literals(text, line):
    with pytest.raises(ValueError, match='^' + line):
        literal_config(text)


def test_a_saved_config_with_code_is_refused_not_run(tmp_path):
    marker = tmp_path / 'ran'
    cfg = Config(dict(model=dict(type='X')))
    checkpoint = {'meta': {'cfg': _exploit(marker), 'epoch': 1, 'iter': 1}}
    with pytest.raises(UserError) as info:
        check_resume_config(checkpoint, cfg, 'x.pth')
    assert str(info.value) == (
        "cannot resume from 'x.pth': the config saved in it (meta['cfg']) is not plain "
        "config data (line 2: Call is not a literal), and nose_mm never runs code from a "
        "checkpoint; start a new run from its weights with load_from, or set "
        "resume_allow_changes=True to resume without comparing the configs")
    assert not marker.exists()
    # the opt-in skips the comparison: the text is still not run
    check_resume_config(checkpoint, Config(dict(model=dict(type='X'),
                                                resume_allow_changes=True)), 'x.pth')
    assert not marker.exists()


def test_mmengines_legacy_config_key_is_read_as_data_and_reduced_to_gpu_ids(tmp_path):
    marker = tmp_path / 'ran'
    cfg = Config(dict(model=dict(type='X'), resume_allow_changes=True))
    checkpoint = {'meta': {'config': _exploit(marker)}}
    with pytest.raises(UserError, match=r"\(meta\['config'\]\) is not plain config data"):
        check_resume_config(checkpoint, cfg, 'x.pth')  # the opt-in does not change that
    assert not marker.exists()
    checkpoint = {'meta': {'config': "gpu_ids = [0, 1]\nmodel = dict(type='X')\n"}}
    check_resume_config(checkpoint, cfg, 'x.pth')
    assert checkpoint['meta']['config'] == 'gpu_ids = [0, 1]\n'  # what mmengine's resume reads
    checkpoint = {'meta': {'config': "model = dict(type='X')\n"}}
    check_resume_config(checkpoint, cfg, 'x.pth')
    assert 'config' not in checkpoint['meta']
