"""NoseDeiT3: the official DeiT-III block (timm as oracle), dilution, pruning, conversion."""
import pytest
import torch
from mmpretrain.models import DeiT3
from mmpretrain.registry import MODELS
from mmseg.registry import MODELS as SEG_MODELS

import nose_mm  # noqa: F401  (registers)
from nose_mm.models import Dilutable, NoseDeiT3, find_dilutable_modules
from nose_mm.models.convert import convert_deit_checkpoint
from nose_mm.models.family import detect_source_family
from nose_mm.models.prune import attention_keys

from .family_checks import (SMALL_INPUT, TINY, assert_lam_zero_equals_pruned,
                            assert_mismatch_refused, attention_params, count,
                            dilute_train_prune, images, mismatch_cases, perturb)

# ln1 (2 x 384) + qkv (384 x 1152 + 1152) + proj (384 x 384 + 384) + layer scale gamma1 (384)
DEIT3_S_ATTN_PARAMS = 592_512

pytestmark = pytest.mark.usefixtures('one_thread')


def _tiny(**kwargs):
    torch.manual_seed(0)
    return NoseDeiT3(TINY, **SMALL_INPUT, **kwargs)


def _perturbed_timm_deit3():
    """timm's deit3_small_patch16_224 with norms and layer scales moved off their init."""
    timm = pytest.importorskip('timm')
    torch.manual_seed(0)
    model = timm.create_model('deit3_small_patch16_224', pretrained=False).eval()
    return perturb(model, gamma=0.5)  # layer scales start at 1e-6


def _classifier(**backbone):
    return MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='NoseDeiT3', arch='small', img_size=224, patch_size=16, **backbone),
        neck=None,
        head=dict(type='VisionTransformerClsHead', num_classes=1000, in_channels=384))).eval()


def test_equals_timm_deit3_small():
    """Converted timm weights: CLS feature and logits equal timm's to 1e-5."""
    reference = _perturbed_timm_deit3()
    converted = convert_deit_checkpoint({'model': reference.state_dict()})
    assert converted['meta'] == {'converted_from': 'timm/deit3', 'backbone': 'NoseDeiT3'}
    ours = _classifier()
    ours.load_state_dict(converted['state_dict'], strict=True)
    x = images(2, 224)
    with torch.no_grad():
        expected_feat = reference.forward_head(reference.forward_features(x), pre_logits=True)
        feat = ours.extract_feat(x)[0]
        torch.testing.assert_close(feat, expected_feat, rtol=0, atol=1e-5)
        torch.testing.assert_close(ours.head(ours.extract_feat(x)), reference(x), rtol=0,
                                   atol=1e-5)
        # mmpretrain 1.2.0's DeiT3 (ln1 before the FFN) is another function of these weights
        mm = DeiT3('small', img_size=224, patch_size=16)
        mm.load_state_dict({k[len('backbone.'):]: v for k, v in converted['state_dict'].items()
                            if k.startswith('backbone.')}, strict=True)
        mm.eval()
        assert (mm(x)[0] - expected_feat).abs().max() > 1e-2


def test_official_deit3_keys_convert_like_timm():
    """The official release names layer scales gamma_1 / gamma_2."""
    timm_sd = _perturbed_timm_deit3().state_dict()
    official = {k.replace('ls1.gamma', 'gamma_1').replace('ls2.gamma', 'gamma_2'): v
                for k, v in timm_sd.items()}
    assert detect_source_family(official).name == 'deit3'
    a = convert_deit_checkpoint({'model': official})['state_dict']
    b = convert_deit_checkpoint(timm_sd)['state_dict']
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_deit3_without_layer_scales_is_refused():
    sd = {k: v for k, v in _perturbed_timm_deit3().state_dict().items()
          if not k.endswith('ls2.gamma')}
    with pytest.raises(ValueError, match='a DeiT-III checkpoint has two layer scales per '
                       r'block \(ls1/ls2 or gamma_1/gamma_2\); found 12 for 12 blocks'):
        convert_deit_checkpoint(sd)


def test_ffn_uses_ln2_and_matches_parent_otherwise():
    """Same keys as mmpretrain's DeiT3; the block is x + LS2(FFN(LN2(x)))."""
    torch.manual_seed(0)
    reference = DeiT3(TINY, **SMALL_INPUT)
    ours = NoseDeiT3(TINY, **SMALL_INPUT, diluted_layers=[1])
    assert list(ours.state_dict()) == list(reference.state_dict())
    assert isinstance(ours, DeiT3) and isinstance(ours, Dilutable)
    assert ours.train() is ours and ours.eval() is ours
    ours.load_state_dict(reference.state_dict(), strict=True)
    layer = ours.layers[2]
    with torch.no_grad():
        layer.ln2.weight.normal_()
        x = torch.randn(2, 5, 32)
        mid = x + layer.attn(layer.ln1(x))
        expected = mid + layer.ffn.gamma2(layer.ffn.layers(layer.ln2(mid)))
        torch.testing.assert_close(layer(x), expected, rtol=0, atol=0)


