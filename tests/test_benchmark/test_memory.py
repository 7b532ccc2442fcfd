"""nose_mm.benchmark.memory: tracked bytes against torch's MemTracker, fake against real
tensors, the attention paths' difference to the byte, the working-load search."""
import pytest
import torch
from torch.distributed._tools.mem_tracker import MemTracker

from nose_mm.benchmark import largest_batch
from nose_mm.benchmark.memory import tracked_largest_batch, tracked_peak

pytestmark = pytest.mark.usefixtures('one_thread')
HW = (224, 224)


def _deit(arch, **backbone):
    import nose_mm  # noqa: F401
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS

    from nose_mm.benchmark import TensorForward
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(dict(
            type='ImageClassifier', neck=None,
            backbone=dict(type='NoseVisionTransformer', arch=arch, **backbone),
            head=dict(type='VisionTransformerClsHead', num_classes=1000,
                      in_channels=384 if arch == 'deit-small' else arch['embed_dims'])))
    return TensorForward(model).eval()


@pytest.fixture(scope='module')
def deit_s():
    return _deit('deit-small')


def test_deit_s_inference_batch8_matches_memtracker_and_fake_equals_real(deit_s):
    real = tracked_peak(deit_s, 8, HW, fake=False)
    x = torch.zeros(8, 3, *HW)
    oracle = MemTracker()  # torch's own tracker, its module hooks and categories
    oracle.track_external(deit_s, x)
    with oracle, torch.no_grad():
        deit_s(x)
    peak = oracle.get_tracker_snapshot('peak')[torch.device('cpu')]['Total']
    assert real.peak_bytes == pytest.approx(peak, rel=0.05)
    weights = sum(t.numel() * 4 for t in [*deit_s.parameters(), *deit_s.buffers()])
    assert real.base_bytes == weights + x.numel() * 4
    assert tracked_peak(deit_s, 8, HW, fake=True) == real
    assert not deit_s.training and all(p.grad is None for p in deit_s.parameters())


@pytest.mark.slow
def test_training_step_fake_equals_real_with_adamw_state(deit_s):
    real = tracked_peak(deit_s, 2, HW, 'bf16', train=True, optimizer='adamw', fake=False)
    assert tracked_peak(deit_s, 2, HW, 'bf16', train=True, optimizer='adamw') == real
    plain = tracked_peak(deit_s, 2, HW, train=True)
    params = sum(p.numel() * 4 for p in deit_s.parameters())
    steps = 4 * len(list(deit_s.parameters()))  # AdamW's fp32 step counter per parameter
    assert real.base_bytes - plain.base_bytes == 2 * params + steps  # exp_avg, exp_avg_sq
    assert all(p.grad is None for p in deit_s.parameters())


def test_math_attention_keeps_the_attention_matrix_fused_keeps_logsumexp(deit_s):
    """Training, fake tensors: the paths differ by 12 x (B h N^2 - B h N) fp32 values."""
    batch, heads, tokens, layers = 8, 6, 197, 12
    fused = tracked_peak(deit_s, batch, HW, train=True, attention='fused')
    math = tracked_peak(deit_s, batch, HW, train=True, attention='math')
    assert math.peak_bytes - fused.peak_bytes == \
        layers * 4 * batch * heads * (tokens * tokens - tokens)
    assert fused.attention_ops == {'aten::_scaled_dot_product_flash_attention_for_cpu': 12,
                                   'aten::_scaled_dot_product_flash_attention_for_cpu_backward':
                                   12}
    assert math.attention_ops == {'aten::_safe_softmax': 12, 'aten::_softmax_backward_data': 12}


def test_working_load_is_the_largest_batch_in_budget_pruned_gains():
    arch = dict(embed_dims=64, num_layers=4, num_heads=2, feedforward_channels=128)
    base, pruned = _deit(arch), _deit(arch, removed_layers=[0, 2])
    budget_gb = 0.1
    loads = {}
    for name, model in (('base', base), ('pruned', pruned)):
        lb = largest_batch(model, budget_gb, 64, 'cpu', 'bf16', train=True, method='tracked')
        peak = lambda b: tracked_peak(model, b, (64, 64), 'bf16', train=True).peak_bytes  # noqa
        assert lb.peak_bytes == peak(lb.batch_size) <= budget_gb * 2**30 < peak(lb.batch_size + 1)
        assert not lb.capped and lb.tried[str(lb.batch_size)] == lb.peak_bytes
        loads[name] = lb.batch_size
    assert loads['pruned'] > loads['base'] > 64


def test_search_falls_back_to_bisection_and_refuses_bad_settings(deit_s):
    steps = lambda b: 1000 + 100 * (b // 10) ** 2  # noqa: E731 (not affine: guess is wrong)
    batch, tried = tracked_largest_batch(steps, 50_000, max_batch=4096)
    assert steps(batch) <= 50_000 < steps(batch + 1) and len(tried) < 20
    assert tracked_largest_batch(lambda b: 10 * b, 5) == (0, {1: 10})
    assert tracked_largest_batch(lambda b: 10 * b, 10**9, max_batch=100)[0] == 100
    with pytest.raises(ValueError, match="attention must be one of fused, math, got 'flash'"):
        tracked_peak(deit_s, 1, HW, attention='flash')
    with pytest.raises(ValueError, match="optimizer='sgd' needs train=True"):
        tracked_peak(deit_s, 1, HW, optimizer='sgd')


@pytest.mark.slow  # builds an mmseg EncoderDecoder
def test_upernet_training_working_load_starts_at_two_images_for_batch_norm():
    from nose_mm.benchmark import build_model
    from nose_mm.utils.config import load_config
    from tests.utils import TEST_CONFIGS
    cfg = load_config(f'{TEST_CONFIGS}/bench-tiny-upernet_ade20k.py')
    model = build_model(cfg, None)  # EncoderDecoder in mode='tensor', its PPM batch-normed
    with pytest.raises(ValueError, match='Expected more than 1 value per channel'):
        tracked_peak(model, 1, (32, 32), train=True)
    lb = largest_batch(model, 1.0, 32, 'cpu', 'bf16', train=True, method='tracked',
                       max_batch=4)
    assert sorted(lb.tried) == ['2', '4'] and lb.batch_size == 4 and lb.capped
    assert lb.tried['2'] < lb.peak_bytes == tracked_peak(model, 4, (32, 32), 'bf16',
                                                          True).peak_bytes
