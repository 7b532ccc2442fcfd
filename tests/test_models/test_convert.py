"""Converted timm / DeiT and reference-code checkpoints give the same outputs."""
import pytest
import torch
from mmpretrain.registry import MODELS

import nose_mm  # noqa: F401
from nose_mm.models.convert import (convert_deit_checkpoint, convert_lambda_vit, convert_timm_vit,
                                    unwrap_state_dict)
from tests.utils import reference_pruned_forward

timm = pytest.importorskip('timm')

TIMM_TO_ARCH = {'deit_tiny_patch16_224': ('deit-tiny', 192),
                'deit_small_patch16_224': ('deit-small', 384)}


# Tiny models on a shared 2-core machine: one intra-op thread is much faster.
pytestmark = pytest.mark.usefixtures('one_thread')


def _classifier(arch, dims, **backbone):
    model = MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='NoseVisionTransformer', arch=arch, **backbone),
        neck=None,
        head=dict(type='VisionTransformerClsHead', num_classes=1000, in_channels=dims)))
    model.eval()
    return model


def _timm(name):
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False)
    return model.eval()


@pytest.mark.parametrize('name, n_images', [('deit_tiny_patch16_224', 2),
                                            ('deit_small_patch16_224', 1)])
def test_deit_conversion_matches_timm(name, n_images):
    reference = _timm(name)
    converted = convert_deit_checkpoint({'model': reference.state_dict()})
    arch, dims = TIMM_TO_ARCH[name]
    model = _classifier(arch, dims, diluted_layers=[0, 2])  # lam = 1: a plain DeiT
    model.load_state_dict(converted['state_dict'], strict=True)
    x = torch.randn(n_images, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        features = reference.forward_features(x)
        cls_ref, logits_ref = features[:, 0], reference.forward_head(features)
        cls = model.backbone(x)[-1]
        logits = model(x, mode='tensor')
    assert (cls - cls_ref).abs().max().item() <= 1e-5
    assert (logits - logits_ref).abs().max().item() <= 1e-5


def test_lambda_vit_conversion_matches_reference_pruned_forward():
    """Reference pruned blocks: no norm1/attn, x = 2x; x = x + mlp(norm2(x))."""
    reference = _timm('deit_tiny_patch16_224')
    removed = [0, 2, 4]
    state = {k: v for k, v in reference.state_dict().items()
             if not any(k.startswith((f'blocks.{i}.norm1.', f'blocks.{i}.attn.'))
                        for i in removed)}
    converted = convert_lambda_vit({'model': state, 'epoch': 399})
    assert converted['meta']['removed_layers'] == removed
    assert converted['meta']['dilution_compensate'] is True
    model = _classifier('deit-tiny', 192, removed_layers=removed)
    model.load_state_dict(converted['state_dict'], strict=True)
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits_ref = reference_pruned_forward(reference, x, removed)
        logits = model(x, mode='tensor')
    assert (logits - logits_ref).abs().max().item() <= 1e-5


def test_conversion_errors():
    state = _timm('deit_tiny_patch16_224').state_dict()
    with pytest.raises(ValueError, match=r"no mmpretrain ViT counterpart: \['dist_token'"):
        convert_timm_vit({'dist_token': torch.zeros(1), **state})
    pruned = {k: v for k, v in state.items() if not k.startswith(('blocks.3.norm1',
                                                                 'blocks.3.attn'))}
    with pytest.raises(ValueError, match=r'blocks \[3\] have no attention.*lambda_vit'):
        convert_deit_checkpoint(pruned)
    half = {k: v for k, v in state.items() if not k.startswith('blocks.3.attn.proj')}
    with pytest.raises(ValueError, match='block 3 has only part of its attention'):
        convert_lambda_vit(half)
    with pytest.raises(ValueError, match='no state dict of tensors'):
        unwrap_state_dict({'epoch': 3})
    unwrapped = unwrap_state_dict({'state_dict': {'module.cls_token': torch.zeros(1)}})
    assert list(unwrapped) == ['cls_token']
