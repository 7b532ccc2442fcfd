"""mmpretrain's own backbone checks (its tests/test_models/test_backbones for
VisionTransformer, DeiT3 and SwinTransformer), run on the parent class and on the NOSE
subclass of each family: what the parent loads, builds and outputs, the subclass does too.

Tiny archs keep it fast; the checks are those of mmpretrain's tests, written here."""
import copy
import math
from itertools import chain

import pytest
import torch
import torch.nn.functional as F
from mmengine.runner import load_checkpoint, save_checkpoint
from mmpretrain.models.backbones import DeiT3, SwinTransformer, VisionTransformer

import nose_mm  # noqa: F401  (registers, and the strict Pretrained init)
from nose_mm.checkpoint.fit import CheckpointFitError
from nose_mm.models import NoseDeiT3, NoseSwinTransformer, NoseVisionTransformer

pytestmark = pytest.mark.usefixtures('one_thread')

PLAIN = dict(arch=dict(embed_dims=32, num_layers=3, num_heads=2, feedforward_channels=64),
             img_size=32, patch_size=8, drop_path_rate=0.1)
SWIN = dict(arch=dict(embed_dims=16, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8]),
            img_size=64, patch_size=4, window_size=2, drop_path_rate=0.1)
FAMILIES = {
    'vit': (VisionTransformer, NoseVisionTransformer, PLAIN),
    'deit3': (DeiT3, NoseDeiT3, PLAIN),
    'swin': (SwinTransformer, NoseSwinTransformer, SWIN),
}
CLASSES = [pytest.param(FAMILIES[f][i], FAMILIES[f][2], id=f'{f}-{("parent", "nose")[i]}')
           for f in FAMILIES for i in (0, 1)]
SWIN_CLASSES = [p for p in CLASSES if p.id.startswith('swin')]


def _pos_embed(model):
    return model.absolute_pos_embed if isinstance(model, SwinTransformer) else model.pos_embed


def _bicubic_resize(pos_embed, new_tokens, extra):
    """The grid part of ``pos_embed`` resized (bicubic) to ``new_tokens`` grid tokens."""
    head, grid = pos_embed[:, :extra], pos_embed[:, extra:]
    old, new = int(math.isqrt(grid.shape[1])), int(math.isqrt(new_tokens))
    grid = grid.reshape(1, old, old, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(new, new), mode='bicubic', align_corners=False)
    return torch.cat([head, grid.permute(0, 2, 3, 1).reshape(1, new * new, -1)], dim=1)


@pytest.mark.parametrize('cls, cfg', CLASSES)
def test_init_weights_and_checkpoint_resize(cls, cfg, tmp_path):
    cfg = copy.deepcopy(cfg)
    if cls in (SwinTransformer, NoseSwinTransformer):
        cfg['use_abs_pos_embed'] = True
    model = cls(**cfg, init_cfg=[dict(type='Kaiming', layer='Conv2d', mode='fan_in',
                                      nonlinearity='linear')])
    before = model.patch_embed.projection.weight.clone()
    assert torch.count_nonzero(_pos_embed(model)) == 0
    model.init_weights()
    assert not torch.allclose(before, model.patch_embed.projection.weight)
    assert torch.count_nonzero(_pos_embed(model)) > 0
    saved = _pos_embed(model).detach().clone()
    path = str(tmp_path / 'ckpt.pth')
    save_checkpoint(model.state_dict(), path)
    same = cls(**cfg)
    load_checkpoint(same, path, strict=True)
    assert torch.equal(_pos_embed(same), saved)
    bigger = cls(**dict(cfg, img_size=2 * cfg['img_size']))
    load_checkpoint(bigger, path, strict=True)
    extra = saved.shape[1] - (cfg['img_size'] // cfg['patch_size']) ** 2  # ViT: cls slot
    expected = _bicubic_resize(saved, _pos_embed(bigger).shape[1] - extra, extra)
    assert _pos_embed(bigger).shape[1] > saved.shape[1]
    assert torch.allclose(_pos_embed(bigger), expected, atol=1e-6)


def _swin_v1_checkpoint(path):
    """A version-1 Swin file: the last stage's norm saved as ``norm``, an ``attn_mask`` kept."""
    torch.manual_seed(0)
    model = SwinTransformer(**SWIN)
    for p in model.norm3.parameters():
        p.data.uniform_(0.5, 1.5)
    state = model.state_dict()
    metadata = state._metadata
    state = type(state)(
        (k.replace('norm3.', 'norm.') if k.startswith('norm3.') else k, v)
        for k, v in state.items())
    state['stages.0.blocks.1.attn.attn_mask'] = torch.zeros(16, 4, 4)
    metadata['']['version'] = 1
    state._metadata = metadata
    save_checkpoint(state, path)
    return state


@pytest.mark.parametrize('cls, cfg', SWIN_CLASSES)
def test_swin_version1_checkpoint_loads(cls, cfg, tmp_path):
    path = str(tmp_path / 'v1.pth')
    saved = _swin_v1_checkpoint(path)
    model = cls(**cfg)
    load_checkpoint(model, path, strict=True)  # mmengine's loader, strict
    assert torch.equal(model.norm3.weight, saved['norm.weight'])
    # through init_cfg Pretrained (nose_mm's strict fit), inside a classifier prefix too
    model = cls(**cfg, init_cfg=dict(type='Pretrained', checkpoint=path))
    model.init_weights()
    assert torch.equal(model.norm3.weight, saved['norm.weight'])
    assert torch.equal(model.stages[1].blocks[0].attn.w_msa.qkv.weight,
                       saved['stages.1.blocks.0.attn.w_msa.qkv.weight'])
    wrapped = str(tmp_path / 'v1_classifier.pth')
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in saved.items()}}, wrapped)
    model = cls(**cfg, init_cfg=dict(type='Pretrained', checkpoint=wrapped,
                                     prefix='backbone.'))
    model.init_weights()  # no version recorded: treated as the oldest, as the parent does
    assert torch.equal(model.norm3.weight, saved['norm.weight'])


