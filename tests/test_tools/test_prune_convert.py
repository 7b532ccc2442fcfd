"""tools/prune.py and tools/convert/*.py on Runner-saved and timm-style checkpoints."""
import importlib.util
import os.path as osp
import subprocess
import sys
import uuid

import numpy as np
import pytest
import torch
from mmengine.runner import Runner, load_checkpoint
from mmpretrain.registry import MODELS

import nose_mm  # noqa: F401
from nose_mm.datasets import write_cifar100

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TINY = dict(embed_dims=32, num_layers=4, num_heads=2, feedforward_channels=64)


# Tiny models on a shared 2-core machine: one intra-op thread is much faster.
pytestmark = pytest.mark.usefixtures('one_thread')


def _tool(path):
    """Import a tool script as a module (its ``main(argv)`` is what the CLI runs)."""
    spec = importlib.util.spec_from_file_location(f'tool_{uuid.uuid4().hex[:6]}',
                                                  osp.join(REPO, 'tools', path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cli(path, *args):
    return subprocess.run([sys.executable, osp.join(REPO, 'tools', path), *map(str, args)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)


def _classifier(**backbone):
    model = MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='NoseVisionTransformer', arch=TINY, img_size=32, patch_size=8,
                      **backbone),
        neck=None,
        head=dict(type='VisionTransformerClsHead', num_classes=100, in_channels=32)))
    model.eval()
    return model


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A 3-epoch dilution run (layers 0 and 2, lam = 1, 0.5, 0); returns the work dir."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp('data')
    rng = np.random.default_rng(0)
    images = lambda n: rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)  # noqa: E731
    write_cifar100(str(root), images(8), rng.integers(0, 100, 8).tolist(), images(4),
                   rng.integers(0, 100, 4).tolist())
    work_dir = tmp_path_factory.mktemp('work')
    runner = Runner(
        model=dict(type='ImageClassifier',
                   data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=100,
                                          mean=[128.0] * 3, std=[64.0] * 3),
                   backbone=dict(type='NoseVisionTransformer', arch=TINY, img_size=32,
                                 patch_size=8, diluted_layers=[0, 2]),
                   neck=None,
                   head=dict(type='VisionTransformerClsHead', num_classes=100, in_channels=32)),
        work_dir=str(work_dir),
        experiment_name=f'prune_{uuid.uuid4().hex[:8]}',
        train_dataloader=dict(batch_size=4, num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=True, seed=0),
                              dataset=dict(type='NoseCIFAR100', data_root=str(root),
                                           split='train', download=False, verify_md5=False,
                                           pipeline=[dict(type='PackInputs')])),
        train_cfg=dict(by_epoch=True, max_epochs=3),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9)),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1)),
        custom_hooks=[dict(type='DilutionHook', begin=0, end=2)],
        randomness=dict(seed=0), default_scope='mmpretrain', log_level='WARNING')
    try:
        runner.train()
    finally:
        torch.set_num_threads(threads)
    return work_dir


def _load(path):
    return torch.load(path, map_location='cpu', weights_only=False)


def test_prune_cli_and_pruned_model_equals_lam_zero_model(trained, tmp_path):
    out = tmp_path / 'pruned.pth'
    proc = _cli('prune.py', trained / 'epoch_3.pth', out)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith(
        f"-> {out}; backbone: dict(type='NoseVisionTransformer', removed_layers=[0, 2], "
        f"compensate=True)")
    pruned = _load(out)
    meta = pruned['meta']
    assert meta['removed_layers'] == [0, 2] and meta['dilution_layers'] == []
    assert meta['dilution_compensate'] is True and meta['pruned_layers'] == [0, 2]
    assert set(pruned) == {'meta', 'state_dict'}
    assert not [k for k in pruned['state_dict'] if k.startswith(
        ('backbone.layers.0.ln1', 'backbone.layers.0.attn', 'backbone.layers.2.ln1',
         'backbone.layers.2.attn'))]

    diluted = _classifier(diluted_layers=[0, 2], init_lam=0.0)
    load_checkpoint(diluted, str(trained / 'epoch_3.pth'), strict=True)
    small = _classifier(removed_layers=meta['removed_layers'],
                        compensate=meta['dilution_compensate'])
    load_checkpoint(small, str(out), strict=True)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(diluted(x, mode='tensor'), small(x, mode='tensor'))
    removed_params = sum(p.numel() for n, p in diluted.named_parameters()
                         if n.startswith(('backbone.layers.0.ln1', 'backbone.layers.0.attn',
                                          'backbone.layers.2.ln1', 'backbone.layers.2.attn')))
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(small) == count(diluted) - removed_params

    # The pruned checkpoint does not load into an unpruned or differently pruned config.
    with pytest.raises(RuntimeError, match=r'layers \[0, 2\] have no attention'):
        load_checkpoint(_classifier(diluted_layers=[0, 2]), str(out))
    with pytest.raises(RuntimeError, match=r'layers \[2\] have no attention.*'
                                           r'layers \[1\] have attention weights'):
        load_checkpoint(_classifier(removed_layers=[0, 1]), str(out))


