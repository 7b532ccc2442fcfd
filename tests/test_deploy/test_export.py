"""tools/deploy/export.py and check.py on the demo models: exported graphs, checks, failures."""
import json
import os.path as osp
import re

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from nose_mm.deploy import attention_nodes, read_metadata
from nose_mm.deploy.onnx_export import static_adaptive_pools
from tests.test_deploy.common import BASE, PRUNED, SEG, checkpoint as _checkpoint
from tests.utils import run_tool

pytestmark = pytest.mark.usefixtures('one_thread')

SEG_RANDOM = ['model.backbone.init_cfg=None']
SEG_PRUNED = SEG_RANDOM + ['model.backbone.removed_layers=[1,3]']
TOME = ['model.backbone.token_merge.r=4', 'model.backbone.token_merge.start=1']


@pytest.fixture(scope='module')
def exports(tmp_path_factory):
    """Checkpoints of the demo baseline, pruned, UperNet and pruned UperNet, exported."""
    tmp = tmp_path_factory.mktemp('deploy')
    out = {'tmp': tmp}
    jobs = {
        'base': (BASE, []), 'pruned': (PRUNED, []), 'tome': (PRUNED, TOME),
        'seg': (SEG, SEG_RANDOM), 'seg_pruned': (SEG, SEG_PRUNED)}
    for name, (config, options) in jobs.items():
        ckpt = _checkpoint(tmp / f'{name}.pth', config, [o for o in options if 'token' not in o])
        onnx_path = tmp / f'{name}.onnx'
        args = [config, ckpt, '--out', onnx_path, '--threads', 1]
        proc = run_tool('deploy/export.py', *args,
                        *(['--cfg-options', *options] if options else []))
        out[name] = {'config': config, 'ckpt': ckpt, 'onnx': str(onnx_path), 'options': options,
                     'stdout': proc.stdout}
    return out


def test_export_checks_pass_and_describe_the_model(exports):
    for name in ('base', 'pruned', 'tome', 'seg', 'seg_pruned'):
        run = exports[name]
        assert 'check passed: onnxruntime vs PyTorch, batch 3' in run['stdout'], name
        side = json.loads(open(run['onnx'][:-5] + '.json').read())
        assert side == read_metadata(run['onnx']) | {'graph': side['graph'],
                                                     'check': side['check']}
        assert side['check']['ok'] is True and side['check']['max_abs_ref'] > 0.1
        assert side['check']['max_abs_diff'] <= side['check']['tolerance']
        pre = side['preprocessing']
        assert pre['mean'] == [127.5] * 3 and pre['std'] == [127.5] * 3
        assert pre['channel_order'] == 'bgr_to_rgb'
        size = 64 if name.startswith('seg') else 16
        assert pre['input']['shape'] == ['batch', 3, size, size]
        assert side['task'] == ('segmentation' if name.startswith('seg') else 'classification')
        assert side['removed_layers'] == ([] if name in ('base', 'seg') else [1, 3])
    tome = json.loads(open(exports['tome']['onnx'][:-5] + '.json').read())
    assert tome['token_merge'] == {'r': 4, 'start': 1, 'prop_attn': True}


def test_removed_layers_are_absent_from_the_graph(exports):
    """Each removed layer takes exactly one Softmax and two attention MatMuls out."""
    for base, pruned in (('base', 'pruned'), ('seg', 'seg_pruned')):
        a, b = attention_nodes(exports[base]['onnx']), attention_nodes(exports[pruned]['onnx'])
        assert a['softmax'] == 6 and a['attention_matmul'] == 12
        assert a['softmax'] - b['softmax'] == 2  # removed_layers = [1, 3]
        assert a['attention_matmul'] - b['attention_matmul'] == 2 * 2
        names = {init.name for init in onnx.load(exports[pruned]['onnx']).graph.initializer}
        assert any('layers.0.attn.qkv' in n for n in names)
        assert not any(f'layers.{i}.attn' in n or f'layers.{i}.ln1' in n
                       for n in names for i in (1, 3))


