"""NoseVisionTransformer: equality with mmpretrain, dilution, pruning, loading checks."""
import copy

import pytest
import torch
from mmengine.runner import load_checkpoint
from mmpretrain.models import VisionTransformer
from mmpretrain.registry import MODELS

import nose_mm  # noqa: F401  (registers)
from nose_mm.models import Dilutable, NoseVisionTransformer, find_dilutable_modules

from .family_checks import SMALL_INPUT, TINY, images, mismatch_cases

DEIT_B_ATTN_PARAMS = 2_363_904  # LN1 + qkv + proj of one DeiT-B layer (docs/method.md)


# Tiny models on a shared 2-core machine: one intra-op thread is much faster.
pytestmark = pytest.mark.usefixtures('one_thread')


def _tiny(**kwargs):
    torch.manual_seed(0)
    return NoseVisionTransformer(TINY, **SMALL_INPUT, **kwargs)


def _without_attention(state_dict, layers, prefix=''):
    drop = tuple(f'{prefix}layers.{i}.{part}.' for i in layers for part in ('ln1', 'attn'))
    return {k: v for k, v in state_dict.items() if not k.startswith(drop)}


@pytest.mark.parametrize('kwargs', [
    dict(),
    dict(out_type='featmap', out_indices=(0, 2, 3)),
    dict(out_type='raw', final_norm=False),
    dict(out_type='avg_featmap', with_cls_token=False),
    dict(layer_scale_init_value=0.1, drop_path_rate=0.1),
])
def test_no_dilution_equals_mmpretrain(kwargs):
    torch.manual_seed(0)
    reference = VisionTransformer(TINY, **SMALL_INPUT, **copy.deepcopy(kwargs))
    reference.eval()  # mmpretrain's BaseBackbone.train returns None
    ours = NoseVisionTransformer(TINY, **SMALL_INPUT, diluted_layers=[1, 2],
                                 **copy.deepcopy(kwargs)).eval()
    assert list(ours.state_dict()) == list(reference.state_dict())
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = images()
    with torch.no_grad():
        for a, b in zip(reference(x), ours(x)):
            assert torch.equal(a, b)  # exact: lam = 1 is the parent's block


def test_archs_and_args_kept():
    backbone = NoseVisionTransformer('deit-tiny', diluted_layers=[0, 2, 4], out_indices=-1)
    assert backbone.num_layers == 12 and backbone.embed_dims == 192
    assert backbone.diluted_layers == (0, 2, 4) and backbone.out_indices == [11]
    assert isinstance(backbone, VisionTransformer) and isinstance(backbone, Dilutable)


@pytest.mark.parametrize('compensate', [True, False])
@pytest.mark.parametrize('layer_scale', [0.0, 0.5])
def test_lam_zero_diluted_equals_pruned(compensate, layer_scale):
    diluted = _tiny(diluted_layers=[0, 2], compensate=compensate, init_lam=0.0,
                    layer_scale_init_value=layer_scale).eval()
    pruned = NoseVisionTransformer(TINY, **SMALL_INPUT, removed_layers=[0, 2],
                                   compensate=compensate,
                                   layer_scale_init_value=layer_scale).eval()
    pruned.load_state_dict(_without_attention(diluted.state_dict(), [0, 2]), strict=True)
    x = images()
    with torch.no_grad():
        assert torch.equal(diluted(x)[0], pruned(x)[0])
    assert not hasattr(pruned.layers[0], 'attn') and not hasattr(pruned.layers[0], 'ln1')
    # and it is a different function from the undiluted model
    diluted.set_dilution_lam(1.0)
    with torch.no_grad():
        assert not torch.allclose(diluted(x)[0], pruned(x)[0])


@pytest.mark.parametrize('compensate', [True, False])
def test_intermediate_lam_formula(compensate):
    lam = 0.3
    model = _tiny(diluted_layers=[1], compensate=compensate, init_lam=lam).eval()
    layer = model.layers[1]
    seen = {}
    layer.register_forward_hook(lambda m, inp, out: seen.update(x=inp[0], y=out))
    with torch.no_grad():
        model(images())
        x = seen['x']
        branch = layer.attn(layer.ln1(x))
        mid = (2 - lam) * x + lam * branch if compensate else x + lam * branch
        expected = mid + layer.ffn.layers(layer.ln2(mid))
    torch.testing.assert_close(seen['y'], expected)


def test_attention_not_computed_at_lam_zero():
    model = _tiny(diluted_layers=[1, 3]).eval()
    calls = []
    for i, layer in enumerate(model.layers):
        layer.attn.register_forward_hook(lambda *a, i=i: calls.append(('attn', i)))
        layer.ln1.register_forward_hook(lambda *a, i=i: calls.append(('ln1', i)))
    x = images()
    model.set_dilution_lam(0.5)
    model(x)
    assert sorted({i for _, i in calls}) == [0, 1, 2, 3]
    calls.clear()
    model.set_dilution_lam(0.0)
    model.train()
    loss = model(x)[0].sum()
    loss.backward()
    assert sorted({i for _, i in calls}) == [0, 2]
    assert all(p.grad is None for p in model.layers[1].attn.parameters())
    assert all(p.grad is not None for p in model.layers[0].attn.parameters())


