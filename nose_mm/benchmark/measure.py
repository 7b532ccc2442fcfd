"""Throughput and memory of ``model(x)`` on a random batch, timed interleaved.

Conventions: ``benchmarks/README.md``.
"""
import contextlib
import tempfile
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch

from .flops import count_flops, count_params
from .memory import OPTIMIZERS, TRACKED_METHOD, TrackedStep, tracked_largest_batch, tracked_peak
from .records import PRECISIONS, LargestBatch, Measurement
from .timing import CLOCKS, time_interleaved

__all__ = ['peak_memory', 'largest_batch', 'compare_models', 'alone']

DEVICES = ('cpu', 'cuda')
#: How :func:`peak_memory` measures, by device type (``'tracked'``: any device).
MEMORY_METHODS = {
    'cuda': 'torch.cuda.max_memory_allocated (weights + activations, bytes)',
    'cpu': TRACKED_METHOD + ', fake tensors, fused attention',
}
MEMORY_METHODS['tracked'] = MEMORY_METHODS['cpu']
_AUTOCAST_DTYPES = {'fp16': torch.float16, 'bf16': torch.bfloat16}
ImgSize = Union[int, Sequence[int]]


def _check_device(device: Union[str, torch.device]) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        dev = None
    if dev is None or dev.type not in DEVICES:
        raise ValueError(f'device must be one of {", ".join(DEVICES)} (e.g. cuda:1), '
                         f'got {str(device)!r}')
    if dev.type == 'cuda' and not torch.cuda.is_available():
        raise ValueError(f'device {str(device)!r} asked for, but CUDA is not available here; '
                         f'use device="cpu"')
    return dev


def _check_positive(name: str, value: int, minimum: int = 1) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f'{name} must be an integer >= {minimum}, got {value!r}')


def _hw(img_size: ImgSize) -> Tuple[int, int]:
    """``(height, width)`` from an int or a pair, checked."""
    if isinstance(img_size, int) and not isinstance(img_size, bool):
        size = (img_size, img_size)
    elif isinstance(img_size, (tuple, list)) and len(img_size) == 2:
        size = tuple(img_size)
    else:
        raise ValueError(f'img_size must be an int or (height, width), got {img_size!r}')
    if not all(isinstance(s, int) and s > 0 for s in size):
        raise ValueError(f'img_size must hold positive integers, got {img_size!r}')
    return size  # type: ignore[return-value]


def _in_channels(model: torch.nn.Module) -> int:
    return int(getattr(model, 'in_channels', 3))


def _inputs(model: torch.nn.Module, batch_size: int, img_size: ImgSize,
            device: torch.device) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(batch_size, _in_channels(model), *_hw(img_size), generator=gen).to(device)


def _forward_fn(model: torch.nn.Module, x: torch.Tensor, device: torch.device,
                precision: str, train: bool = False, optimizer: Any = None):
    """A callable running one (synchronised) forward, or forward + backward (+ ``step()``)."""
    dtype = _AUTOCAST_DTYPES.get(precision)

    def _outputs_sum(out: Any) -> torch.Tensor:
        if isinstance(out, torch.Tensor):
            return out.float().sum()
        if isinstance(out, (tuple, list)):
            return sum(_outputs_sum(o) for o in out)
        if isinstance(out, dict):
            return sum(_outputs_sum(o) for o in out.values())
        raise TypeError(f'cannot reduce a model output of type {type(out).__name__}')

    def run() -> None:
        grad = contextlib.nullcontext() if train else torch.inference_mode()
        with grad, torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            # the train step keeps no reference to the output: backward runs without it
            loss = _outputs_sum(model(x)) if train else model(x)
        if train:
            loss.backward()
            del loss
            if optimizer is not None:
                optimizer.step()
            model.zero_grad(set_to_none=True)
        if device.type == 'cuda':
            torch.cuda.synchronize(device)

    return run


def _prepare(model: torch.nn.Module, device: Union[str, torch.device], precision: str,
             batch_size: int, warmup: int, repeats: int) -> torch.device:
    dev = _check_device(device)
    if precision not in PRECISIONS:
        raise ValueError(f'precision must be one of {", ".join(PRECISIONS)}, '
                         f'got {precision!r}')
    _check_positive('batch_size', batch_size)
    _check_positive('repeats', repeats)
    _check_positive('warmup', warmup, minimum=0)
    model.to(dev).eval()
    return dev


