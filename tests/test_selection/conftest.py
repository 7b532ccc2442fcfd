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


def make_batches(num_samples=24, batch_size=8, seed=0):
    images = torch.randn(num_samples, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
    return list(images.split(batch_size))


@pytest.fixture
def tiny_model():
    return build_tiny_classifier()


@pytest.fixture
def batches():
    return make_batches()