@pytest.mark.parametrize('compensate', [True, False])
def test_lam_zero_diluted_equals_pruned(compensate):
    assert_lam_zero_equals_pruned(lambda **kw: NoseDeiT3(TINY, **SMALL_INPUT, **kw), [0, 2],
                                  images(), compensate)


def test_removed_layer_is_compensated_mlp_block():
    model = _tiny(removed_layers=[1]).eval()
    layer = model.layers[1]
    seen = {}
    layer.register_forward_hook(lambda m, inp, out: seen.update(x=inp[0], y=out))
    with torch.no_grad():
        model(images())
        mid = 2 * seen['x']
        expected = mid + layer.ffn.gamma2(layer.ffn.layers(layer.ln2(mid)))
    torch.testing.assert_close(seen['y'], expected, rtol=0, atol=0)


def test_pruned_param_count_deit3_small():
    base = NoseDeiT3('small')
    assert attention_params(base.layers[0]) == DEIT3_S_ATTN_PARAMS
    pruned = NoseDeiT3('small', removed_layers=[0, 3, 7])
    assert count(base) - count(pruned) == 3 * DEIT3_S_ATTN_PARAMS


@pytest.mark.parametrize('ckpt_removed, model_removed, message', mismatch_cases('ln1/attn'))
def test_pruned_mismatch_is_an_error(tmp_path, ckpt_removed, model_removed, message):
    assert_mismatch_refused(lambda **kw: _tiny(**kw), ckpt_removed, model_removed, message,
                            tmp_path)


def test_registries_and_attention_keys():
    assert SEG_MODELS.get('NoseDeiT3') is NoseDeiT3 and MODELS.get('NoseDeiT3') is NoseDeiT3
    state = {f'backbone.{k}': v for k, v in _tiny().state_dict().items()}
    assert attention_keys(state, 1) == [
        f'backbone.layers.1.{k}' for k in ('ln1.weight', 'ln1.bias', 'attn.qkv.weight',
                                           'attn.qkv.bias', 'attn.proj.weight',
                                           'attn.proj.bias', 'attn.gamma1.weight')]


def test_dilution_hook_runner_and_prune(tiny_cifar100, tmp_path):
    """DilutionHook drives NoseDeiT3 in a 3-iteration Runner; the lam = 0 result prunes."""
    model, pruned, lams, ckpt = dilute_train_prune('tiny-deit3_cifar100.py', tiny_cifar100,
                                                   tmp_path / 'work', diluted=[1, 3])
    assert lams == [1.0, 0.5, 0.0]
    assert find_dilutable_modules(model) == [model.backbone]
    assert ckpt['meta']['removed_layers'] == [1, 3]
    assert not any('layers.1.attn' in k or 'layers.3.ln1' in k for k in ckpt['state_dict'])
    x = images(3)
    with torch.no_grad():
        torch.testing.assert_close(model.extract_feat(x)[0], pruned.extract_feat(x)[0],
                                   rtol=0, atol=0)


def test_backbone_type_from_keys_refuses_to_guess_without_a_class_token():
    """tools/prune.py names the backbone of a pruned checkpoint from its keys: DeiT-III and
    ViT differ only in the class token's position slot, so without one it says so."""
    from nose_mm.models import NoseVisionTransformer
    from nose_mm.models.prune import backbone_type_of, pruned_backbone_cfg

    def keys(model):
        return {f'backbone.{k}': v for k, v in model.state_dict().items()}

    assert backbone_type_of(keys(_tiny())) == 'NoseDeiT3'
    assert backbone_type_of(keys(NoseVisionTransformer(TINY, **SMALL_INPUT))) == \
        'NoseVisionTransformer'
    no_cls = dict(with_cls_token=False, out_type='featmap')
    deit3 = _tiny(**no_cls)
    vit = NoseVisionTransformer(TINY, **SMALL_INPUT, **no_cls, layer_scale_init_value=1e-5)
    assert {k: v.shape for k, v in keys(deit3).items()} == \
        {k: v.shape for k, v in keys(vit).items()}  # nothing tells them apart
    assert backbone_type_of(keys(deit3)) is None and backbone_type_of(keys(vit)) is None
    meta = {'removed_layers': [1], 'dilution_compensate': True}
    assert pruned_backbone_cfg(meta, keys(_tiny())) == \
        "dict(type='NoseDeiT3', removed_layers=[1], compensate=True)"
    assert 'NoseVisionTransformer or NoseDeiT3, the keys do not tell' in \
        pruned_backbone_cfg(meta, keys(deit3))
