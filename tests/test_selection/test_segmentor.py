"""Selection on mmseg segmentors: real UperNet models through the registry as the oracle."""
import numpy as np
import pytest
import torch

from nose_mm.selection import (CachedEvaluator, NaiveEvaluator, build_adapter, greedy_select,
                               layer_statistics, run_selection)
from nose_mm.selection.entropy import FeatureSetStats, gaussian_entropy
from nose_mm.selection.loading import same_size_groups
from nose_mm.selection.segmentor import SegmentorAdapter

from .conftest import build_tiny_classifier

pytestmark = pytest.mark.usefixtures('one_thread')

VIT = dict(type='NoseVisionTransformer', img_size=32, patch_size=4, out_type='featmap',
           arch=dict(embed_dims=16, num_layers=5, num_heads=2, feedforward_channels=32),
           out_indices=(1, 3, 4), final_norm=True)
# the authors' ADE20k backbone (BEiT block, fixed 8 x 8 grid), out_indices as the ViT's
MAE = dict(type='NoseMAE', img_size=32, patch_size=4, embed_dims=16, num_layers=5,
           num_heads=2, mlp_ratio=2, init_values=1.0, out_indices=[1, 3, 4], final_norm=True)
# 3 stages of 2 blocks (layers 0-5): 8x8, 4x4, 2x2 tokens, one output per stage
SWIN = dict(type='NoseSwinTransformer', arch=dict(embed_dims=8, depths=[2, 2, 2],
                                                  num_heads=[1, 2, 4]),
            img_size=32, patch_size=4, window_size=2, out_indices=(0, 1, 2))


def build_segmentor(backbone, neck=True, seed=0):
    """A tiny UperNet (MultiLevelNeck for ViT), randomly initialised, in eval mode."""
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    import nose_mm  # noqa: F401
    init_default_scope('mmseg')
    vit = backbone['type'] in ('NoseVisionTransformer', 'NoseMAE')
    channels = [16] * 3 if vit else [8, 16, 32]
    cfg = dict(type='EncoderDecoder', backbone=backbone,
               decode_head=dict(type='UPerHead', in_channels=channels, in_index=[0, 1, 2],
                                pool_scales=(1, 2), channels=8, num_classes=5,
                                norm_cfg=dict(type='BN'), align_corners=False))
    if vit and neck:
        cfg['neck'] = dict(type='MultiLevelNeck', in_channels=channels, out_channels=16,
                           scales=[2, 1, 0.5])
    torch.manual_seed(seed)
    model = MODELS.build(cfg)
    for m in model.modules():  # running BN statistics off their init, so the head varies
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 2)
    return model.eval()


def _images(n=3, seed=0):
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def _rows(x):
    return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])


@pytest.mark.parametrize('backbone', [VIT, SWIN, MAE], ids=['vit', 'swin', 'mae'])
def test_adapter_reproduces_the_segmentor(backbone):
    model = build_segmentor(backbone)
    x = _images()
    with torch.no_grad():
        outs = model.backbone(x)
        logits = model.decode_head(model.extract_feat(x))
        seg = build_adapter(model, features='seg_logits')
        dense = build_adapter(model, features='dense')
        assert isinstance(seg, SegmentorAdapter) and seg.family.name == (
            {'NoseVisionTransformer': 'vit', 'NoseSwinTransformer': 'swin',
             'NoseMAE': 'mae'}[backbone['type']])
        assert torch.allclose(seg.forward(x), _rows(logits), atol=1e-6)
        got = dense.forward(x)
        assert len(got) == len(outs)
        for a, b in zip(got, outs):
            assert torch.allclose(a, _rows(b), atol=1e-6)
    # pixels as samples: (images x h x w) rows of K classes
    assert seg.forward(x).shape == (3 * logits.shape[2] * logits.shape[3], 5)


@pytest.mark.parametrize('backbone', [VIT, SWIN, MAE], ids=['vit', 'swin', 'mae'])
@pytest.mark.parametrize('features', ['seg_logits', 'dense'])
def test_prefix_cache_matches_full_passes(backbone, features):
    """The cached evaluator (block inputs carrying the outputs so far) equals full passes."""
    adapter = build_adapter(build_segmentor(dict(backbone, removed_layers=[2])),
                            features=features)
    assert adapter.candidate_layers == [0, 1, 3, 4] + ([5] if backbone is SWIN else [])
    batches = [_images(2, 1), _images(2, 2)]
    cached = CachedEvaluator(adapter, batches)
    naive = NaiveEvaluator(adapter, batches)
    a = greedy_select(cached, adapter.candidate_layers, 3)
    b = greedy_select(naive, adapter.candidate_layers, 3)
    assert a.selection == b.selection
    np.testing.assert_allclose(a.table, b.table, rtol=1e-6, atol=1e-6)
    assert cached.blocks_computed < naive.blocks_computed


def test_dense_entropy_sums_the_outputs_and_equals_the_concatenation():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(40, 3)) * [1, 2, 3], rng.normal(size=(40, 2))
    stats = FeatureSetStats().update((a[:25], b[:25])).update((a[25:], b[25:]))
    concat = gaussian_entropy(np.concatenate([a, b], axis=1))
    assert stats.entropy() == pytest.approx(concat, rel=1e-12)
    assert FeatureSetStats().update(a).entropy() == pytest.approx(gaussian_entropy(a))
    with pytest.raises(ValueError, match='feature parts changed'):
        FeatureSetStats().update((a, b)).update(a)


