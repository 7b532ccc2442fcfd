"""Selection adapters of Swin and DeiT-III: real mmpretrain classifiers as the oracle."""
import numpy as np
import pytest
import torch

from nose_mm.analysis.frequency import frequency_analysis
from nose_mm.selection import (CachedEvaluator, MMPretrainDeiT3Adapter, MMPretrainSwinAdapter,
                               NaiveEvaluator, build_adapter, greedy_select, layer_statistics,
                               run_selection, selection_cost)

from .conftest import make_batches

pytestmark = pytest.mark.usefixtures('one_thread')

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


@pytest.fixture(params=['NoseSwinTransformer', 'NoseDeiT3'])
def family_model(request):
    return build_classifier(request.param)


@pytest.mark.parametrize('backbone_type', list(FAMILIES))
@pytest.mark.parametrize('features', ['head_input', 'logits'])
def test_adapter_reproduces_the_model(backbone_type, features):
    model = build_classifier(backbone_type)
    adapter = build_adapter(model, features=features)
    expected_cls = MMPretrainSwinAdapter if 'Swin' in backbone_type else MMPretrainDeiT3Adapter
    assert type(adapter) is expected_cls
    num_layers = 6 if 'Swin' in backbone_type else 5
    assert adapter.num_layers == num_layers and adapter.candidate_layers == list(range(num_layers))
    x = make_batches(4, 4)[0]
    with torch.no_grad():
        expected = (model.extract_feat(x)[-1] if features == 'head_input'
                    else model(x, mode='tensor'))
        assert torch.equal(adapter.forward(x), expected)


def test_swin_adapter_with_abs_pos_embed_and_padding():
    model = build_classifier('NoseSwinTransformer', use_abs_pos_embed=True,
                             pad_small_map=True, img_size=40)
    x = torch.randn(2, 3, 40, 40, generator=torch.Generator().manual_seed(3))  # 10x10 -> 5x5
    adapter = build_adapter(model)
    with torch.no_grad():
        assert torch.equal(adapter.forward(x), model.extract_feat(x)[-1])


@pytest.mark.parametrize('backbone_type, skip', [
    ('NoseSwinTransformer', [1]),  # the last block of stage 0, before patch merging
    ('NoseSwinTransformer', [2, 5]),  # a stage's first block, and the very last block
    ('NoseDeiT3', [0, 4]),
])
def test_skipping_equals_lam_zero_without_compensation(backbone_type, skip):
    model = build_classifier(backbone_type, diluted_layers=skip, compensate=False)
    adapter = build_adapter(model)
    x = make_batches(4, 4)[0]
    with torch.no_grad():
        full = adapter.forward(x)
        assert torch.equal(full, model.extract_feat(x)[-1])  # lam = 1: the full model
        model.backbone.set_dilution_lam(0.0)
        # the adapter measures the plain blocks whatever the dilution state
        assert torch.equal(adapter.forward(x), full)
        assert torch.equal(adapter.forward(x, skip=skip), model.extract_feat(x)[-1])
        assert not torch.allclose(adapter.forward(x, skip=skip), full)


def test_swin_states_carry_the_stage_resolution():
    model = build_classifier('NoseSwinTransformer')
    adapter = build_adapter(model)
    x = make_batches(2, 2)[0]
    with torch.no_grad():
        state, _ = adapter.embed(x)
        shapes = []
        for i in range(adapter.num_layers):
            shapes.append((tuple(state[0].shape), state[1]))
            state = adapter.block(i, state)
    # block inputs: the input of a stage's first block is already merged
    assert shapes == [((2, 64, 16), (8, 8))] * 2 + [((2, 16, 32), (4, 4))] * 2 + \
        [((2, 4, 64), (2, 2))] * 2
    stats = layer_statistics(adapter, make_batches(4, 2))
    assert stats['num_tokens'] == {0: 256, 1: 256, 2: 64, 3: 64, 4: 16, 5: 16}
    freq = frequency_analysis(adapter, make_batches(4, 2))
    assert [len(r['profile']) for r in freq] == [10] * 6
    assert all(abs(r['low'] + r['mid'] + r['high'] - 1) < 1e-9 for r in freq)


def test_adapter_refuses_a_multi_stage_head_input():
    model = build_classifier('SwinTransformer', out_indices=(1, 2))
    with pytest.raises(ValueError, match=r'the head must read only the last stage \(2\); '
                       r'backbone out_indices are \[1, 2\]'):
        build_adapter(model)


@pytest.mark.parametrize('backbone_type, removed', [('NoseSwinTransformer', [1, 2]),
                                                    ('NoseDeiT3', [3])])
def test_removed_layers_run_their_own_forward(backbone_type, removed):
    model = build_classifier(backbone_type, removed_layers=removed)
    adapter = build_adapter(model)
    assert adapter.removed_layers == removed
    assert adapter.candidate_layers == [i for i in range(adapter.num_layers) if i not in removed]
    x = make_batches(4, 4)[0]
    with torch.no_grad():
        assert torch.equal(adapter.forward(x), model.extract_feat(x)[-1])
        state, _ = adapter.embed(x)
    with pytest.raises(ValueError, match=f'layer {removed[0]} is removed; its attention '
                       'cannot be skipped'):
        adapter.block(removed[0], state, skip_attn=True)
    with pytest.raises(ValueError, match=f'layer {removed[0]} has no attention'):
        adapter.attention_branch(removed[0], state)
    record = run_selection(model, None, 2, batches=make_batches(8, 4), progress=False)
    assert record['removed_layers'] == removed and not set(record['selection']) & set(removed)


@pytest.mark.parametrize('criterion, keep_best', [('abs', True), ('abs', False),
                                                  ('signed', True)])
def test_cached_equals_naive_across_stages(family_model, criterion, keep_best):
    batches = make_batches(12, 4)
    adapter = build_adapter(family_model)
    naive = NaiveEvaluator(adapter, batches)
    cached = CachedEvaluator(adapter, batches, criterion=criterion, keep_best=keep_best)
    pairs = []

    def both(selected, candidate):
        a, b = cached(selected, candidate), naive(selected, candidate)
        pairs.append((a, b))
        return a

    k = 4
    result = greedy_select(both, adapter.candidate_layers, k, criterion=criterion)
    L = adapter.num_layers
    assert len(pairs) == sum(L - s for s in range(k))
    np.testing.assert_allclose([p[0] for p in pairs], [p[1] for p in pairs], rtol=0, atol=1e-9)
    assert cached.full_entropy() == pytest.approx(naive.full_entropy(), abs=1e-12)
    assert cached.forward_equivalents == pytest.approx(
        selection_cost(L, adapter.candidate_layers, result.selection, 'cached', keep_best))
    assert cached.forward_equivalents < naive.forward_equivalents


@pytest.mark.parametrize('method', ['nose', 'random', 'first', 'attn_entropy', 'cosine'])
def test_every_method_on_both_families(family_model, method):
    record = run_selection(family_model, None, 2, method=method, seed=1,
                           batches=make_batches(8, 4), progress=False)
    candidates = build_adapter(family_model).candidate_layers
    assert record['method'] == method and record['candidates'] == candidates
    assert len(set(record['selection'])) == 2 and set(record['selection']) <= set(candidates)
    if method == 'first':
        assert record['selection'] == [0, 1]
    if method in ('attn_entropy', 'cosine'):
        scores = record['scores']['values']
        assert set(scores) == {str(c) for c in candidates}
        order = sorted(candidates, key=lambda c: scores[str(c)],
                       reverse=method == 'cosine')
        assert record['selection'] == order[:2]