@pytest.mark.parametrize('epoch, lam', [(1, '1'), (2, '0.5')])
def test_prune_refuses_lam_above_zero(trained, tmp_path, capsys, epoch, lam):
    out = tmp_path / 'pruned.pth'
    assert _tool('prune.py').main([str(trained / f'epoch_{epoch}.pth'), str(out)]) == 2
    err = capsys.readouterr().err
    assert f'refusing to prune: the checkpoint was saved at lam = {lam} > 0' in err
    assert 'a "best" checkpoint chosen while lam > 0 is not' in err
    assert not out.exists()


def test_prune_refuses_checkpoints_without_dilution_meta(tmp_path, capsys):
    src = tmp_path / 'plain.pth'
    torch.save({'state_dict': _classifier().state_dict(), 'meta': {'epoch': 3}}, src)
    assert _tool('prune.py').main([str(src), str(tmp_path / 'out.pth')]) == 2
    assert 'has no meta["dilution_lam"]' in capsys.readouterr().err


def test_prune_layer_selection(trained, tmp_path, capsys):
    prune = _tool('prune.py')
    out = tmp_path / 'p2.pth'
    assert prune.main([str(trained / 'epoch_3.pth'), str(out), '--layers', '2']) == 0
    meta = _load(out)['meta']
    assert meta['removed_layers'] == [2] and meta['dilution_layers'] == [0]
    # layer 2 pruned, layer 0 still diluted at lam = 0: same function
    model = _classifier(removed_layers=[2], diluted_layers=[0], init_lam=0.0)
    load_checkpoint(model, str(out), strict=True)
    # pruning a layer that was never diluted changes the model: refused
    assert prune.main([str(trained / 'epoch_3.pth'), str(out), '--layers', '1']) == 2
    assert 'layers [1] were not diluted' in capsys.readouterr().err
    # the pruned checkpoint cannot be pruned again at the same layer
    assert prune.main([str(out), str(tmp_path / 'p3.pth'), '--layers', '2']) == 2
    assert 'layers [2] are already removed' in capsys.readouterr().err


def test_prune_bad_paths(trained, tmp_path, capsys):
    prune = _tool('prune.py')
    missing = str(tmp_path / 'missing.pth')
    assert prune.main([missing, str(tmp_path / 'o.pth')]) == 2
    assert capsys.readouterr().err == f'nose_mm: error: checkpoint {missing!r} does not exist\n'
    assert prune.main([str(tmp_path), str(tmp_path / 'o.pth')]) == 2
    assert 'is a folder' in capsys.readouterr().err
    ckpt = str(trained / 'epoch_3.pth')
    assert prune.main([ckpt, ckpt]) == 2
    assert 'is the input checkpoint' in capsys.readouterr().err
    assert prune.main([ckpt, str(tmp_path)]) == 2
    assert 'is a folder, expected a file name' in capsys.readouterr().err
    garbage = tmp_path / 'garbage.pth'
    garbage.write_text('not a checkpoint')
    assert prune.main([str(garbage), str(tmp_path / 'o.pth')]) == 2
    assert 'cannot read' in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ['garbage.pth']  # nothing half-written


def _timm_tiny():
    timm = pytest.importorskip('timm')
    torch.manual_seed(0)
    model = timm.models.vision_transformer.VisionTransformer(
        img_size=32, patch_size=8, embed_dim=32, depth=4, num_heads=2, mlp_ratio=2,
        num_classes=100)
    return model.eval()


def test_deit_to_mmpretrain_cli(tmp_path, capsys):
    reference = _timm_tiny()
    src, dst = tmp_path / 'deit.pth', tmp_path / 'mm.pth'
    torch.save({'model': reference.state_dict(), 'epoch': 299}, src)
    proc = _cli('convert/deit_to_mmpretrain.py', src, dst)
    assert proc.returncode == 0, proc.stderr
    model = _classifier()
    load_checkpoint(model, str(dst), strict=True)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (model(x, mode='tensor') - reference(x)).abs().max() <= 1e-5
    # a pruned (reference-code) checkpoint is pointed to the other converter
    state = {k: v for k, v in reference.state_dict().items() if not k.startswith('blocks.1.attn')
             and not k.startswith('blocks.1.norm1')}
    torch.save({'model': state}, src)
    assert _tool('convert/deit_to_mmpretrain.py').main([str(src), str(tmp_path / 'x.pth')]) == 2
    assert 'lambda_vit_to_nose.py' in capsys.readouterr().err


def test_lambda_vit_to_nose(tmp_path):
    reference = _timm_tiny()
    state = {k: v for k, v in reference.state_dict().items()
             if not k.startswith(('blocks.0.norm1', 'blocks.0.attn', 'blocks.3.norm1',
                                  'blocks.3.attn'))}
    src, dst = tmp_path / 'lambda.pth', tmp_path / 'nose.pth'
    torch.save({'model': state}, src)
    convert = _tool('convert/lambda_vit_to_nose.py')
    assert convert.main([str(src), str(dst)]) == 0
    converted = _load(dst)
    assert converted['meta']['removed_layers'] == [0, 3]
    assert converted['meta']['dilution_compensate'] is True
    model = _classifier(removed_layers=[0, 3])
    load_checkpoint(model, str(dst), strict=True)
    assert convert.main([str(src), str(dst), '--no-compensate']) == 0
    assert _load(dst)['meta']['dilution_compensate'] is False
    assert convert.main([str(tmp_path / 'nope.pth'), str(dst)]) == 2
