"""The authors' ADE20k recipe (NoseMAE, Feature2Pyramid, layer decay): the real DeiT-B
[0, 1, 3, 4, 6] config through tools/train.py, resumed, and the demo-sized config through
dilution, tools/prune.py, tools/benchmark.py and the leaderboard."""
import os.path as osp
import re

import pytest
import torch

from tests.utils import REPO, run_tool

pytestmark = pytest.mark.slow

PRUNED_B = osp.join(REPO, 'configs/ade20k/upernet_deit-base_nose-0-1-3-4-6-pruned_tinymim_'
                    '8xb2-amp-160k_ade20k-512x512.py')
REMOVED = [0, 1, 3, 4, 6]


def _load(path):
    return torch.load(path, map_location='cpu', weights_only=False)


def _pruned_vit_classifier(path):
    """A 12-layer, 32-wide pruned ViT classifier checkpoint, as tools/prune.py writes one."""
    from nose_mm.models import NoseVisionTransformer
    torch.manual_seed(0)
    vit = NoseVisionTransformer(dict(embed_dims=32, num_layers=12, num_heads=2,
                                     feedforward_channels=64), img_size=224, patch_size=16,
                                removed_layers=REMOVED)
    with torch.no_grad():
        for param in vit.parameters():
            param.add_(0.1 * torch.randn(param.shape))
    state = {f'backbone.{k}': v for k, v in vit.state_dict().items()}
    torch.save({'state_dict': state, 'meta': {'removed_layers': REMOVED,
                                              'dilution_compensate': True,
                                              'dilution_layers': []}}, path)
    return state


def _shrunk(data_root, checkpoint, iters):
    """--cfg-options turning the real config into a 64 px, 32-wide, few-iteration run."""
    opts = {
        'model.backbone.arch': 'None', 'model.backbone.embed_dims': 32,
        'model.backbone.num_heads': 2, 'model.backbone.mlp_ratio': 2,
        'model.backbone.img_size': '(64,64)', 'model.backbone.init_cfg.checkpoint': checkpoint,
        'model.data_preprocessor.size': '(64,64)', 'model.neck.embed_dim': 32,
        'model.decode_head.in_channels': '[32,32,32,32]', 'model.decode_head.channels': 16,
        'model.auxiliary_head.in_channels': 32, 'model.auxiliary_head.channels': 16,
        'model.test_cfg.crop_size': '(64,64)', 'model.test_cfg.stride': '(43,43)',
        'train_dataloader.dataset.pipeline.2.scale': '(256,64)',
        'train_dataloader.dataset.pipeline.3.crop_size': '(64,64)',
        'train_cfg.max_iters': iters, 'train_cfg.val_interval': iters,
        'param_scheduler.0.end': 2, 'param_scheduler.1.begin': 2, 'param_scheduler.1.end': iters,
        'default_hooks.checkpoint.interval': 2, 'default_hooks.logger.interval': 1,
    }
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        opts.update({f'{loader}.dataset.data_root': data_root, f'{loader}.num_workers': 0,
                     f'{loader}.persistent_workers': False})
        if loader != 'train_dataloader':
            opts[f'{loader}.dataset.pipeline.1.scale'] = '(256,64)'
    return ['--cfg-options'] + [f'{k}={v}' for k, v in opts.items()]


def test_authors_recipe_deit_b_pruned_trains_and_resumes(tiny_ade20k, tmp_path):
    """tools/convert/deit_to_mae.py -> tools/train.py on the real config -> --resume."""
    source = _pruned_vit_classifier(tmp_path / 'cls.pth')
    converted = tmp_path / 'mae.pth'
    proc = run_tool('convert/deit_to_mae.py', tmp_path / 'cls.pth', converted,
                    '--img-size', 64, '--num-heads', 2)
    assert 'removed_layers=[0, 1, 3, 4, 6]' in proc.stdout and 'qv_bias=True' in proc.stdout
    opts = _shrunk(tiny_ade20k, converted, iters=4)
    full = tmp_path / 'full'
    proc = run_tool('train.py', PRUNED_B, '--work-dir', full, *opts)
    log = proc.stdout + proc.stderr
    assert re.search(r'mIoU: [0-9.]+', log), log[-3000:]
    ckpt = _load(full / 'iter_4.pth')
    state = ckpt['state_dict']
    assert not any(f'backbone.layers.{i}.attn.' in k or f'backbone.layers.{i}.gamma_1' in k
                   for k in state for i in REMOVED)
    assert 'backbone.layers.2.attn.q_bias' in state and 'neck.upsample_4x.0.weight' in state
    # the backbone started from the converted classifier: q bias = its qkv bias' first third
    q_bias = source['backbone.layers.2.attn.qkv.bias'][:32]
    assert torch.allclose(state['backbone.layers.2.attn.q_bias'], q_bias, atol=1e-2)
    # layer-wise decay 0.75: 14 lr levels (embedding, 12 blocks, neck and heads)
    lrs = sorted({g['initial_lr'] for g in ckpt['optimizer']['param_groups']}, reverse=True)
    assert lrs[0] == pytest.approx(1e-4) and len(lrs) == 14
    assert all(b / a == pytest.approx(0.75) for a, b in zip(lrs, lrs[1:]))
    # --resume from iteration 2 lands where the uninterrupted run did
    resumed = tmp_path / 'resumed'
    run_tool('train.py', PRUNED_B, '--work-dir', resumed, '--resume', full / 'iter_2.pth', *opts)
    again = _load(resumed / 'iter_4.pth')['state_dict']
    assert again.keys() == state.keys()
    for key in state:
        assert torch.equal(again[key], state[key]), key


