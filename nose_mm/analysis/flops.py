"""FLOP counting that includes the attention matrix products.

mmengine's :class:`~mmengine.analysis.FlopAnalyzer` has no handle for
``aten::scaled_dot_product_attention``, which mmpretrain's attention calls, so
``Q @ K^T`` and ``softmax(.) @ V`` (``2 * N^2 * C`` multiply-adds per layer)
are skipped: DeiT-B counts 16.87 G instead of timm's 17.58 G. This module adds
that handle. Like mmengine, one "flop" is one multiply-add (MAC).
"""
from collections import Counter
from typing import Any, List, Tuple, Union

import torch
from mmengine.analysis import FlopAnalyzer
from mmengine.analysis.jit_handles import get_shape

__all__ = ['sdpa_flop_jit', 'flop_analyzer', 'count_flops', 'count_params']

SDPA_OP = 'aten::scaled_dot_product_attention'


def sdpa_flop_jit(inputs: List[Any], outputs: List[Any]) -> Counter:
    """MACs of ``scaled_dot_product_attention(q, k, v)``.

    ``q``: (..., L, E), ``k``: (..., S, E), ``v``: (..., S, Ev). The two
    matrix products cost ``prod(...) * L * S * (E + Ev)`` MACs; the softmax and
    the scaling are elementwise and not counted (as elsewhere in mmengine).
    """
    q, k, v = (get_shape(x) for x in inputs[:3])
    batch = 1
    for dim in q[:-2]:
        batch *= dim
    length, emb = q[-2], q[-1]
    source, emb_v = k[-2], v[-1]
    return Counter({'scaled_dot_product_attention': batch * length * source * (emb + emb_v)})


def flop_analyzer(model: torch.nn.Module, inputs: Union[torch.Tensor, Tuple]) -> FlopAnalyzer:
    """A :class:`~mmengine.analysis.FlopAnalyzer` that also counts SDPA.

    Args:
        model (torch.nn.Module): The model (traced with ``torch.jit``).
        inputs (Tensor | tuple): Inputs of ``model.forward``.

    Returns:
        FlopAnalyzer: Call ``.total()``, ``.by_module()``...
    """
    analyzer = FlopAnalyzer(model, inputs)
    analyzer.set_op_handle(SDPA_OP, sdpa_flop_jit)
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    return analyzer


def count_flops(model: torch.nn.Module, inputs: Union[torch.Tensor, Tuple]) -> int:
    """Total MACs of ``model(*inputs)``, attention matrix products included."""
    was_training = model.training
    model.eval()
    try:
        return int(flop_analyzer(model, inputs).total())
    finally:
        model.train(was_training)


def count_params(model: torch.nn.Module) -> int:
    """Number of parameters of ``model``."""
    return sum(p.numel() for p in model.parameters())
