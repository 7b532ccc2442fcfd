"""nose_mm.benchmark.measure: params and FLOPs of DeiT-B against METHOD.md, timing, memory."""
import pytest
import torch

from nose_mm.benchmark import (compare, count_flops, count_params, largest_batch,
                               measure_throughput, normalize_metrics, peak_memory)

# METHOD.md section 5.
DEIT_B_PARAMS_M = 86.57
DEIT_B_GMACS = 17.58
ATTN_SUBLAYER_PARAMS = 2_363_904
ATTN_SUBLAYER_GMACS = 0.524
REMOVED = [0, 1, 3, 4, 6]


def _deit_b(**backbone):
    import nose_mm  # noqa: F401
    from mmpretrain.registry import MODELS
    from nose_mm.benchmark import TensorForward
    model = MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='NoseVisionTransformer', arch='deit-base', **backbone), neck=None,
        head=dict(type='VisionTransformerClsHead', num_classes=1000, in_channels=768)))
    return TensorForward(model).eval()


def test_deit_base_pruned_params_and_flops_match_method_md():
    base, pruned = _deit_b(), _deit_b(removed_layers=REMOVED)
    base_params, pruned_params = count_params(base), count_params(pruned)
    assert round(base_params / 1e6, 2) == DEIT_B_PARAMS_M
    assert base_params - pruned_params == len(REMOVED) * ATTN_SUBLAYER_PARAMS
    base_flops = count_flops(base, (3, 224, 224))
    pruned_flops = count_flops(pruned, (3, 224, 224))
    assert base_flops == pytest.approx(DEIT_B_GMACS * 1e9, rel=0.01)
    expected = (DEIT_B_GMACS - len(REMOVED) * ATTN_SUBLAYER_GMACS) * 1e9
    assert pruned_flops == pytest.approx(expected, rel=0.01)
    per_layer = (base_flops - pruned_flops) / len(REMOVED)
    assert per_layer == pytest.approx(ATTN_SUBLAYER_GMACS * 1e9, rel=0.01)


class _Net(torch.nn.Module):

    def __init__(self, width):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, width, 3, padding=1)
        self.fc = torch.nn.Linear(width, 10)

    def forward(self, x):
        return self.fc(self.conv(x).mean((2, 3)))


def test_throughput_memory_and_interleaved_compare():
    torch.manual_seed(0)
    small, large = _Net(4), _Net(8)
    out = measure_throughput(small, batch_size=2, img_size=16, warmup=1, repeats=3)
    assert out['repeats'] == 3 and len(out['img_per_s_repeats']) == 3
    assert len(out['seconds_repeats']) == 3
    assert out['img_per_s'] == sorted(out['img_per_s_repeats'])[1]
    assert (out['batch_size'], out['img_size'], out['device'], out['precision']) == \
        (2, [16, 16], 'cpu', 'fp32')
    assert count_flops(large, (3, 16, 16)) == 16 * 16 * 8 * 27 + 80
    assert count_flops(large, (2, 3, 16, 16)) == 2 * count_flops(large, (3, 16, 16))
    for train in (False, True):
        mem = peak_memory(large, batch_size=4, img_size=64, train=train)
        assert mem is None  # CPU memory is not measured (see benchmarks/README.md)
    assert not large.training and all(p.grad is None for p in large.parameters())
    result = compare(large, small, batch_size=2, img_size=16, warmup=1, repeats=3)
    ratios = result['ratios']
    assert ratios['params'] == pytest.approx(count_params(small) / count_params(large))
    assert ratios['flops'] == pytest.approx(result['b']['flops'] / result['a']['flops'])
    assert ratios['ideal_speedup'] == pytest.approx(1 / ratios['flops'])
    assert ratios['throughput'] == pytest.approx(result['b']['throughput']['img_per_s']
                                                 / result['a']['throughput']['img_per_s'])
    assert ratios['speedup_vs_ideal'] == pytest.approx(ratios['throughput']
                                                       / ratios['ideal_speedup'])
    assert len(result['a']['throughput']['img_per_s_repeats']) == 3


@pytest.mark.parametrize('call, message', [
    (lambda m: measure_throughput(m, precision='fp8'),
     "precision must be one of fp32, fp16, bf16, got 'fp8'"),
    (lambda m: measure_throughput(m, device='tpu'), "device must be one of cpu, cuda"),
    (lambda m: measure_throughput(m, batch_size=0), 'batch_size must be an integer >= 1, got 0'),
    (lambda m: measure_throughput(m, img_size=(1, 2, 3)), 'img_size must be an int or'),
    (lambda m: count_flops(m, (16, 16)), 'input_shape must be (C, H, W) or (N, C, H, W)'),
    (lambda m: largest_batch(m, 1.0, device='cpu'), 'largest_batch needs a CUDA device'),
])
def test_bad_arguments_name_the_value(call, message):
    with pytest.raises(ValueError) as info:
        call(_Net(2))
    assert message in str(info.value)


def test_normalize_metrics():
    assert normalize_metrics({'accuracy/top1': 81.8, 'accuracy/top5': '95.6', 'loss': 'x'},
                             'classification') == {'top1': 81.8, 'top5': 95.6}
    assert normalize_metrics({'mIoU': 45.36, 'mAcc': 55.0, 'aAcc': 80.0}, 'segmentation',
                             tta=True) == {'mIoU_ms_flip': 45.36, 'mAcc': 55.0, 'aAcc': 80.0}
    with pytest.raises(ValueError, match="task must be one of classification, segmentation"):
        normalize_metrics({}, 'detection')


def test_results_hook_arguments():
    import nose_mm  # noqa: F401
    from mmengine.registry import HOOKS
    hook = HOOKS.build(dict(type='ResultsHook', flops_img_size=(64, 32)))
    assert hook.filename == 'results.json' and hook.flops_img_size == (64, 32)
    with pytest.raises(ValueError, match="filename must be a plain file name .* 'a/b.json'"):
        HOOKS.build(dict(type='ResultsHook', filename='a/b.json'))
    with pytest.raises(ValueError, match='flops_img_size must be None or'):
        HOOKS.build(dict(type='ResultsHook', flops_img_size=224))