DEMO = osp.join(REPO, 'configs/demo/upernet_mae-demo_digits-seg-64px.py')


def _demo_data(tmp_path):
    """Digit-canvas-like ADE20k-layout data: background and 3 of the demo's 10 digits."""
    import numpy as np

    from nose_mm.datasets import write_ade20k
    rng = np.random.default_rng(0)
    root = str(tmp_path / 'seg_data')
    for split, n in (('training', 4), ('validation', 2)):
        images = rng.integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)
        labels = np.ones((n, 64, 64), np.uint8)
        labels[:, 16:48, 8:24], labels[:, 16:48, 40:56] = 2, 4
        write_ade20k(root, split, images, labels)
    return osp.join(root, 'ADEChallengeData2016')


def _demo_cfg(tmp_path, name, data_root, **backbone):
    from mmengine.config import Config
    cfg = Config.fromfile(DEMO)
    cfg.merge_from_dict({
        'model.backbone.init_cfg': None, 'train_cfg.max_iters': 3, 'train_cfg.val_interval': 3,
        'param_scheduler': [], 'default_hooks.checkpoint.interval': 3,
        'default_hooks.logger.interval': 1, 'train_dataloader.batch_size': 2,
        'val_dataloader.batch_size': 1, 'test_dataloader.batch_size': 1,
        'train_dataloader.dataset.data_root': data_root,
        'val_dataloader.dataset.data_root': data_root,
        'test_dataloader.dataset.data_root': data_root})
    cfg.model.backbone.update(backbone)
    if backbone.get('diluted_layers'):
        cfg.custom_hooks = [dict(type='DilutionHook', begin=0, end=2, by_epoch=False)]
    path = str(tmp_path / f'{name}.py')
    cfg.dump(path)
    return path


def _miou(text):
    found = re.findall(r'mIoU: ([0-9.]+)', text)
    assert found, text[-3000:]
    return float(found[-1])


def test_demo_mae_dilutes_prunes_benchmarks_and_ranks(tmp_path):
    """The demo-sized NoseMAE UperNet: DilutionHook to lam = 0, tools/prune.py (the family
    named from the keys), the pruned model scoring exactly as the lam = 0 one,
    tools/benchmark.py and tools/leaderboard.py."""
    import json
    data = _demo_data(tmp_path)
    diluted = _demo_cfg(tmp_path, 'diluted', data, diluted_layers=[1, 3])
    pruned_cfg = _demo_cfg(tmp_path, 'pruned', data, removed_layers=[1, 3])
    base_cfg = _demo_cfg(tmp_path, 'base', data)
    work = tmp_path / 'runs' / 'diluted'
    trained = run_tool('train.py', diluted, '--work-dir', work)
    assert _load(work / 'iter_3.pth')['meta']['dilution_lam'] == 0.0
    proc = run_tool('prune.py', work / 'iter_3.pth', tmp_path / 'pruned.pth')
    assert "type='NoseMAE', removed_layers=[1, 3]" in proc.stdout, proc.stdout
    keys = _load(tmp_path / 'pruned.pth')['state_dict']
    assert not any(k.startswith(('backbone.layers.1.attn', 'backbone.layers.3.gamma_1'))
                   for k in keys)
    # the pruned model computes the lam = 0 one (equal mIoU alone could come from a
    # 3-iteration model predicting one class either way)
    from mmengine.config import Config

    from nose_mm.models.builder import build_model_from_cfg
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    lam0 = build_model_from_cfg(Config.fromfile(diluted), str(work / 'iter_3.pth'))
    lam0.backbone.set_dilution_lam(0.0)
    cut = build_model_from_cfg(Config.fromfile(pruned_cfg), str(tmp_path / 'pruned.pth'))
    with torch.no_grad():
        a, b = lam0(x, mode='tensor'), cut(x, mode='tensor')
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
        lam0.backbone.set_dilution_lam(1.0)  # and the attention there mattered
        assert not torch.allclose(lam0(x, mode='tensor'), b, atol=1e-4)
    test = tmp_path / 'runs' / 'pruned'
    pruned = run_tool('test.py', pruned_cfg, tmp_path / 'pruned.pth', '--work-dir', test)
    # the run validated its last weights at lam = 0: the pruned model scores the same
    assert _miou(pruned.stdout + pruned.stderr) == _miou(trained.stdout + trained.stderr)
    run_tool('benchmark.py', base_cfg, '--compare', pruned_cfg, '--batch-size', 1,
             '--repeats', 1, '--warmup', 0, '--threads', 1, '--no-memory',
             '--out', test / 'benchmark.json')
    record = json.load(open(test / 'benchmark.json'))
    text = json.dumps(record)
    assert '"NoseMAE"' in text and 'Feature2Pyramid' in text
    board = tmp_path / 'board.md'
    run_tool('leaderboard.py', tmp_path / 'runs', '--out', board)
    table = board.read_text()
    assert 'MAE-style' in table and '[1, 3]' in table, table