def test_nose_swin_pruned_model_refuses_a_v1_file_with_the_attention(tmp_path):
    path = str(tmp_path / 'v1.pth')
    _swin_v1_checkpoint(path)
    model = NoseSwinTransformer(**SWIN, removed_layers=[1],
                                init_cfg=dict(type='Pretrained', checkpoint=path))
    with pytest.raises(CheckpointFitError, match=r'layers \[1\] have attention weights in the '
                       r'checkpoint but are removed in the model'):
        model.init_weights()


@pytest.mark.parametrize('cls, cfg', CLASSES)
def test_arch_checks(cls, cfg):
    with pytest.raises(AssertionError, match='not in default archs'):
        cls(**dict(cfg, arch='unknown'))
    with pytest.raises(AssertionError, match='Custom arch needs'):
        cls(**dict(cfg, arch=dict(embed_dims=32)))


@pytest.mark.parametrize('cls, cfg', CLASSES)
def test_forward_shapes_and_drop_path_decay(cls, cfg):
    torch.manual_seed(0)
    swin = cls in (SwinTransformer, NoseSwinTransformer)
    size = cfg['img_size']
    if swin:
        model = cls(**dict(cfg, out_indices=(0, 1, 2, 3)))
        model.eval()  # mmpretrain 1.2.0's SwinTransformer.train returns None
        with torch.no_grad():
            outs = model(torch.randn(1, 3, size, size))
        assert [tuple(o.shape) for o in outs] == [
            (1, 16 * 2 ** i, size // 4 // 2 ** i, size // 4 // 2 ** i) for i in range(4)]
        blocks = list(chain(*[stage.blocks for stage in model.stages]))
        probs = [(b.ffn.dropout_layer.drop_prob, b.attn.drop.drop_prob) for b in blocks]
    else:
        model = cls(**dict(cfg, out_indices=[-3, -2, -1]))
        model.eval()
        with torch.no_grad():
            outs = model(torch.randn(1, 3, size, size))
        assert [tuple(o.shape) for o in outs] == [(1, 32)] * 3
        featmap = cls(**dict(cfg, out_type='featmap'))
        featmap.eval()
        with torch.no_grad():  # dynamic input size
            out = featmap(torch.randn(1, 3, size + 8, size + 17))[-1]
        assert tuple(out.shape) == (1, 32, math.ceil((size + 8) / 8),
                                    math.ceil((size + 17) / 8))
        blocks = list(model.layers)
        probs = [(b.ffn.dropout_layer.drop_prob, ) for b in blocks]
    expected = [0.1 * i / (len(blocks) - 1) for i in range(len(blocks))]
    for got, want in zip(probs, expected):
        assert all(p == pytest.approx(want) for p in got)


@pytest.mark.parametrize('cls, cfg', [p for p in CLASSES if not p.id.startswith('deit3')])
def test_frozen_stages(cls, cfg):  # DeiT3 has no frozen_stages
    swin = cls in (SwinTransformer, NoseSwinTransformer)
    model = cls(**dict(cfg, frozen_stages=0 if swin else 1,
                       **(dict(out_indices=(0, 1, 2, 3)) if swin else {})))
    model.init_weights()
    model.train()
    assert not any(p.requires_grad for p in model.patch_embed.parameters())
    if swin:
        assert not model.patch_embed.training
        frozen, free = [model.stages[0], model.norm0], [model.stages[1], model.norm1]
    else:
        frozen, free = [model.layers[0]], [model.layers[1], model.layers[2]]
        assert not model.pos_embed.requires_grad and not model.cls_token.requires_grad
    assert not any(p.requires_grad for m in frozen for p in m.parameters())
    assert all(p.requires_grad for m in free for p in m.parameters())