def peak_memory(model: torch.nn.Module, batch_size: int = 8, img_size: ImgSize = 224,
                device: Union[str, torch.device] = 'cpu', precision: str = 'fp32',
                train: bool = False, method: str = 'auto', optimizer: Optional[str] = None,
                attention: str = 'fused') -> Optional[int]:
    """Peak memory of one step (weights + activations), in bytes.

    Args:
        model (torch.nn.Module): Called as ``model(x)``.
        batch_size (int): Images per step. Defaults to 8.
        img_size (int | tuple[int, int]): Input side or ``(H, W)``. Defaults to 224.
        device (str | torch.device): ``'cpu'`` or ``'cuda'``. Defaults to ``'cpu'``.
        precision (str): ``'fp32'``, ``'fp16'`` or ``'bf16'``. Defaults to ``'fp32'``.
        train (bool): Forward + backward of the summed outputs. Defaults to False.
        method (str): ``'cuda'`` (``max_memory_allocated``), ``'tracked'`` (tensor bytes
            under fake tensors, :mod:`.memory`; any device) or ``'auto'`` (``'cuda'`` on a
            CUDA device, else ``'tracked'``). Defaults to ``'auto'``.
        optimizer (str, optional): ``'sgd'`` / ``'adamw'`` state counted in a training
            step (after one step that creates it). Defaults to None.
        attention (str): Tracked attention path, ``'fused'`` or ``'math'``. Defaults to
            ``'fused'``.

    Returns:
        int | None: Bytes.

    Raises:
        ValueError: A bad device, precision, batch, size or method; ``'cuda'`` on CPU.
    """
    if method not in ('auto', 'cuda', 'tracked'):
        raise ValueError(f'method must be one of auto, cuda, tracked, got {method!r}')
    if method == 'auto':
        method = 'cuda' if _check_device(device).type == 'cuda' else 'tracked'
    if method == 'tracked':  # a copy of the model is measured, on the CPU
        precision = 'bf16' if precision == 'fp16' else precision  # autocast's CPU type
        return tracked_peak(model, batch_size, _hw(img_size), precision, train=train,
                            optimizer=optimizer, attention=attention,
                            in_channels=_in_channels(model)).peak_bytes
    dev = _prepare(model, device, precision, batch_size, 0, 1)
    if dev.type != 'cuda':
        raise ValueError(f'method="cuda" needs a CUDA device, got {str(device)!r}; use '
                         f'method="tracked" on CPU')
    if optimizer is not None and (not train or optimizer not in OPTIMIZERS):
        raise ValueError(f'optimizer must be one of {", ".join(OPTIMIZERS)} with train=True, '
                         f'got {optimizer!r} (train={train})')
    if train:
        model.train()
    x = _inputs(model, batch_size, img_size, dev)
    opt = OPTIMIZERS[optimizer]([p for p in model.parameters() if p.requires_grad]) \
        if optimizer else None
    run = _forward_fn(model, x, dev, precision, train=train, optimizer=opt)
    try:
        if opt is not None:
            run()  # creates the optimizer's state, as in every later step
        torch.cuda.synchronize(dev)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)
        run()
        return int(torch.cuda.max_memory_allocated(dev))
    finally:
        model.eval()


@contextlib.contextmanager
def alone(model: torch.nn.Module, models: Sequence[torch.nn.Module],
          device: Union[str, torch.device]):
    """Move every model of ``models`` but ``model`` off a CUDA ``device`` (a no-op on CPU)."""
    others = [m for m in models if m is not model] if torch.device(device).type == 'cuda' \
        else []
    for other in others:
        other.to('cpu')
        torch.cuda.empty_cache()
    try:
        yield
    finally:
        for other in others:
            other.to(device)


