"""A config's model as an ONNX file: export, what the graph holds, and a check against PyTorch.

mmdeploy 1.3.1 does not fit the pinned stack (``docs/deploy.md``), so the export is
``torch.onnx.export`` (TorchScript exporter, opset 17) of the same measured module
``tools/benchmark.py`` times (:class:`~nose_mm.benchmark.info.TensorForward`): the
classifier up to the logits, or the segmentor in ``mode='tensor'`` (decode-head logits
at the head's resolution). Only the batch is dynamic; the spatial size is the export's.

Two facts the module is built on (measured here, torch 2.12.1, onnxruntime 1.32):

* a pruned layer has no attention in the module, so the traced graph has none either:
  each attention layer exports as one ``Softmax`` and two ``MatMul`` nodes whose inputs
  are both activations (``q @ k^T`` and ``attn @ v``; a linear layer's ``MatMul`` has a
  weight initializer), counted by :func:`attention_nodes`;
* the exporter cannot trace ``adaptive_avg_pool2d`` (UperNet's pyramid pooling) behind a
  resize whose output size it does not infer ("input size not accessible");
  :func:`static_adaptive_pools` replaces each ``nn.AdaptiveAvgPool2d`` during the export
  by the same average written as two constant matrix products for the export's input
  size (exact: each output cell is the mean over torch's own bin bounds).
"""
import contextlib
import json
import math
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from nose_mm.utils.cli import UserError
from nose_mm.utils.fileio import atomic_write

__all__ = [
    'OPSET', 'ATOL', 'RTOL', 'METADATA_KEY', 'ExportCheckError', 'CheckResult',
    'static_adaptive_pools', 'export_onnx', 'read_metadata', 'attention_nodes', 'ort_session',
    'check_onnx', 'compare_outputs', 'failure_message'
]

#: ONNX opset of the export (the one measured with onnxruntime and OpenVINO here).
OPSET = 17
#: The check passes when max |onnxruntime - torch| <= ATOL + RTOL * max |torch|.
ATOL = 1e-4
RTOL = 1e-4
#: Key of the JSON description (preprocessing, model, removed layers) in the ONNX metadata.
METADATA_KEY = 'nose_mm'
INPUT_NAME, OUTPUT_NAME = 'input', 'output'


class ExportCheckError(UserError):
    """The exported model's output differs from PyTorch's beyond the tolerance."""


@dataclass
class CheckResult:
    """One comparison of an ONNX file with the PyTorch module on the same batch.

    Attributes:
        max_abs_diff (float): Largest ``|onnxruntime - torch|`` over the output.
        tolerance (float): ``atol + rtol * max |torch|``.
        max_abs_ref (float): Largest ``|torch|`` (what ``rtol`` scales).
        batch_size (int): Batch of the check (not the export's: the batch is dynamic).
        ok (bool): ``max_abs_diff <= tolerance``.
    """

    max_abs_diff: float
    tolerance: float
    max_abs_ref: float
    batch_size: int
    ok: bool


