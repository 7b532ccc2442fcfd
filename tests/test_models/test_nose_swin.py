"""NoseSwinTransformer: equality with mmpretrain, timm conversion, dilution, pruning."""
import copy

import pytest
import torch
from mmpretrain.models import SwinTransformer
from mmpretrain.registry import MODELS
from mmseg.registry import MODELS as SEG_MODELS

import nose_mm  # noqa: F401  (registers)
from nose_mm.models import Dilutable, NoseSwinTransformer, find_dilutable_modules
from nose_mm.models.convert import convert_deit_checkpoint
from nose_mm.models.family import detect_source_family
from nose_mm.models.prune import attention_keys, prune_state_dict

from .family_checks import (assert_lam_zero_equals_pruned, assert_mismatch_refused,
                            attention_params, count, dilute_train_prune, mismatch_cases,
                            perturb)

# 3 stages of 2 blocks (layers 0-5); 32 px -> 8x8, 4x4, 2x2 tokens in 2x2 windows
TINY = dict(embed_dims=16, depths=[2, 2, 2], num_heads=[1, 2, 4])
SMALL_INPUT = dict(img_size=32, patch_size=4, window_size=2, out_indices=(2, ))
# norm1 (2C) + qkv (3C^2 + 3C) + proj (C^2 + C) + bias table (13^2 x heads), per stage of Swin-T
SWIN_T_ATTN_PARAMS = (37_947, 149_622, 594_156, 2_367_960)

pytestmark = pytest.mark.usefixtures('one_thread')


def _tiny(**kwargs):
    torch.manual_seed(0)
    return NoseSwinTransformer(copy.deepcopy(TINY), **dict(SMALL_INPUT, **kwargs))


def _images(n=2, size=32):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize('kwargs, size', [
    (dict(), 32),
    (dict(out_indices=(0, 1, 2), drop_path_rate=0.2), 32),
    (dict(out_indices=(1, 2), out_after_downsample=True, use_abs_pos_embed=True), 32),
    # the mmseg usage: 4 stage outputs, padded small maps, another input size
    (dict(arch=dict(embed_dims=16, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8]),
          out_indices=(0, 1, 2, 3), pad_small_map=True), 48),
])
def test_no_dilution_equals_mmpretrain(kwargs, size):
    kwargs = dict(dict(arch=TINY, **SMALL_INPUT), **kwargs)
    torch.manual_seed(0)
    reference = SwinTransformer(**copy.deepcopy(kwargs))
    reference.eval()  # mmpretrain 1.2.0's SwinTransformer.train returns None
    ours = NoseSwinTransformer(**copy.deepcopy(kwargs), diluted_layers=[1, 4])
    assert ours.eval() is ours and ours.train(False) is ours
    assert list(ours.state_dict()) == list(reference.state_dict())
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = _images(2, size)
    with torch.no_grad():
        outs, expected = ours(x), reference(x)
    assert len(outs) == len(expected) == len(kwargs['out_indices'])
    for a, b in zip(outs, expected):
        assert torch.equal(a, b)  # bit for bit: lam = 1 is the parent's block


def test_archs_and_global_indices():
    backbone = NoseSwinTransformer('tiny', diluted_layers=[0, 5, -1])
    assert backbone.num_dilutable_layers == 12 and backbone.num_layers == 4  # stages
    assert backbone.diluted_layers == (0, 5, 11) and backbone.block_depths() == (2, 2, 6, 2)
    lams = [[b.dilution_lam for b in stage.blocks] for stage in backbone.stages]
    backbone.set_dilution_lam(0.5)
    lams = [[b.dilution_lam for b in stage.blocks] for stage in backbone.stages]
    assert lams == [[0.5, 1.0], [1.0, 1.0], [1.0, 0.5, 1.0, 1.0, 1.0, 1.0], [1.0, 0.5]]
    assert isinstance(backbone, SwinTransformer) and isinstance(backbone, Dilutable)
    with pytest.raises(ValueError, match=r'removed_layers: layer index 12 is out of range; '
                       r'the model has 12 layers'):
        NoseSwinTransformer('tiny', removed_layers=[12])


@pytest.mark.parametrize('compensate', [True, False])
def test_lam_zero_diluted_equals_pruned(compensate):
    # a window block (0), shifted-window blocks (3, 5) and the 2x2 last stage
    assert_lam_zero_equals_pruned(lambda **kw: _tiny(out_indices=(0, 1, 2), **kw), [0, 3, 5],
                                  _images(), compensate)


def test_removed_block_is_compensated_mlp_block():
    model = _tiny(removed_layers=[3]).eval()
    block = model.stages[1].blocks[1]  # shifted window block
    assert not hasattr(block, 'attn') and not hasattr(block, 'norm1')
    assert not any('relative_position' in k for k in block.state_dict())
    seen = {}
    block.register_forward_hook(lambda m, inp, out: seen.update(x=inp[0], y=out))
    with torch.no_grad():
        model(_images())
        mid = 2 * seen['x']
        expected = mid + block.ffn.layers(block.norm2(mid))
    torch.testing.assert_close(seen['y'], expected, rtol=0, atol=0)


