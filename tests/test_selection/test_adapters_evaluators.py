"""The ViT adapter, cached vs naive TE evaluation and run_selection on real mmpretrain models."""
import numpy as np
import pytest
import torch

from nose_mm.selection import (CachedEvaluator, FamilyAdapter, NaiveEvaluator,
                               build_adapter, gaussian_entropy, greedy_select, layer_statistics,
                               run_selection, selection_cost)
from nose_mm.selection.adapters import applies_skip_mode

from .conftest import build_classifier, build_tiny_classifier, make_batches


@pytest.mark.parametrize('features', ['head_input', 'logits'])
def test_adapter_reproduces_the_model(tiny_model, batches, features):
    adapter = build_adapter(tiny_model, features=features)
    assert adapter.num_layers == 5 and adapter.candidate_layers == [0, 1, 2, 3, 4]
    x = batches[0]
    with torch.no_grad():
        expected = (tiny_model.extract_feat(x)[-1] if features == 'head_input'
                    else tiny_model(x, mode='tensor'))
        assert torch.equal(adapter.forward(x), expected)
        # a skipped attention is an identity: x stays x
        tokens, _ = adapter.embed(x)
        layer = tiny_model.backbone.layers[2]
        assert torch.equal(adapter.block(2, tokens, skip_attn=True),
                           layer.ffn(layer.ln2(tokens), identity=tokens))


def test_adapter_errors(tiny_model):
    with pytest.raises(ValueError, match="unknown features 'cls'; allowed: head_input, logits"):
        build_adapter(tiny_model, features='cls')
    with pytest.raises(ValueError, match='no selection adapter supports Linear'):
        build_adapter(torch.nn.Linear(2, 2))


def _zero_attention(model, layers):
    for i in layers:
        proj = model.backbone.layers[i].attn.proj
        torch.nn.init.zeros_(proj.weight)
        torch.nn.init.zeros_(proj.bias)


def test_nose_selects_exactly_zero_attention_layers_first(tiny_model, batches):
    _zero_attention(tiny_model, [1, 3])
    record = run_selection(tiny_model, None, 3, batches=batches, progress=False)
    assert record['selection'][:2] == [1, 3]
    te = np.array(record['te_table'], dtype=float)
    assert te[0, 1] == pytest.approx(0.0, abs=1e-9) and te[0, 3] == pytest.approx(0.0, abs=1e-9)
    assert te[1, 3] == pytest.approx(0.0, abs=1e-9)
    assert np.all(np.abs(np.delete(te[0], [1, 3])) > 1e-6)  # the other layers matter
    assert record['entropies']['per_step'][:2] == pytest.approx(
        [record['entropies']['full']] * 2, abs=1e-9)


@pytest.mark.parametrize('backbone', ['VisionTransformer', 'NoseSwinTransformer', 'NoseDeiT3'])
@pytest.mark.parametrize('criterion, keep_best', [('abs', True), ('abs', False),
                                                  ('signed', True)])
def test_cached_equals_naive_for_every_candidate_at_every_step(backbone, criterion, keep_best):
    # Swin: the prefix cache holds (tokens, hw_shape) states across stage boundaries
    model = build_tiny_classifier() if backbone == 'VisionTransformer' else \
        build_classifier(backbone)
    batches = make_batches(12, 4)
    adapter = build_adapter(model)
    naive = NaiveEvaluator(adapter, batches)
    cached = CachedEvaluator(adapter, batches, criterion=criterion, keep_best=keep_best)
    pairs = []

    def both(selected, candidate):
        a, b = cached(selected, candidate), naive(selected, candidate)
        pairs.append((a, b))
        return a

    k, L, cands = 4, adapter.num_layers, adapter.candidate_layers
    result = greedy_select(both, cands, k, criterion=criterion)
    assert len(pairs) == sum(L - step for step in range(k))
    np.testing.assert_allclose([p[0] for p in pairs], [p[1] for p in pairs], rtol=0, atol=1e-9)
    assert cached.full_entropy() == pytest.approx(naive.full_entropy(), abs=1e-12)
    # the counters match the closed-form cost, and caching saves work
    assert cached.forward_equivalents == pytest.approx(
        selection_cost(L, cands, result.selection, 'cached', keep_best))
    # naive counts its own passes only (the extra full pass of `both` is not re-run)
    assert naive.forward_equivalents == pytest.approx(
        selection_cost(L, cands, result.selection, 'naive'))
    assert cached.forward_equivalents < naive.forward_equivalents