def test_pruned_param_count_tiny():
    base = NoseVisionTransformer(TINY, **SMALL_INPUT)
    pruned = NoseVisionTransformer(TINY, **SMALL_INPUT, removed_layers=[0, 2, 3])
    per_layer = sum(p.numel() for n, p in base.layers[0].named_parameters()
                    if n.startswith(('ln1.', 'attn.')))
    assert per_layer == 2 * 32 + (32 * 96 + 96) + (32 * 32 + 32)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(pruned) == count(base) - 3 * per_layer


def test_pruned_param_count_deit_base():
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    base = count(NoseVisionTransformer('deit-base'))
    pruned = count(NoseVisionTransformer('deit-base', removed_layers=[0, 1, 3, 4, 6]))
    assert base - pruned == 5 * DEIT_B_ATTN_PARAMS


def test_protocol_methods():
    model = _tiny(diluted_layers=[0], removed_layers=[3])
    assert model.num_dilutable_layers == 4 and model.removed_layers == (3,)
    assert model.dilution_compensate is True and model.get_dilution_lam() == 1.0
    model.set_dilution_lam(0.25)
    assert [layer.dilution_lam for layer in model.layers] == [0.25, 1.0, 1.0, 1.0]
    model.set_diluted_layers([1, -2])
    assert model.diluted_layers == (1, 2)
    assert [layer.dilution_lam for layer in model.layers] == [1.0, 0.25, 0.25, 1.0]
    model.set_dilution_compensate(False)
    assert not any(layer.compensate for layer in model.layers)
    with pytest.raises(ValueError, match=r'cannot dilute layers \[3\].*removed'):
        model.set_diluted_layers([3])
    with pytest.raises(ValueError, match='lam must be in'):
        model.set_dilution_lam(1.5)
    classifier = MODELS.build(dict(
        type='ImageClassifier', backbone=dict(type='NoseVisionTransformer', arch=TINY,
                                              **SMALL_INPUT),
        head=dict(type='VisionTransformerClsHead', num_classes=10, in_channels=32)))
    assert find_dilutable_modules(classifier) == [classifier.backbone]


@pytest.mark.parametrize('kwargs, message', [
    (dict(diluted_layers=[4]), r'diluted_layers: layer index 4 is out of range.*0\.\.3'),
    (dict(removed_layers=[-5]), r'removed_layers: layer index -5 is out of range'),
    (dict(diluted_layers=[1, 1]), r'diluted_layers: layer 1 is given twice'),
    (dict(diluted_layers=[3, -1]), r'layer 3 is given twice \(as 3 and -1\)'),
    (dict(diluted_layers=[0, 2], removed_layers=[2, 3]),
     r'layers \[2\] are both in diluted_layers and removed_layers'),
    (dict(init_lam=-0.5), r'lam must be in \[0, 1\], got -0.5'),
    (dict(compensate='yes'), r'compensate must be True or False'),
    (dict(diluted_layers=[0.5]), r'layer index 0.5 is not an int'),
    (dict(drop_path_mode='ramp'), r"drop_path_mode must be 'linear' or 'constant', got 'ramp'"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _tiny(**kwargs)


def _drop_path_rates(model):
    rates = []
    for layer in model.layers:
        attn, ffn = layer.attn.out_drop, layer.ffn.dropout_layer
        assert type(attn).__name__ == type(ffn).__name__ == 'DropPath'
        assert attn.drop_prob == ffn.drop_prob
        rates.append(attn.drop_prob)
    return rates


def test_drop_path_mode():
    """'linear' is mmpretrain's ramp, 'constant' the reference DeiT-B's rate in every layer."""
    reference = VisionTransformer(TINY, **SMALL_INPUT, drop_path_rate=0.3)
    assert _drop_path_rates(_tiny(drop_path_rate=0.3)) == _drop_path_rates(reference)
    assert _drop_path_rates(_tiny(drop_path_rate=0.3)) == pytest.approx([0, 0.1, 0.2, 0.3])
    constant = _tiny(drop_path_rate=0.3, drop_path_mode='constant', diluted_layers=[0])
    assert _drop_path_rates(constant) == pytest.approx([0.3] * 4)
    per_layer = [dict(), dict(drop_path_rate=0.05), dict(), dict()]
    mixed = _tiny(drop_path_rate=0.3, drop_path_mode='constant', layer_cfgs=per_layer)
    assert _drop_path_rates(mixed) == pytest.approx([0.3, 0.05, 0.3, 0.3])
    # same parameters and, in eval mode, the same function as the linear model
    linear = _tiny(drop_path_rate=0.3).eval()
    constant.load_state_dict(linear.state_dict())
    constant.set_dilution_lam(1.0)
    with torch.no_grad():
        assert torch.equal(constant.eval()(images())[-1], linear(images())[-1])


def test_negative_indices_are_normalised():
    model = _tiny(diluted_layers=[-1], removed_layers=[-4])
    assert model.diluted_layers == (3,) and model.removed_layers == (0,)


def test_mmpretrain_checkpoint_loads_everywhere(tmp_path):
    torch.manual_seed(0)
    reference = VisionTransformer(TINY, **SMALL_INPUT)
    path = str(tmp_path / 'vit.pth')
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in reference.state_dict().items()}},
               path)
    model = NoseVisionTransformer(TINY, **SMALL_INPUT, diluted_layers=[0], init_cfg=dict(
        type='Pretrained', checkpoint=path, prefix='backbone.'))
    model.init_weights()
    for key, value in reference.state_dict().items():
        assert torch.equal(model.state_dict()[key], value)


