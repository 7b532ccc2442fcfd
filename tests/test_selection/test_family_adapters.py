"""Selection adapters of Swin and DeiT-III: real mmpretrain classifiers as the oracle."""
import pytest
import torch

from nose_mm.analysis.frequency import frequency_analysis
from nose_mm.selection import FamilyAdapter, build_adapter, layer_statistics, run_selection

from .conftest import FAMILIES, build_classifier, make_batches

pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.mark.parametrize('backbone_type', list(FAMILIES))
@pytest.mark.parametrize('features', ['head_input', 'logits'])
def test_adapter_reproduces_the_model(backbone_type, features):
    model = build_classifier(backbone_type)
    adapter = build_adapter(model, features=features)
    assert type(adapter) is FamilyAdapter
    assert adapter.family.name == ('swin' if 'Swin' in backbone_type else 'deit3')
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


@pytest.mark.parametrize('skip_mode', ['identity', 'compensated'])
@pytest.mark.parametrize('backbone_type, skip', [
    ('NoseSwinTransformer', [1]),  # the last block of stage 0, before patch merging
    ('NoseSwinTransformer', [2, 5]),  # a stage's first block, and the very last block
    ('NoseDeiT3', [0, 4]),
])
def test_skipping_equals_lam_zero(backbone_type, skip, skip_mode):
    # identity skips are the block diluted at lam = 0 without compensation (x stays x),
    # compensated skips (the reference's shrink model) with it (x becomes 2x)
    model = build_classifier(backbone_type, diluted_layers=skip,
                             compensate=skip_mode == 'compensated')
    adapter = build_adapter(model, skip_mode=skip_mode)
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