def _pool_matrix(size_in: int, size_out: int) -> torch.Tensor:
    """``(size_out, size_in)``: row ``i`` averages torch's bin ``[i*n//o, ceil((i+1)*n/o))``."""
    mat = torch.zeros(size_out, size_in)
    for i in range(size_out):
        start = (i * size_in) // size_out
        end = -((-(i + 1) * size_in) // size_out)
        mat[i, start:end] = 1.0 / (end - start)
    return mat


class _MatrixPool(nn.Module):
    """``AdaptiveAvgPool2d`` for one input size: ``P_h @ x @ P_w^T`` (constants in the graph)."""

    def __init__(self, in_hw: Tuple[int, int], out_hw: Tuple[int, int]) -> None:
        super().__init__()
        self.register_buffer('ph', _pool_matrix(in_hw[0], out_hw[0]), persistent=False)
        self.register_buffer('pw', _pool_matrix(in_hw[1], out_hw[1]).t().contiguous(),
                             persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.matmul(torch.matmul(self.ph.to(x.dtype), x), self.pw.to(x.dtype))


def _out_hw(pool: nn.AdaptiveAvgPool2d, in_hw: Tuple[int, int]) -> Tuple[int, int]:
    size = pool.output_size
    size = (size, size) if isinstance(size, int) else tuple(size)
    return tuple(in_hw[i] if s is None else int(s) for i, s in enumerate(size))  # type: ignore


@contextlib.contextmanager
def static_adaptive_pools(model: nn.Module, example: torch.Tensor) -> Iterator[int]:
    """Replace every ``nn.AdaptiveAvgPool2d`` by its matrix form for ``example``'s size.

    One forward on ``example`` records each pool's input size; the pools are put back
    on exit. Yields the number of replaced pools.

    Args:
        model (nn.Module): The module to export.
        example (torch.Tensor): The export's example input.
    """
    sizes: Dict[str, Tuple[int, int]] = {}
    pools = {name: m for name, m in model.named_modules() if isinstance(m, nn.AdaptiveAvgPool2d)}
    if not pools:
        yield 0
        return
    hooks = [m.register_forward_hook(
        lambda mod, args, out, name=name: sizes.__setitem__(name, tuple(args[0].shape[-2:])))
        for name, m in pools.items()]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for hook in hooks:
            hook.remove()
    swapped: List[Tuple[nn.Module, str, nn.Module]] = []
    try:
        for name, pool in pools.items():
            if name not in sizes:  # not on the measured path
                continue
            parent_name, _, attr = name.rpartition('.')
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, attr, _MatrixPool(sizes[name], _out_hw(pool, sizes[name])))
            swapped.append((parent, attr, pool))
        yield len(swapped)
    finally:
        for parent, attr, pool in swapped:
            setattr(parent, attr, pool)


def _first_tensor(out: Any) -> torch.Tensor:
    while isinstance(out, (tuple, list)):
        if len(out) != 1:
            raise ValueError(f'the exported module must return one tensor, got {len(out)} '
                             f'outputs')
        out = out[0]
    if not isinstance(out, torch.Tensor):
        raise ValueError(f'the exported module must return a tensor, got {type(out).__name__}')
    return out


class _OneOutput(nn.Module):
    """``module(x)`` as one tensor (the measured parts return a tensor or a 1-tuple)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _first_tensor(self.module(x))


def export_onnx(model: nn.Module, path: str, example: torch.Tensor,
                metadata: Optional[Dict[str, Any]] = None, opset: int = OPSET) -> Dict[str, int]:
    """Export ``model(x)`` to ``path`` (atomically), batch dynamic, ``metadata`` in the file.

    Args:
        model (nn.Module): Called as ``model(x)`` on a batch; returns one tensor.
        path (str): The ``.onnx`` file to write.
        example (torch.Tensor): An input batch (its spatial size is the graph's).
        metadata (dict, optional): JSON-able description stored under
            :data:`METADATA_KEY` in the file's ``metadata_props``. Defaults to None.
        opset (int): ONNX opset. Defaults to :data:`OPSET`.

    Returns:
        dict: :func:`attention_nodes` of the written graph (exported in eval mode; the
        module is left in the mode it had).
    """
    was_training = model.training
    counts: Dict[str, int] = {}

    def write(tmp: str) -> None:
        # the exporter restores the module's own mode afterwards: a fresh wrapper is in
        # training mode, and restoring it would switch the model to training (dropout,
        # drop path and BN batch statistics in every later forward)
        wrapper = _OneOutput(model).eval()
        with static_adaptive_pools(model, example), torch.no_grad(), \
                _quiet_export_warnings():
            torch.onnx.export(
                wrapper, (example, ), tmp, dynamo=False, opset_version=opset,
                input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: 'batch'}, OUTPUT_NAME: {0: 'batch'}})
        graph = onnx.load(tmp)
        if metadata is not None:
            entry = graph.metadata_props.add()
            entry.key, entry.value = METADATA_KEY, json.dumps(metadata, sort_keys=True)
        graph.producer_name = 'nose_mm (torch.onnx.export)'
        onnx.save(graph, tmp)
        counts.update(attention_nodes(graph))

    model.eval()
    try:
        atomic_write(path, write)
    finally:
        model.train(was_training)
    return counts


@contextlib.contextmanager
def _quiet_export_warnings() -> Iterator[None]:
    """The TorchScript exporter's deprecation and tracer warnings (expected here) off."""
    import warnings
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', category=DeprecationWarning)
        warnings.filterwarnings('ignore', category=torch.jit.TracerWarning)
        warnings.filterwarnings('ignore', message='.*legacy TorchScript-based ONNX export.*')
        yield


def read_metadata(path_or_model: Any) -> Optional[Dict[str, Any]]:
    """The :data:`METADATA_KEY` description of an ONNX file (or loaded model), or None."""
    graph = onnx.load(path_or_model, load_external_data=False) \
        if isinstance(path_or_model, str) else path_or_model
    for entry in graph.metadata_props:
        if entry.key == METADATA_KEY:
            return json.loads(entry.value)
    return None


def attention_nodes(graph: Any) -> Dict[str, int]:
    """Attention nodes of an ONNX graph: ``Softmax`` and activation-by-activation ``MatMul``.

    A ``MatMul`` whose inputs are both computed (neither an initializer nor a
    ``Constant``) is an attention product; one attention layer has two and one
    ``Softmax``. Nodes inside subgraphs are not counted (the exports have none).

    Args:
        graph (onnx.ModelProto | str): A loaded model or its path.

    Returns:
        dict: ``softmax``, ``attention_matmul``, ``matmul`` (all), ``nodes`` (all).
    """
    model = onnx.load(graph, load_external_data=False) if isinstance(graph, str) else graph
    g = model.graph
    constant = {init.name for init in g.initializer}
    constant.update(out for node in g.node if node.op_type == 'Constant' for out in node.output)
    matmuls = [n for n in g.node if n.op_type == 'MatMul']
    return {
        'softmax': sum(n.op_type == 'Softmax' for n in g.node),
        'attention_matmul': sum(all(i not in constant for i in n.input) for n in matmuls),
        'matmul': len(matmuls), 'nodes': len(g.node)}


def ort_session(path: str, threads: Optional[int] = None) -> 'ort.InferenceSession':
    """An onnxruntime CPU session of ``path`` (``threads`` intra-op threads, one inter-op)."""
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])