def test_full_entropy_is_over_the_whole_set(tiny_model, batches):
    adapter = build_adapter(tiny_model)
    with torch.no_grad():
        feats = torch.cat([adapter.forward(b) for b in batches])
    assert NaiveEvaluator(adapter, batches).full_entropy() == pytest.approx(
        gaussian_entropy(feats), abs=1e-9)


def test_selection_does_not_depend_on_the_batch_size(tiny_model):
    records = [run_selection(tiny_model, None, 3, batches=make_batches(24, bs), progress=False)
               for bs in (24, 8, 5)]
    assert records[0]['selection'] == records[1]['selection'] == records[2]['selection']
    for r in records[1:]:
        np.testing.assert_allclose(np.array(r['te_table'], float),
                                   np.array(records[0]['te_table'], float), atol=1e-4)


def test_removed_layers_are_not_candidates():
    model = build_tiny_classifier('NoseVisionTransformer', removed_layers=[1],
                                  diluted_layers=[2], init_lam=0.5)
    adapter = build_adapter(model)
    assert adapter.removed_layers == [1] and adapter.candidate_layers == [0, 2, 3, 4]
    batches = make_batches(16, 8)
    with torch.no_grad():
        # the adapter measures the plain pre-trained block, not the current dilution
        x, _ = adapter.embed(batches[0])
        layer = model.backbone.layers[2]
        plain = x + layer.attn(layer.ln1(x))
        assert torch.equal(adapter.block(2, x), layer.ffn(layer.ln2(plain), identity=plain))
        # the removed layer runs through its own (pruned) forward
        assert torch.equal(adapter.block(1, x), model.backbone.layers[1](x))
    with pytest.raises(ValueError, match='layer 1 is removed'):
        adapter.block(1, x, skip_attn=True)
    record = run_selection(model, None, 4, batches=batches, progress=False)
    assert sorted(record['selection']) == [0, 2, 3, 4] and record['removed_layers'] == [1]
    assert record['te_table'][0][0] is not None and len(record['te_table'][0]) == 4
    with pytest.raises(ValueError, match=r'cannot select 5 layers from 4 candidate layers'):
        run_selection(model, None, 5, batches=batches, progress=False)
    stats = layer_statistics(adapter, batches)
    assert sorted(stats['attn_entropy']) == [0, 2, 3, 4]


@pytest.mark.parametrize('method', ['random', 'first', 'attn_entropy', 'cosine'])
def test_baseline_methods_through_run_selection(tiny_model, batches, method):
    if method == 'cosine':
        _zero_attention(tiny_model, [4])  # output == input: cosine 1, dropped first
    record = run_selection(tiny_model, None, 2, method=method, seed=1, batches=batches,
                           progress=False)
    assert record['method'] == method and len(record['selection']) == 2
    assert record['te_table'] is None and record['criterion'] is None
    if method == 'first':
        assert record['selection'] == [0, 1]
    if method == 'cosine':
        assert record['selection'][0] == 4
        assert record['scores']['values']['4'] == pytest.approx(1.0)
    if method in ('attn_entropy', 'cosine'):
        assert set(record['scores']['values']) == {'0', '1', '2', '3', '4'}