def test_run_selection_records_the_task_and_the_baselines_run():
    model = build_segmentor(VIT)
    batches = [_images(2, 3)]
    record = run_selection(model, None, 2, batches=batches, features='dense', progress=False)
    assert record['task'] == 'segmentation' and record['features'] == 'dense'
    assert len(record['selection']) == 2 and record['total_layers'] == 5
    stats = layer_statistics(build_adapter(model, features='dense'), batches)
    assert sorted(stats['attn_entropy']) == [0, 1, 2, 3, 4]
    cosine = run_selection(model, None, 2, batches=batches, features='seg_logits',
                           method='cosine', progress=False)
    assert cosine['method'] == 'cosine' and cosine['task'] == 'segmentation'
    cls = run_selection(build_tiny_classifier(), None, 1,
                        batches=[torch.randn(3, 3, 32, 32)], progress=False)
    assert cls['task'] == 'classification'


def test_wrong_features_and_models_are_refused():
    model = build_segmentor(SWIN)
    with pytest.raises(ValueError, match="selects on features 'seg_logits' or 'dense'"):
        build_adapter(model)  # the classifier default, head_input
    with pytest.raises(ValueError, match="'dense' are a segmentation model's"):
        build_adapter(build_tiny_classifier(), features='dense')
    with pytest.raises(ValueError, match=r'must include its last layer \(5\)'):
        build_adapter(build_segmentor(dict(SWIN, out_indices=(0, 1)), neck=False),
                      features='dense')


def test_calibration_batches_of_several_image_sizes_are_split():
    inputs = [torch.zeros(3, 8, 8), torch.zeros(3, 8, 8), torch.zeros(3, 8, 6),
              torch.zeros(3, 8, 8)]
    data = dict(inputs=inputs, data_samples=['a', 'b', 'c', 'd'])
    groups = same_size_groups(data)
    assert [g['data_samples'] for g in groups] == [['a', 'b'], ['c'], ['d']]
    assert same_size_groups(dict(inputs=inputs[:2], data_samples=['a', 'b'])) == \
        [dict(inputs=inputs[:2], data_samples=['a', 'b'])]


def test_streamed_calibration_batches_are_split_as_the_kept_ones():
    """calibration_images='stream' (the reference preset) reads a segmentor's batches of
    several image sizes as collect_batches does, one batch per size, not one failing stack."""
    from mmseg.registry import MODELS

    from nose_mm.selection.loading import StreamedBatches, collect_batches
    model = build_segmentor(VIT)
    model.data_preprocessor = MODELS.build(dict(type='SegDataPreProcessor', mean=[1., 2., 3.],
                                                std=[2., 2., 2.], bgr_to_rgb=True))
    gen = torch.Generator().manual_seed(0)
    loader = [dict(inputs=[torch.randint(0, 256, (3, *hw), generator=gen, dtype=torch.uint8)
                           for hw in ((32, 32), (32, 32), (32, 24), (32, 32))])]
    kept = collect_batches(model, loader)
    assert [tuple(b.shape) for b in kept] == [(2, 3, 32, 32), (1, 3, 32, 24), (1, 3, 32, 32)]
    streamed = list(StreamedBatches(model, loader))
    assert len(streamed) == 3 and all(torch.equal(a, b) for a, b in zip(streamed, kept))


def test_a_family_without_dense_outputs_is_refused_with_its_name(monkeypatch):
    from nose_mm.models.backbones.nose_swin import SwinFamily
    from nose_mm.models.family import BackboneFamily
    monkeypatch.setattr(SwinFamily, 'output_blocks', BackboneFamily.output_blocks)
    with pytest.raises(ValueError, match="family 'swin' does not declare its dense outputs"):
        build_adapter(build_segmentor(SWIN), features='dense')


def test_mae_family_refuses_inputs_other_than_its_img_size():
    """NoseMAE's position embedding and bias tables are fixed to img_size: other calibration
    image sizes are one clear error (mmseg's forward fails on them too), not a traceback."""
    adapter = build_adapter(build_segmentor(MAE), features='dense')
    with torch.no_grad():
        with pytest.raises(ValueError, match=r'runs on img_size \(32, 32\) inputs only .* '
                                             r'got 32 x 40'):
            adapter.forward(torch.zeros(1, 3, 32, 40))


def test_streamed_calibration_batches_of_several_sizes_are_split_too():
    """calibration_images='stream' splits a segmentor's batches by image size as the kept
    batches are (mmseg's preprocessor refuses a test batch of several sizes)."""
    from mmseg.models import SegDataPreProcessor

    from nose_mm.selection.loading import StreamedBatches, collect_batches
    model = build_segmentor(VIT)
    model.data_preprocessor = SegDataPreProcessor()
    g = torch.Generator().manual_seed(0)
    loader = [dict(inputs=[torch.randint(0, 256, (3, *s), generator=g, dtype=torch.uint8)
                           for s in ((32, 32), (32, 32), (32, 40))])]
    kept, streamed = collect_batches(model, loader), list(StreamedBatches(model, loader))
    assert [tuple(b.shape) for b in streamed] == [(2, 3, 32, 32), (1, 3, 32, 40)]
    assert all(torch.equal(a, b) for a, b in zip(streamed, kept)) and len(kept) == 2