def check_onnx(path: str, model: nn.Module, inputs: torch.Tensor, atol: float = ATOL,
               rtol: float = RTOL, raise_on_fail: bool = True) -> CheckResult:
    """Run the ONNX file once in onnxruntime and compare with ``model`` on ``inputs``.

    Args:
        path (str): The ``.onnx`` file.
        model (nn.Module): The PyTorch module it should compute.
        inputs (torch.Tensor): The batch (use another batch size than the export's).
        atol (float): Absolute tolerance. Defaults to :data:`ATOL`.
        rtol (float): Tolerance relative to ``max |torch|``. Defaults to :data:`RTOL`.
        raise_on_fail (bool): Raise :class:`ExportCheckError` on a failed check.
            Defaults to True.

    Returns:
        CheckResult: The comparison.

    Raises:
        ExportCheckError: The difference exceeds the tolerance (named, with the largest
            difference), the output shapes differ, or PyTorch's output is all zeros (a
            comparison that could not fail).
    """
    if not (atol >= 0 and rtol >= 0 and math.isfinite(atol) and math.isfinite(rtol)):
        raise ValueError(f'atol and rtol must be finite and >= 0, got {atol}, {rtol}')
    with torch.no_grad():
        ref = _first_tensor(model.eval()(inputs)).float().cpu().numpy()
    got = ort_session(path).run(None, {INPUT_NAME: inputs.cpu().numpy()})[0]
    return compare_outputs(path, got, ref, atol, rtol, raise_on_fail)


def compare_outputs(path: str, got: np.ndarray, ref: np.ndarray, atol: float = ATOL,
                    rtol: float = RTOL, raise_on_fail: bool = True,
                    runtime: str = 'onnxruntime') -> CheckResult:
    """Compare ``runtime``'s output of ``path`` (``got``) with PyTorch's (``ref``) on one
    batch: :func:`check_onnx`'s rule and errors (its arguments)."""
    batch = int(ref.shape[0]) if ref.ndim else 1
    if got.shape != ref.shape:
        raise ExportCheckError(f'{path}: {runtime} output has shape {list(got.shape)}, '
                               f'PyTorch {list(ref.shape)} (batch {batch})')
    diff = float(np.max(np.abs(got.astype(np.float64) - ref))) if ref.size else 0.0
    max_ref = float(np.max(np.abs(ref))) if ref.size else 0.0
    if max_ref == 0.0:  # both zero would pass and prove nothing
        raise ExportCheckError(
            f'{path}: the PyTorch model outputs only zeros on the check batch (random weights '
            f'with a zero-initialised head?), so the comparison would prove nothing; pass a '
            f'checkpoint (tools/deploy/export.py: or --no-check to export without the check)')
    tol = atol + rtol * max_ref
    ok = bool(np.isfinite(diff) and diff <= tol)
    result = CheckResult(max_abs_diff=diff, tolerance=tol, max_abs_ref=max_ref,
                         batch_size=batch, ok=ok)
    if not ok and raise_on_fail:
        raise ExportCheckError(failure_message(path, result, atol, rtol, runtime))
    return result


def failure_message(path: str, result: CheckResult, atol: float, rtol: float,
                    runtime: str = 'onnxruntime') -> str:
    """The one line of a failed :func:`check_onnx` (the largest difference, the tolerance)."""
    run_in = '' if runtime == 'onnxruntime' else f' (run in {runtime})'
    return (f'{path}{run_in} does not compute the PyTorch model: largest difference '
            f'{result.max_abs_diff:.3g} > tolerance {result.tolerance:.3g} (atol {atol:g} + '
            f'rtol {rtol:g} x max |output| {result.max_abs_ref:.3g}), batch {result.batch_size}')
