"""FLOP counting includes the attention matrix products (SDPA handle)."""
import torch
from mmengine.analysis import FlopAnalyzer

import nose_mm  # noqa: F401
from nose_mm.benchmark import count_flops, count_params
from nose_mm.models import NoseVisionTransformer

TINY = dict(embed_dims=32, num_layers=4, num_heads=2, feedforward_channels=64)


def test_sdpa_is_counted_and_pruning_removes_whole_attention_sublayers():
    x = torch.randn(1, 3, 32, 32)
    base = NoseVisionTransformer(TINY, img_size=32, patch_size=8)
    base.eval()
    n, c = 4 * 4 + 1, 32  # tokens (16 patches + cls), channels
    plain = FlopAnalyzer(base, (x, ))
    plain.unsupported_ops_warnings(False)
    # mmengine alone misses Q @ K^T and softmax(.) @ V: 2 * N^2 * C MACs per layer
    assert count_flops(base, (x, )) - plain.total() == 4 * 2 * n * n * c
    pruned = NoseVisionTransformer(TINY, img_size=32, patch_size=8, removed_layers=[1, 3])
    per_layer = 4 * n * c * c + 2 * n * n * c + 5 * n * c  # qkv + proj, attention, LN1 (5/elem)
    assert count_flops(base, (x, )) - count_flops(pruned, (x, )) == 2 * per_layer
    assert count_params(base) - count_params(pruned) == 2 * (2 * c + 3 * c * c + 3 * c
                                                             + c * c + c)
