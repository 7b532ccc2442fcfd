"""A model as one timed forward in a deployed runtime (``tools/benchmark.py --runtime``).

Each runtime gets the same measured module (:class:`~nose_mm.benchmark.info.TensorForward`)
and the same pre-processed batch, and returns a callable running one forward, so the
benchmark's interleaved timing (:func:`~nose_mm.benchmark.timing.time_interleaved`)
times every (model, runtime) pair in the same rounds:

* ``torch``: eager PyTorch under ``inference_mode`` (what the benchmark always measured);
* ``torch.compile``: ``torch.compile(module)`` (inductor; on CPU it needs a C++
  compiler) under ``no_grad``, compiled during the warm-up rounds;
* ``onnxruntime``: the module exported by :func:`.onnx_export.export_onnx` (opset 17,
  dynamic batch) run by onnxruntime's CPU provider, ``threads`` intra-op threads;
* ``openvino``: the same ONNX file compiled by OpenVINO for ``CPU`` with
  ``INFERENCE_NUM_THREADS = threads`` and ``INFERENCE_PRECISION_HINT = f32`` (its default
  is bf16 on CPUs with bf16 units) (optional: ``requirements/deploy.txt``).

Non-torch runtimes run on CPU, in fp32. The ONNX runtimes' output is compared with
PyTorch's once, before the timing (:func:`.onnx_export.compare_outputs`, the export
check's rule): a runtime that does not compute the model is refused, not timed (a model
whose output is all zeros, random weights with a zero-initialised head, cannot be
checked so: a warning says it).
"""
import os.path as osp
import sys
from typing import Any, Callable, Optional

import numpy as np
import torch

from nose_mm.benchmark.records import RUNTIMES

__all__ = ['RUNTIMES', 'check_runtime', 'runtime_forward']


def check_runtime(runtime: str, device: str = 'cpu', precision: str = 'fp32') -> None:
    """Refuse an unknown runtime, or one that cannot run on ``device`` / ``precision``.

    Raises:
        ValueError: Named, with what is allowed.
    """
    if runtime not in RUNTIMES:
        raise ValueError(f'runtime must be one of {", ".join(RUNTIMES)}, got {runtime!r}')
    if runtime in ('onnxruntime', 'openvino'):
        if torch.device(device).type != 'cpu':
            raise ValueError(f'runtime {runtime!r} is measured on the CPU here, got device '
                             f'{device!r}; use --device cpu')
        if precision != 'fp32':
            raise ValueError(f'runtime {runtime!r} runs the fp32 export, got precision '
                             f'{precision!r}; drop --amp')
    if runtime == 'openvino':
        try:
            import openvino  # noqa: F401
        except ImportError as exc:
            raise ValueError(f'runtime \'openvino\' needs the openvino package '
                             f'(pip install -c requirements/constraints.txt -r '
                             f'requirements/deploy.txt): {exc}') from None


def runtime_forward(runtime: str, model: torch.nn.Module, x: torch.Tensor, work_dir: str,
                    name: str, threads: Optional[int] = None) -> Callable[[], None]:
    """A callable running ``model(x)`` once in ``runtime`` (export / compilation done here).

    Args:
        runtime (str): One of :data:`RUNTIMES` but ``'torch'`` (the benchmark's own).
        model (torch.nn.Module): The measured module, in eval mode, on CPU.
        x (torch.Tensor): The batch (the export's example too).
        work_dir (str): Where the ONNX file goes (a temporary folder).
        name (str): File name stem of the export.
        threads (int, optional): Intra-op threads of onnxruntime / OpenVINO. Defaults to
            torch's.

    Returns:
        callable: One forward, returning nothing.

    Raises:
        ValueError: An unknown runtime.
        ExportCheckError: The ONNX runtime's output differs from PyTorch's on ``x``.
    """
    threads = threads or torch.get_num_threads()
    if runtime == 'torch.compile':
        compiled = torch.compile(model)

        def run_compiled() -> None:
            # no_grad, not inference_mode: dynamo 2.12 fails its own guards on tensors
            # created under inference_mode ("Guard failed on the same frame")
            with torch.no_grad():
                compiled(x)

        return run_compiled
    if runtime not in ('onnxruntime', 'openvino'):
        raise ValueError(f'runtime_forward runs torch.compile, onnxruntime or openvino, got '
                         f'{runtime!r}')
    from .onnx_export import INPUT_NAME, _first_tensor, compare_outputs, export_onnx, ort_session
    path = osp.join(work_dir, f'{name}.onnx')
    export_onnx(model, path, x)
    feed = x.detach().cpu().numpy()
    with torch.no_grad():  # what the timed runtime must compute (it is checked once)
        ref = _first_tensor(model(x)).float().cpu().numpy()
    checkable = bool(ref.size and np.abs(ref).max() > 0)
    if not checkable:  # random weights of a zero-initialised head: equal zeros prove nothing
        print(f'nose_mm: warning: {name}: PyTorch\'s output is all zeros (random weights with '
              f'a zero-initialised head?), so its {runtime} output is timed unchecked; pass a '
              f'checkpoint to check it', file=sys.stderr)

    def check(got: Any) -> None:
        if checkable:
            compare_outputs(f'{name} ({path})', np.asarray(got), ref, runtime=runtime)

    if runtime == 'onnxruntime':
        session = ort_session(path, threads)
        check(session.run(None, {INPUT_NAME: feed})[0])

        def run_ort() -> None:
            session.run(None, {INPUT_NAME: feed})

        return run_ort
    import openvino as ov
    # fp32 as the other runtimes: OpenVINO's CPU plugin otherwise infers in bf16 on CPUs
    # that have it (AMX / AVX512-BF16, as this project's Xeon: ~1e-2 from PyTorch)
    compiled_model = ov.Core().compile_model(path, 'CPU', {'INFERENCE_NUM_THREADS': threads,
                                                           'INFERENCE_PRECISION_HINT': 'f32'})
    request = compiled_model.create_infer_request()
    check(request.infer([feed])[0])

    def run_openvino() -> None:
        request.infer([feed])

    return run_openvino