def _pruned_state(layers, prefix=''):
    torch.manual_seed(0)
    model = NoseVisionTransformer(TINY, **SMALL_INPUT, removed_layers=layers)
    return {f'{prefix}{k}': v for k, v in model.state_dict().items()}


@pytest.mark.parametrize('ckpt_removed, model_removed, message', mismatch_cases('ln1/attn'))
def test_pruned_mismatch_is_an_error(tmp_path, ckpt_removed, model_removed, message):
    model = NoseVisionTransformer(TINY, **SMALL_INPUT, removed_layers=model_removed)
    state = _pruned_state(ckpt_removed)
    # direct load_state_dict, strict or not
    for strict in (True, False):
        with pytest.raises(RuntimeError, match=message):
            model.load_state_dict(state, strict=strict)
    # mmengine's load_checkpoint (strict=False only logs missing keys)
    path = str(tmp_path / 'ckpt.pth')
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in state.items()}}, path)
    with pytest.raises(RuntimeError, match=message):
        load_checkpoint(model, path, strict=False, revise_keys=[(r'^backbone\.', '')])
    # init_cfg Pretrained with a prefix
    model = NoseVisionTransformer(TINY, **SMALL_INPUT, removed_layers=model_removed,
                                  init_cfg=dict(type='Pretrained', checkpoint=path,
                                                prefix='backbone.'))
    with pytest.raises(RuntimeError, match=message):
        model.init_weights()
    # a whole classifier (the backbone is a child module)
    classifier = MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='NoseVisionTransformer', arch=TINY, removed_layers=model_removed,
                      **SMALL_INPUT),
        head=dict(type='VisionTransformerClsHead', num_classes=10, in_channels=32)))
    with pytest.raises(RuntimeError, match=message):
        load_checkpoint(classifier, path, strict=False)


def test_matching_pruned_checkpoint_loads(tmp_path):
    state = _pruned_state([1, 2])
    model = NoseVisionTransformer(TINY, **SMALL_INPUT, removed_layers=[2, 1])
    assert str(model.load_state_dict(state, strict=True)) == '<All keys matched successfully>'


def test_segmentation_backbone(tmp_path):
    """UperNet + MultiLevelNeck on a pruned backbone; pos-embed resized from a smaller ckpt."""
    pytest.importorskip('mmseg.models')
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS as SEG_MODELS
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    state = _pruned_state([0, 2], prefix='backbone.')  # trained at 32 px: 4x4 patches
    path = str(tmp_path / 'pruned_cls.pth')
    torch.save({'state_dict': state, 'meta': {'removed_layers': [0, 2]}}, path)
    norm_cfg = dict(type='BN', requires_grad=True)
    cfg = dict(
        type='EncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
                               std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_val=0,
                               seg_pad_val=255, size=(64, 64)),
        backbone=dict(type='NoseVisionTransformer', arch=TINY, img_size=64, patch_size=8,
                      out_type='featmap', out_indices=(0, 1, 2, 3), final_norm=False,
                      removed_layers=[0, 2], drop_path_rate=0.1,
                      # final_norm=False: the classifier's final norm is not loaded
                      init_cfg=dict(type='Pretrained', checkpoint=path, prefix='backbone.',
                                    ignore_keys=[r'ln1\..*'])),
        neck=dict(type='MultiLevelNeck', in_channels=[32] * 4, out_channels=32,
                  scales=[4, 2, 1, 0.5]),
        decode_head=dict(type='UPerHead', in_channels=[32] * 4, in_index=[0, 1, 2, 3],
                         pool_scales=(1, 2), channels=16, dropout_ratio=0.1, num_classes=5,
                         norm_cfg=norm_cfg, align_corners=False,
                         loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0)))
    with DefaultScope.overwrite_default_scope('mmseg'):
        segmentor = SEG_MODELS.build(cfg)
        segmentor.init_weights()
    backbone = segmentor.backbone
    assert isinstance(backbone, NoseVisionTransformer)
    assert backbone.pos_embed.shape == (1, 64 + 1, 32)  # resized from 16 + 1 patches
    assert torch.equal(backbone.layers[1].attn.qkv.weight,
                       state['backbone.layers.1.attn.qkv.weight'])
    segmentor.eval()
    with torch.no_grad():
        out = segmentor(images(1, 64), mode='tensor')
    assert out.shape == (1, 5, 32, 32)  # 8 x 8 patches, the neck scales up by 4