def test_intermediate_lam_formula():
    lam = 0.3
    model = _tiny(diluted_layers=[2], init_lam=lam).eval()
    block = model.stages[1].blocks[0]
    seen = {}
    block.register_forward_hook(lambda m, inp, out: seen.update(x=inp[0], y=out))
    with torch.no_grad():
        model(_images())
        x = seen['x']
        mid = (2 - lam) * x + lam * block.attn(block.norm1(x), (4, 4))
        expected = mid + block.ffn.layers(block.norm2(mid))
    torch.testing.assert_close(seen['y'], expected)


def test_pruned_param_count_swin_tiny():
    base = NoseSwinTransformer('tiny')
    per_block = [attention_params(b) for b in base.dilutable_blocks()]
    assert per_block == [SWIN_T_ATTN_PARAMS[s] for s, d in enumerate((2, 2, 6, 2))
                         for _ in range(d)]
    removed = [1, 2, 5, 10]
    pruned = NoseSwinTransformer('tiny', removed_layers=removed)
    assert count(base) - count(pruned) == sum(per_block[i] for i in removed)


@pytest.mark.parametrize('ckpt_removed, model_removed, message',
                         mismatch_cases('norm1/attn', only_in_model=5))
def test_pruned_mismatch_is_an_error(tmp_path, ckpt_removed, model_removed, message):
    assert_mismatch_refused(lambda **kw: _tiny(**kw), ckpt_removed, model_removed, message,
                            tmp_path)


def test_prune_keys_and_messages():
    state = {f'backbone.{k}': v for k, v in _tiny().state_dict().items()}
    keys = attention_keys(state, 3)
    assert keys and all(k.startswith(('backbone.stages.1.blocks.1.norm1.',
                                      'backbone.stages.1.blocks.1.attn.')) for k in keys)
    assert 'backbone.stages.1.blocks.1.attn.w_msa.relative_position_bias_table' in keys
    pruned = prune_state_dict(state, [3])
    with pytest.raises(ValueError, match=r'layer 3 has no "backbone.stages.1.blocks.1.norm1.\*" '
                       r'/ "...attn.\*" keys \(layers 0..5 exist\): it is already pruned'):
        prune_state_dict(pruned, [3])
    with pytest.raises(ValueError, match=r'no backbone block keys under prefix \'model.\' \(looked '
                       r'for "model.layers.<i>.", "model.stages.<s>.blocks.<j>."\): is the prefix '
                       r"'model.' right\?"):
        prune_state_dict(state, [3], prefix='model.')


def test_segmentor_registry():
    assert SEG_MODELS.get('NoseSwinTransformer') is NoseSwinTransformer
    assert MODELS.get('NoseSwinTransformer') is NoseSwinTransformer


def _perturbed_timm_swin():
    timm = pytest.importorskip('timm')
    torch.manual_seed(0)
    model = timm.create_model('swin_tiny_patch4_window7_224', pretrained=False).eval()
    return perturb(model, table_std=0.5)  # incl. patch-merging norms: channel order matters


def _swin_classifier():
    return MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='NoseSwinTransformer', arch='tiny', drop_path_rate=0.0),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=1000, in_channels=768))).eval()


def _official_layout(timm_state):
    """timm >= 0.9 keys -> the official release's (merging at the end of a stage...)."""
    out = {}
    for key, value in timm_state.items():
        if '.downsample.' in key:
            stage = int(key.split('.')[1])
            key = key.replace(f'layers.{stage}.', f'layers.{stage - 1}.', 1)
        out[key.replace('head.fc.', 'head.')] = value
    out['layers.0.blocks.1.attn_mask'] = torch.zeros(64, 49, 49)
    out['layers.0.blocks.0.attn.relative_position_index'] = torch.zeros(49, 49).long()
    return out


def test_equals_timm_swin_tiny():
    """Converted timm weights: pooled feature and logits equal timm's to 1e-5."""
    reference = _perturbed_timm_swin()
    timm_state = reference.state_dict()
    converted = convert_deit_checkpoint(timm_state)
    assert converted['meta'] == {'converted_from': 'timm/swin',
                                 'backbone': 'NoseSwinTransformer'}
    ours = _swin_classifier()
    ours.load_state_dict(converted['state_dict'], strict=True)
    x = _images(2, 224)
    with torch.no_grad():
        expected = reference.forward_head(reference.forward_features(x), pre_logits=True)
        torch.testing.assert_close(ours.extract_feat(x)[0], expected, rtol=0, atol=1e-5)
        torch.testing.assert_close(ours.head(ours.extract_feat(x)), reference(x), rtol=0,
                                   atol=1e-5)
    # the official layout converts to the same tensors
    official = convert_deit_checkpoint({'model': _official_layout(timm_state)})['state_dict']
    assert list(official) == list(converted['state_dict'])
    assert all(torch.equal(official[k], converted['state_dict'][k]) for k in official)


