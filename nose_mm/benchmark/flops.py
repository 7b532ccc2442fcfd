"""FLOPs (MACs) including the attention products mmengine skips; see ``benchmarks/README.md``."""
import math
from collections import Counter
from typing import Any, List, Sequence, Tuple, Union

import torch
from mmengine.analysis import FlopAnalyzer
from mmengine.analysis.jit_handles import get_shape

__all__ = ['flop_analyzer', 'count_flops', 'count_params']

SDPA_OP = 'aten::scaled_dot_product_attention'


def sdpa_flop_jit(inputs: List[Any], outputs: List[Any]) -> Counter:
    """MACs of SDPA: ``prod(...) * L * S * (E + Ev)``, q (..., L, E), k (..., S, E), v (.., Ev)."""
    q, k, v = (get_shape(x) for x in inputs[:3])
    return Counter({'scaled_dot_product_attention':
                    math.prod(q[:-1]) * k[-2] * (q[-1] + v[-1])})


def flop_analyzer(model: torch.nn.Module, inputs: Union[torch.Tensor, Tuple]) -> FlopAnalyzer:
    """A :class:`~mmengine.analysis.FlopAnalyzer` that also counts SDPA, warnings off.

    Args:
        model (torch.nn.Module): The model (traced with ``torch.jit``).
        inputs (Tensor | tuple): Inputs of ``model.forward``.

    Returns:
        FlopAnalyzer: The analyzer (``.total()``, ``.by_module()``...).
    """
    analyzer = FlopAnalyzer(model, inputs)
    analyzer.set_op_handle(SDPA_OP, sdpa_flop_jit)
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    return analyzer


def _as_inputs(model: torch.nn.Module,
               inputs: Union[torch.Tensor, Tuple, Sequence[int]]) -> Tuple:
    """Turn a shape ``(C, H, W)`` / ``(N, C, H, W)`` into zeros on the model's device."""
    if isinstance(inputs, torch.Tensor):
        return (inputs, )
    inputs = tuple(inputs)
    if inputs and all(isinstance(x, torch.Tensor) for x in inputs):
        return inputs
    if len(inputs) not in (3, 4) or not all(
            isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in inputs):
        raise ValueError(f'input_shape must be (C, H, W) or (N, C, H, W) with positive '
                         f'integers, got {inputs!r}')
    shape = inputs if len(inputs) == 4 else (1, ) + inputs
    device = next(iter(list(model.parameters()) + list(model.buffers())),
                  torch.zeros(0)).device
    return (torch.zeros(shape, device=device), )


def count_flops(model: torch.nn.Module,
                inputs: Union[torch.Tensor, Tuple, Sequence[int]]) -> int:
    """MACs of one forward ``model(*inputs)`` in eval mode (training mode restored).

    Args:
        model (torch.nn.Module): Called as ``model(*inputs)``.
        inputs (Tensor | tuple | sequence of int): Inputs, or a shape (C, H, W) / (N, C, H, W).

    Returns:
        int: MACs (DeiT-B at ``(3, 224, 224)``: about 17.58 G).

    Raises:
        ValueError: A shape without 3 or 4 positive entries.
    """
    inputs = _as_inputs(model, inputs)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return int(flop_analyzer(model, inputs).total())
    finally:
        model.train(was_training)


def count_params(model: torch.nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters of ``model``.

    Args:
        model (torch.nn.Module): Any model.
        trainable_only (bool): Only those with ``requires_grad``. Defaults to False.

    Returns:
        int: The count (DeiT-B classifier: 86,567,656).
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