def largest_batch(model: torch.nn.Module, memory_budget_gb: float, img_size: ImgSize = 224,
                  device: Union[str, torch.device] = 'cuda', precision: str = 'fp32',
                  train: bool = False, max_batch: int = 4096, method: str = 'auto',
                  optimizer: Optional[str] = None, attention: str = 'fused') -> LargestBatch:
    """The largest batch whose step (:func:`peak_memory`) fits a memory budget: the working load.

    Args:
        model (torch.nn.Module): Called as ``model(x)``.
        memory_budget_gb (float): Budget in GiB (2**30 bytes), > 0.
        img_size (int | tuple[int, int]): Input side or ``(H, W)``. Defaults to 224.
        device (str | torch.device): Where the model is. Defaults to ``'cuda'``.
        precision (str): ``'fp32'``, ``'fp16'`` or ``'bf16'``. Defaults to ``'fp32'``.
        train (bool): Budget a training step (forward + backward). Defaults to False.
        max_batch (int): Upper end of the search. Defaults to 4096.
        method (str): ``'cuda'`` (real steps, doubling then bisection; out-of-memory
            counts as not fitting), ``'tracked'`` (fake-tensor steps,
            :func:`.memory.tracked_largest_batch`) or ``'auto'`` (``'cuda'`` on a CUDA
            device, else ``'tracked'``). Defaults to ``'auto'``.
        optimizer (str, optional): ``'sgd'`` / ``'adamw'`` state counted. Defaults to None.
        attention (str): Tracked attention path. Defaults to ``'fused'``.

    Returns:
        LargestBatch: ``batch_size`` (0: one image, two for a training step with batch
        norm, does not fit), ``tried`` (None: OOM).

    Raises:
        ValueError: A non-positive budget or ``max_batch``, a bad method for the device.
    """
    dev = _check_device(device)
    if not (isinstance(memory_budget_gb, (int, float)) and memory_budget_gb > 0):
        raise ValueError(f'memory_budget_gb must be a positive number, got {memory_budget_gb!r}')
    _check_positive('max_batch', max_batch)
    if method == 'auto':
        method = 'cuda' if dev.type == 'cuda' else 'tracked'
    budget = int(memory_budget_gb * 2**30)
    # batch norm refuses a training batch of one image (one value per channel after pooling)
    first = 2 if train and any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                               for m in model.modules()) else 1
    if method == 'tracked':
        step = TrackedStep(model, 'bf16' if precision == 'fp16' else precision, train,
                           optimizer, attention, in_channels=_in_channels(model))
        batch, seen = tracked_largest_batch(lambda b: step(b, _hw(img_size)).peak_bytes,
                                            budget, max_batch, first)
        return LargestBatch(batch_size=batch, peak_bytes=seen.get(batch),
                            capped=batch == max_batch,
                            tried={str(b): seen[b] for b in sorted(seen)})
    if method != 'cuda' or dev.type != 'cuda':
        raise ValueError(f'largest_batch method must be auto, tracked or cuda (a CUDA '
                         f'device), got method={method!r} on device={str(device)!r}')
    tried: Dict[int, Optional[int]] = {}

    def fits(batch: int) -> bool:
        if batch not in tried:
            try:
                tried[batch] = peak_memory(model, batch, img_size, dev, precision, train=train,
                                           method='cuda', optimizer=optimizer)
            except torch.cuda.OutOfMemoryError:
                tried[batch] = None
            finally:
                model.zero_grad(set_to_none=True)
                torch.cuda.empty_cache()
        peak = tried[batch]
        return peak is not None and peak <= budget

    good, bad = 0, None
    while bad is None and good < max_batch:  # 1 (2 with batch norm), 2, 4, ..., max_batch
        batch = min(max(first, 2 * good), max_batch)
        good, bad = (batch, None) if fits(batch) else (good, batch)
    while bad is not None and good and bad - good > 1:  # bisection
        mid = (good + bad) // 2
        good, bad = (mid, bad) if fits(mid) else (good, mid)
    return LargestBatch(batch_size=good, peak_bytes=tried.get(good) if good else None,
                        capped=good == max_batch, tried={str(b): tried[b] for b in sorted(tried)})