@pytest.mark.parametrize('state, message', [
    ({'backbone.layers.0.ln1.weight': torch.ones(2)},
     r'unrecognised checkpoint layout \(first keys: \[\'backbone.layers.0.ln1.weight\'\]\)'),
    ({'layers.0.blocks.0.norm1.weight': torch.ones(2), 'layers.0.blocks.0.attn.v.weight':
      torch.ones(2)}, r"keys with no mmpretrain Swin counterpart: \['layers.0.blocks.0.attn.v"),
])
def test_conversion_refusals(state, message):
    with pytest.raises(ValueError, match=message):
        convert_deit_checkpoint(state)


def test_detection():
    assert detect_source_family({'blocks.0.norm1.weight': 0, 'cls_token': 0,
                                 'pos_embed': torch.zeros(1, 197, 8)}).name == 'vit'
    assert detect_source_family({'blocks.0.norm1.weight': 0, 'cls_token': 0,
                                 'pos_embed': torch.zeros(1, 196, 8)}).name == 'deit3'
    assert detect_source_family({'blocks.0.norm1.weight': 0}).name == 'vit'  # no class token
    assert detect_source_family({'layers.1.blocks.0.norm1.weight': 0}).name == 'swin'


def test_dilution_hook_runner_and_prune(tiny_cifar100, tmp_path):
    """DilutionHook drives NoseSwinTransformer in a 3-iteration Runner; lam = 0 prunes."""
    model, pruned, lams, ckpt = dilute_train_prune('tiny-swin_cifar100.py', tiny_cifar100,
                                                   tmp_path / 'work', diluted=[1, 2, 5])
    assert lams == [1.0, 0.5, 0.0]
    assert find_dilutable_modules(model) == [model.backbone]
    assert ckpt['meta']['removed_layers'] == [1, 2, 5]
    assert not any(k.startswith(('backbone.stages.0.blocks.1.attn', 'backbone.stages.1.blocks.0.'
                                 'norm1', 'backbone.stages.2.blocks.1.attn'))
                   for k in ckpt['state_dict'])
    x = _images(3)
    with torch.no_grad():
        torch.testing.assert_close(model.extract_feat(x)[0], pruned.extract_feat(x)[0],
                                   rtol=0, atol=0)


def test_convert_tool_tiny_timm_swin(tmp_path, capsys):
    """tools/convert/deit_to_mmpretrain.py on a tiny timm Swin (2x2 windows, 3 stages)."""
    timm = pytest.importorskip('timm')
    from mmengine.config import Config

    from tests.test_tools.test_prune_convert import _tool
    from tests.utils import TEST_CONFIGS
    tool = _tool('convert/deit_to_mmpretrain.py')
    torch.manual_seed(0)
    reference = timm.models.swin_transformer.SwinTransformer(
        img_size=32, patch_size=4, window_size=2, embed_dim=16, depths=(2, 2, 2),
        num_heads=(1, 2, 4), num_classes=100).eval()
    perturb(reference)
    src, dst = tmp_path / 'swin.pth', tmp_path / 'mm.pth'
    torch.save({'model': reference.state_dict()}, src)
    assert tool.main([str(src), str(dst)]) == 0
    assert capsys.readouterr().out.strip().endswith(
        '(timm/swin: build backbone type NoseSwinTransformer)')
    model = MODELS.build(Config.fromfile(f'{TEST_CONFIGS}/tiny-swin_cifar100.py').model).eval()
    model.load_state_dict(torch.load(dst, weights_only=False)['state_dict'], strict=True)
    x = _images()
    with torch.no_grad():
        torch.testing.assert_close(model(x, mode='tensor'), reference(x), rtol=0, atol=1e-5)
    # an unknown layout is refused, nothing written
    torch.save({'state_dict': model.state_dict()}, src)
    assert tool.main([str(src), str(tmp_path / 'no.pth')]) == 2
    assert not (tmp_path / 'no.pth').exists()
    err = capsys.readouterr().err
    assert err.startswith('nose_mm: error: unrecognised checkpoint layout (first keys: '
                          "['backbone.patch_embed.projection.weight', ")
    assert len(err.strip().splitlines()) == 1


def test_with_cp_same_forward_and_grads():
    """Activation checkpointing (with_cp) computes the same diluted blocks and gradients."""
    outs, grads = [], []
    for with_cp in (False, True):
        model = _tiny(diluted_layers=[1, 2], removed_layers=[4], init_lam=0.4,
                      with_cp=with_cp).train()
        out = model(_images())[0]
        out.sum().backward()
        outs.append(out.detach())
        grads.append(model.stages[1].blocks[0].attn.w_msa.qkv.weight.grad)
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)
    torch.testing.assert_close(grads[0], grads[1])