def test_run_selection_input_errors(tiny_model, batches):
    with pytest.raises(ValueError, match="unknown method 'best'"):
        run_selection(tiny_model, None, 2, method='best', batches=batches)
    with pytest.raises(ValueError, match='cannot select 6 layers from 5 candidate layers'):
        run_selection(tiny_model, None, 6, batches=batches)
    with pytest.raises(ValueError, match='needs calibration data'):
        run_selection(tiny_model, None, 2)
    assert not tiny_model.training
    tiny_model.train()
    run_selection(tiny_model, None, 1, batches=batches, progress=False)
    assert tiny_model.training  # mode restored


@pytest.mark.parametrize('compensate, skip_mode', [(True, 'compensated'), (False, 'identity')])
def test_skip_modes_equal_the_model_diluted_at_lam_zero(compensate, skip_mode):
    """Oracle: skipping layers in a mode == the model's own forward with them at lam = 0."""
    model = build_tiny_classifier('NoseVisionTransformer', diluted_layers=[1, 3], init_lam=0.0,
                                  compensate=compensate)
    adapter = build_adapter(model, features='logits', skip_mode=skip_mode)
    other = build_adapter(model, features='logits',
                          skip_mode='identity' if compensate else 'compensated')
    x = make_batches(8, 8)[0]
    with torch.no_grad():
        expected = model(x, mode='tensor')
        torch.testing.assert_close(adapter.forward(x, skip=[1, 3]), expected, rtol=0, atol=1e-6)
        assert not torch.allclose(other.forward(x, skip=[1, 3]), expected, atol=1e-3)
        # the adapter measures the plain block whatever lam the backbone has
        assert not torch.allclose(adapter.forward(x), expected, atol=1e-3)


def test_skip_modes_give_different_transfer_entropies(tiny_model, batches):
    records = {mode: run_selection(tiny_model, None, 2, batches=batches, progress=False,
                                   skip_mode=mode) for mode in ('identity', 'compensated')}
    assert records['identity']['skip_mode'] == 'identity'
    assert records['compensated']['skip_mode'] == 'compensated'
    te = {mode: np.array(r['te_table'][0], dtype=float) for mode, r in records.items()}
    assert np.all(np.abs(te['identity'] - te['compensated']) > 1e-3)
    # the same H(full): nothing is skipped there
    assert records['identity']['entropies']['full'] == pytest.approx(
        records['compensated']['entropies']['full'], abs=1e-12)
    # baselines do not skip: no skip mode recorded
    assert run_selection(tiny_model, None, 2, method='first', skip_mode='compensated',
                         progress=False)['skip_mode'] is None
    with pytest.raises(ValueError, match="unknown skip_mode 'double'; allowed: identity, "
                                         "compensated"):
        build_adapter(tiny_model, skip_mode='double')


def test_an_unmarked_block_override_refuses_compensated_skips(tiny_model, batches):
    class Plain(FamilyAdapter):
        def block(self, index, x, skip_attn=False):  # skips as identity, whatever the mode
            return super().block(index, x, skip_attn)

    family = build_adapter(tiny_model).family
    assert Plain(tiny_model, family).skip_mode == 'identity'
    with pytest.raises(ValueError, match="Plain.block does not apply skip_mode 'compensated': "
                                         "it must skip through skipped_attention"):
        Plain(tiny_model, family, skip_mode='compensated')

    class Marked(Plain):
        block = applies_skip_mode(Plain.block)

    x = batches[0]
    with torch.no_grad():
        assert torch.equal(Marked(tiny_model, family, skip_mode='compensated').forward(x, [2]),
                           build_adapter(tiny_model, skip_mode='compensated').forward(x, [2]))


def test_cached_equals_naive_when_compensated(tiny_model, batches):
    adapter = build_adapter(tiny_model, skip_mode='compensated')
    naive, cached = NaiveEvaluator(adapter, batches), CachedEvaluator(adapter, batches)
    for selected, candidate in [((), 0), ((), 3), ((3, ), 1), ((3, 1), 4), ((3, 1), 0)]:
        assert cached(selected, candidate) == pytest.approx(naive(selected, candidate),
                                                            abs=1e-9)