def test_batch_is_dynamic(exports):
    session = ort.InferenceSession(exports['seg']['onnx'], providers=['CPUExecutionProvider'])
    for batch in (1, 5):
        x = np.random.default_rng(batch).standard_normal((batch, 3, 64, 64)).astype(np.float32)
        assert session.run(None, {'input': x})[0].shape[0] == batch


def test_check_of_another_checkpoint_exits_2_with_the_largest_difference(exports):
    run, other = exports['pruned'], _checkpoint(exports['tmp'] / 'other.pth', PRUNED, seed=1)
    ok = run_tool('deploy/check.py', run['onnx'], PRUNED, run['ckpt'])
    assert 'check passed' in ok.stdout
    bad = run_tool('deploy/check.py', run['onnx'], PRUNED, other, check=False)
    assert bad.returncode == 2
    line = bad.stderr.strip().splitlines()[-1]
    assert line.startswith('nose_mm: error: ') and 'does not compute the PyTorch model' in line
    diff, tol = (float(v) for v in re.search(
        r'largest difference ([0-9.e+-]+) > tolerance ([0-9.e+-]+)', line).groups())
    assert diff > 0.01 > tol


def test_export_refuses_a_check_that_cannot_fail(tmp_path):
    """Random init: the demo head is zero-initialised, so both outputs would be 0."""
    proc = run_tool('deploy/export.py', PRUNED, '--out', tmp_path / 'z.onnx', check=False)
    assert proc.returncode == 2 and 'outputs only zeros' in proc.stderr
    assert not osp.exists(tmp_path / 'z.onnx') and not osp.exists(tmp_path / 'z.json')
    assert osp.isfile(tmp_path / 'z.check-failed.onnx') and 'error' in json.loads(
        (tmp_path / 'z.check-failed.json').read_text())['check']
    proc = run_tool('deploy/export.py', PRUNED, '--out', tmp_path / 'n.onnx', '--no-check')
    assert proc.returncode == 0 and osp.isfile(tmp_path / 'n.onnx')


def test_a_failing_export_leaves_the_good_one_in_place(exports):
    """Exporting again over a checked file, with weights whose check fails: the checked
    file and its JSON stay as they were; the failed export lies beside them."""
    run = exports['pruned']
    before = {p: open(p, 'rb').read() for p in (run['onnx'], run['onnx'][:-5] + '.json')}
    proc = run_tool('deploy/export.py', PRUNED, '--out', run['onnx'], '--threads', 1,
                    check=False)  # random weights: the zero head, a check that cannot pass
    line = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 2 and line.startswith('nose_mm: error: ')
    assert line.endswith(f"; {run['onnx']!r} was not written (left as it was), the failed "
                         f"export is {run['onnx'][:-5] + '.check-failed.onnx'!r} with "
                         f"{run['onnx'][:-5] + '.check-failed.json'!r}")
    assert {p: open(p, 'rb').read() for p in before} == before
    assert not osp.exists(run['onnx'][:-5] + '.checking.onnx')


@pytest.mark.parametrize('in_hw,out', [((4, 4), 3), ((7, 5), (6, 2)), ((16, 16), 6)])
def test_static_adaptive_pools_equal_torch(in_hw, out):
    model = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(out))
    x = torch.randn(2, 3, *in_hw)
    ref = model(x)
    with static_adaptive_pools(model, x) as swapped:
        assert swapped == 1 and not isinstance(model[0], torch.nn.AdaptiveAvgPool2d)
        torch.testing.assert_close(model(x), ref, rtol=1e-6, atol=1e-6)
    assert isinstance(model[0], torch.nn.AdaptiveAvgPool2d)


def test_export_leaves_the_model_in_its_mode(tmp_path):
    """The exporter restores the mode of the module it is given: the model must not come
    back in training mode (drop path / BN statistics in every later forward)."""
    from nose_mm.deploy import export_onnx
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4),
                                torch.nn.Dropout(0.5)).eval()
    export_onnx(model, str(tmp_path / 'm.onnx'), torch.randn(2, 3, 8, 8))
    assert not any(m.training for m in model.modules())
    model.train()
    export_onnx(model, str(tmp_path / 'm.onnx'), torch.randn(2, 3, 8, 8))
    assert all(m.training for m in model.modules())