def compare_models(models: Sequence[torch.nn.Module], batch_size: int = 8,
                   img_size: ImgSize = 224, device: Union[str, torch.device] = 'cpu',
                   precision: str = 'fp32', warmup: int = 2, repeats: int = 5,
                   flops: bool = True, memory: bool = True, memory_train: bool = False,
                   clock: str = 'wall', memory_optimizer: Optional[str] = None,
                   runtimes: Sequence[str] = ('torch', )
                   ) -> List[Measurement]:
    """Measure models in one process, timed interleaved in rotated order (A B C, B C A...).

    With several ``runtimes`` every (runtime, model) pair is one entry of the same
    interleaved rounds (``nose_mm.deploy.runtimes``: the export or compilation happens
    before the warm-up).

    Args:
        models (sequence of torch.nn.Module): The baseline first; no module twice.
        batch_size (int): Images per forward. Defaults to 8.
        img_size (int | tuple[int, int]): Input side or ``(H, W)``. Defaults to 224.
        device (str | torch.device): ``'cpu'`` or ``'cuda[:N]'``. Defaults to ``'cpu'``.
        precision (str): ``'fp32'``, ``'fp16'`` or ``'bf16'``. Defaults to ``'fp32'``.
        warmup (int): Untimed rounds. Defaults to 2.
        repeats (int): Timed rounds (each model once per round). Defaults to 5.
        flops (bool): Count FLOPs (one trace per model). Defaults to True.
        memory (bool): Peak memory after the timing (others off the GPU). Defaults to True.
        memory_train (bool): Peak memory of a training step. Defaults to False.
        memory_optimizer (str, optional): Optimizer state in a tracked training step
            (:func:`peak_memory`). Defaults to None.
        clock (str): ``'wall'`` or ``'process'`` (:data:`~.timing.CLOCKS`). Defaults to ``'wall'``.
        runtimes (sequence of str): Of :data:`~.records.RUNTIMES`, each once. Defaults to
            ``('torch', )``. Memory is measured for ``'torch'`` only.

    Returns:
        list[Measurement]: Per runtime (in order), per model (in order): ``i * len(models) +
        j`` is model ``j`` in runtime ``i`` (``seconds``: every round).

    Raises:
        ValueError: No model, a module twice, a bad clock, device, precision, size, count or
            runtime (a runtime other than torch needs ``warmup >= 1``).
    """
    if not models:
        raise ValueError('compare_models needs at least one model')
    if len({id(m) for m in models}) != len(models):
        raise ValueError('compare_models got the same module twice; build it twice to '
                         'time two copies')
    if clock not in CLOCKS:
        raise ValueError(f'clock must be one of {", ".join(CLOCKS)}, got {clock!r}')
    runtimes = list(runtimes)
    if not runtimes or len(set(runtimes)) != len(runtimes):
        raise ValueError(f'runtimes must name each runtime once, got {runtimes!r}')
    dev = device
    for model in models:
        dev = _prepare(model, device, precision, batch_size, warmup, repeats)
    hw = _hw(img_size)
    deployed = [r for r in runtimes if r != 'torch']
    if deployed:  # optional packages (onnx, onnxruntime, openvino): imported when asked for
        from nose_mm.deploy.runtimes import check_runtime, runtime_forward
        for runtime in deployed:
            check_runtime(runtime, str(dev), precision)
        if warmup < 1:
            raise ValueError(f'runtimes {", ".join(deployed)} need warmup >= 1 (the first '
                             f'forward compiles / allocates), got {warmup}')
    with contextlib.ExitStack() as stack:
        work_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix='nose_mm_rt_')) \
            if deployed else None
        fns = {}
        for r, runtime in enumerate(runtimes):
            for i, model in enumerate(models):
                x = _inputs(model, batch_size, hw, dev)
                fns[r, i] = _forward_fn(model, x, dev, precision) if runtime == 'torch' else \
                    runtime_forward(runtime, model, x, work_dir,  # named as the report does
                                    f'model-{chr(97 + i) if i < 26 else f"m{i + 1}"}',
                                    torch.get_num_threads())
        times = time_interleaved(fns, repeats=repeats, warmup=warmup, clock=CLOCKS[clock],
                                 rotate=True)
        del fns  # free the timing inputs (and sessions) before measuring memory
    out = []
    sizes = [(count_params(model), count_flops(model, (_in_channels(model), ) + hw)
              if flops else None) for model in models]
    for r, runtime in enumerate(runtimes):
        for i, model in enumerate(models):
            peak = None
            if memory and runtime == 'torch':
                with alone(model, models, dev):  # the other models' weights must not count
                    peak = peak_memory(model, batch_size, hw, dev, precision,
                                       train=memory_train,
                                       optimizer=memory_optimizer)
            out.append(Measurement(params=sizes[i][0], seconds=times[r, i],
                                   peak_memory_bytes=peak, flops=sizes[i][1]))
    return out
