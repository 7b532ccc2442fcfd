"""Tiny mmpretrain classifiers built through the registry, and calibration batches."""
import pytest
import torch


def build_tiny_classifier(backbone_type='VisionTransformer', num_layers=5, seed=0,
                          **backbone_kwargs):
    """A 32-dim, ``num_layers``-block ViT classifier on 32 px images (patch 8, 17 tokens)."""
    from mmengine.registry import MODELS, init_default_scope

    import nose_mm  # noqa: F401  (registers NoseVisionTransformer)
    init_default_scope('mmpretrain')
    torch.manual_seed(seed)
    model = MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type=backbone_type, img_size=32, patch_size=8,
                      arch=dict(embed_dims=32, num_layers=num_layers, num_heads=2,
                                feedforward_channels=64), **backbone_kwargs),
        head=dict(type='VisionTransformerClsHead', num_classes=10, in_channels=32,
                  init_cfg=dict(type='Normal', layer='Linear', std=0.1)),
    ))
    # trunc-normal pos_embed etc.; random (non-zero) head so logits vary
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel('WARNING')
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)
    return model.eval()


# 3 Swin stages of 2 blocks (layers 0-5) on 32 px: 8x8, 4x4, 2x2 tokens in 2x2 windows
SWIN = dict(arch=dict(embed_dims=16, depths=[2, 2, 2], num_heads=[1, 2, 4]), img_size=32,
            patch_size=4, window_size=2, out_indices=(2, ))
DEIT3 = dict(arch=dict(embed_dims=32, num_layers=5, num_heads=2, feedforward_channels=64),
             img_size=32, patch_size=8)
FAMILIES = {
    'NoseSwinTransformer': (SWIN, 'swin'), 'SwinTransformer': (SWIN, 'swin'),
    'NoseDeiT3': (DEIT3, 'deit3'), 'DeiT3': (DEIT3, 'deit3')
}


def build_classifier(backbone_type, seed=0, **kwargs):
    """A tiny classifier as mmpretrain's configs build it, off its init (norms, layer scales)."""
    from mmengine.registry import MODELS, init_default_scope

    import nose_mm  # noqa: F401  (registers the backbones)
    init_default_scope('mmpretrain')
    arch, family = FAMILIES[backbone_type]
    backbone = dict(dict(arch, type=backbone_type), **kwargs)
    if family == 'swin':
        cfg = dict(type='ImageClassifier', backbone=backbone,
                   neck=dict(type='GlobalAveragePooling'),
                   head=dict(type='LinearClsHead', num_classes=10, in_channels=64))
    else:
        cfg = dict(type='ImageClassifier', backbone=backbone,
                   head=dict(type='VisionTransformerClsHead', num_classes=10, in_channels=32))
    torch.manual_seed(seed)
    model = MODELS.build(cfg)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():  # move norms, layer scales and bias tables off their init
        for name, param in model.named_parameters():
            if 'norm' in name or '.ln' in name or 'gamma' in name or 'table' in name:
                param.add_(0.3 * torch.randn(param.shape, generator=g))
            elif name.startswith('head'):
                param.normal_(0, 0.1, generator=g)
    return model.eval()


def make_batches(num_samples=24, batch_size=8, seed=0):
    images = torch.randn(num_samples, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
    return list(images.split(batch_size))


@pytest.fixture
def tiny_model():
    return build_tiny_classifier()


@pytest.fixture(params=['NoseSwinTransformer', 'NoseDeiT3'])
def family_model(request):
    return build_classifier(request.param)


@pytest.fixture
def batches():
    return make_batches()
