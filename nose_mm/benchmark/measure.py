"""Throughput and memory of a model, and interleaved comparisons of N models.

Every function takes a ``torch.nn.Module`` called as ``model(x)`` on a random
``(batch, channels, height, width)`` tensor (see
:func:`nose_mm.benchmark.info.build_model`). Throughput is the median img/s of
inference forwards; several models are timed interleaved in one process
(:func:`nose_mm.benchmark.timing.time_interleaved`); ``'fp16'`` / ``'bf16'`` run
under ``torch.autocast``. Conventions: ``benchmarks/README.md``.
"""
import contextlib
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch

from .flops import count_flops, count_params
from .timing import CLOCKS, median, paired_ratios, spread, time_interleaved

__all__ = [
    'PRECISIONS', 'DEVICES', 'MEMORY_METHODS', 'measure_throughput', 'peak_memory',
    'memory_method', 'largest_batch', 'compare_models', 'ab_ratios', 'compare', 'offloaded'
]

PRECISIONS = ('fp32', 'fp16', 'bf16')
DEVICES = ('cpu', 'cuda')
#: How :func:`peak_memory` measures, by device type.
MEMORY_METHODS = {
    'cuda': 'torch.cuda.max_memory_allocated (weights + activations, bytes)',
    'cpu': 'not measured (the process resident set is too noisy to compare models)',
}
_AUTOCAST_DTYPES = {'fp16': torch.float16, 'bf16': torch.bfloat16}
ImgSize = Union[int, Sequence[int]]


# ---------------------------------------------------------------------------
# argument checks
# ---------------------------------------------------------------------------
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


def _check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f'precision must be one of {", ".join(PRECISIONS)}, '
                         f'got {precision!r}')
    return precision


def _check_positive(name: str, value: int, minimum: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f'{name} must be an integer >= {minimum}, got {value!r}')
    return value


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
    h, w = _hw(img_size)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch_size, _in_channels(model), h, w, generator=gen)
    return x.to(device)


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def _forward_fn(model: torch.nn.Module, x: torch.Tensor, device: torch.device,
                precision: str, train: bool = False):
    """A callable running one (synchronised) forward, or forward + backward."""
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
        if train:
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                loss = _outputs_sum(model(x))
            loss.backward()
            model.zero_grad(set_to_none=True)
        else:
            with torch.inference_mode(), torch.autocast(device.type, dtype=dtype,
                                                        enabled=dtype is not None):
                model(x)
        _sync(device)

    return run


# ---------------------------------------------------------------------------
# timing
# ---------------------------------------------------------------------------
def _throughput_record(seconds: List[float], batch_size: int, img_size: ImgSize,
                       device: torch.device, precision: str, warmup: int) -> Dict[str, Any]:
    ips = [batch_size / s for s in seconds]
    return {
        'img_per_s': median(ips),
        'img_per_s_repeats': ips,
        'seconds_repeats': list(seconds),
        'batch_size': batch_size,
        'img_size': list(_hw(img_size)),
        'device': str(device),
        'precision': precision,
        'warmup': warmup,
        'repeats': len(seconds),
        'num_threads': torch.get_num_threads(),
    }


def _prepare(model: torch.nn.Module, device: Union[str, torch.device], precision: str,
             batch_size: int, warmup: int, repeats: int) -> torch.device:
    dev = _check_device(device)
    _check_precision(precision)
    _check_positive('batch_size', batch_size)
    _check_positive('repeats', repeats)
    _check_positive('warmup', warmup, minimum=0)
    model.to(dev).eval()
    return dev


def measure_throughput(model: torch.nn.Module, batch_size: int = 8, img_size: ImgSize = 224,
                       device: Union[str, torch.device] = 'cpu', precision: str = 'fp32',
                       warmup: int = 2, repeats: int = 5) -> Dict[str, Any]:
    """Inference images per second: the median over timed forwards.

    The model is moved to ``device`` and put in eval mode. Each repeat is one
    forward of a ``batch_size`` batch under ``torch.inference_mode`` (CUDA is
    synchronised inside the timed region).

    Args:
        model (torch.nn.Module): Called as ``model(x)``.
        batch_size (int): Images per forward. Defaults to 8.
        img_size (int | tuple[int, int]): Input side or ``(H, W)``.
            Defaults to 224.
        device (str | torch.device): ``'cpu'`` or ``'cuda'`` (``'cuda:N'``).
            Defaults to ``'cpu'``.
        precision (str): ``'fp32'``, ``'fp16'`` or ``'bf16'`` (autocast).
            Defaults to ``'fp32'``.
        warmup (int): Untimed forwards first. Defaults to 2.
        repeats (int): Timed forwards. Defaults to 5.

    Returns:
        dict: ``img_per_s`` (median), ``img_per_s_repeats`` and
        ``seconds_repeats`` (every repeat, in order), and the settings
        (``batch_size``, ``img_size``, ``device``, ``precision``, ``warmup``,
        ``repeats``, ``num_threads``).

    Raises:
        ValueError: Unknown device or precision, CUDA asked for but missing,
            non-positive sizes or counts.
    """
    dev = _prepare(model, device, precision, batch_size, warmup, repeats)
    run = _forward_fn(model, _inputs(model, batch_size, img_size, dev), dev, precision)
    times = time_interleaved({'model': run}, repeats=repeats, warmup=warmup)['model']
    return _throughput_record(times, batch_size, img_size, dev, precision, warmup)


# ---------------------------------------------------------------------------
# memory
# ---------------------------------------------------------------------------
def memory_method(device: Union[str, torch.device]) -> str:
    """What :func:`peak_memory` measures on ``device`` (see :data:`MEMORY_METHODS`)."""
    return MEMORY_METHODS[_check_device(device).type]


def peak_memory(model: torch.nn.Module, batch_size: int = 8, img_size: ImgSize = 224,
                device: Union[str, torch.device] = 'cpu', precision: str = 'fp32',
                train: bool = False) -> Optional[int]:
    """Peak memory of one forward (or forward + backward), in bytes.

    CUDA: ``torch.cuda.max_memory_allocated`` after resetting the peak
    statistics (the weights on the device plus the activations of the step).
    CPU: None; see ``benchmarks/README.md`` for why.

    Args:
        model (torch.nn.Module): Called as ``model(x)``.
        batch_size (int): Images per step. Defaults to 8.
        img_size (int | tuple[int, int]): Input side or ``(H, W)``.
            Defaults to 224.
        device (str | torch.device): ``'cpu'`` or ``'cuda'``. Defaults to
            ``'cpu'``.
        precision (str): ``'fp32'``, ``'fp16'`` or ``'bf16'``. Defaults to
            ``'fp32'``.
        train (bool): Measure forward + backward (gradients of the summed
            outputs) instead of an inference forward. Defaults to False.

    Returns:
        int | None: Bytes, or None on CPU.
    """
    dev = _prepare(model, device, precision, batch_size, 0, 1)
    if dev.type != 'cuda':
        return None
    if train:
        model.train()
    x = _inputs(model, batch_size, img_size, dev)
    run = _forward_fn(model, x, dev, precision, train=train)
    try:
        torch.cuda.synchronize(dev)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)
        run()
        return int(torch.cuda.max_memory_allocated(dev))
    finally:
        model.eval()


@contextlib.contextmanager
def offloaded(model: torch.nn.Module, device: Union[str, torch.device]):
    """Keep ``model`` off a CUDA ``device`` inside the block (no-op elsewhere).

    Peak CUDA memory counts every tensor on the device, so the model that is
    not being measured is moved to the CPU meanwhile and brought back after.
    """
    dev = torch.device(device)
    if dev.type != 'cuda':
        yield
        return
    model.to('cpu')
    torch.cuda.empty_cache()
    try:
        yield
    finally:
        model.to(dev)


def largest_batch(model: torch.nn.Module, memory_budget_gb: float, img_size: ImgSize = 224,
                  device: Union[str, torch.device] = 'cuda', precision: str = 'fp32',
                  train: bool = False, max_batch: int = 4096) -> Dict[str, Any]:
    """The largest batch whose step fits a GPU memory budget (the "working load").

    The paper's "working load" is the number of images a memory budget holds.
    A batch *fits* if its step (see :func:`peak_memory`, CUDA peak allocated
    bytes, weights included) stays within ``memory_budget_gb`` and does not
    run out of memory. Batches are doubled from 1 until one does not fit
    (or ``max_batch``), then the boundary is found by bisection, assuming
    memory grows with the batch.

    Args:
        model (torch.nn.Module): Called as ``model(x)``.
        memory_budget_gb (float): Budget in GiB (2**30 bytes), > 0.
        img_size (int | tuple[int, int]): Input side or ``(H, W)``.
            Defaults to 224.
        device (str | torch.device): A CUDA device. Defaults to ``'cuda'``.
        precision (str): ``'fp32'``, ``'fp16'`` or ``'bf16'``. Defaults to
            ``'fp32'``.
        train (bool): Budget a training step (forward + backward) instead of
            an inference forward. Defaults to False.
        max_batch (int): Upper end of the search. Defaults to 4096.

    Returns:
        dict: ``batch_size`` (0 if even one image does not fit),
        ``peak_bytes`` at that batch, ``budget_bytes``, ``capped`` (True if
        ``max_batch`` fits), ``tried`` (``{batch: peak bytes or None for
        out of memory}``) and the settings.

    Raises:
        ValueError: On a CPU device (there is no allocator budget to search:
            CPU memory is shared with the operating system and cached by the
            C allocator), or a non-positive budget or ``max_batch``.
    """
    if not str(device).startswith('cuda'):
        raise ValueError(f'largest_batch needs a CUDA device (it measures '
                         f'torch.cuda.max_memory_allocated against the budget), got '
                         f'device={str(device)!r}; CPU memory has no such budget')
    dev = _check_device(device)
    if not (isinstance(memory_budget_gb, (int, float)) and memory_budget_gb > 0):
        raise ValueError(f'memory_budget_gb must be a positive number, got {memory_budget_gb!r}')
    _check_positive('max_batch', max_batch)
    budget = int(memory_budget_gb * 2**30)
    tried: Dict[int, Optional[int]] = {}

    def fits(batch: int) -> bool:
        if batch not in tried:
            try:
                tried[batch] = peak_memory(model, batch, img_size, dev, precision, train=train)
            except torch.cuda.OutOfMemoryError:
                tried[batch] = None
            finally:
                model.zero_grad(set_to_none=True)
                torch.cuda.empty_cache()
        peak = tried[batch]
        return peak is not None and peak <= budget

    good, bad = 0, None
    batch = 1
    while batch <= max_batch:
        if fits(batch):
            good = batch
            batch *= 2
        else:
            bad = batch
            break
    if bad is None and good < max_batch:
        if fits(max_batch):
            good = max_batch
        else:
            bad = max_batch
    if bad is not None:
        while bad - good > 1:
            mid = (good + bad) // 2
            if fits(mid):
                good = mid
            else:
                bad = mid
    return {
        'batch_size': good,
        'peak_bytes': tried.get(good) if good else None,
        'budget_bytes': budget,
        'memory_budget_gb': memory_budget_gb,
        'capped': good == max_batch,
        'tried': {str(b): tried[b] for b in sorted(tried)},
        'img_size': list(_hw(img_size)),
        'device': str(dev),
        'precision': precision,
        'train': train,
    }


# ---------------------------------------------------------------------------
# N-way comparison (one interleaved run)
# ---------------------------------------------------------------------------
def _ratio(b: Optional[float], a: Optional[float]) -> Optional[float]:
    if a is None or b is None or a == 0:
        return None
    return b / a


def compare_models(models: Sequence[torch.nn.Module], batch_size: int = 8,
                   img_size: ImgSize = 224, device: Union[str, torch.device] = 'cpu',
                   precision: str = 'fp32', warmup: int = 2, repeats: int = 5,
                   flops: bool = True, memory: bool = True, memory_train: bool = False,
                   clock: str = 'wall') -> List[Dict[str, Any]]:
    """Measure models in one process, timed interleaved, with ratios to the first.

    Every round times each model once (after ``warmup`` untimed rounds), the
    order rotated from round to round (``A, B, C``, ``B, C, A``, ``C, A,
    B``...), so all see the same machine state and none always runs first.
    A model's throughput ratio to the baseline (the first model) is taken
    per round (its img/s over the baseline's in the same round) and
    summarised by the median and the interquartile range over the rounds.

    Args:
        models (sequence of torch.nn.Module): The baseline first, then the
            candidates; the same module may not appear twice.
        batch_size, img_size, device, precision: As in
            :func:`measure_throughput` (defaults 8, 224, ``'cpu'``, ``'fp32'``).
        warmup (int): Untimed rounds. Defaults to 2.
        repeats (int): Timed rounds (each model once per round). Defaults to 5.
        flops (bool): Count FLOPs (one trace per model). Defaults to True.
        memory (bool): Measure peak memory (:func:`peak_memory`, the other
            models off the device), after the timing. Defaults to True.
        memory_train (bool): Peak memory of a training step (forward +
            backward) instead of an inference forward. Defaults to False.
        clock (str): ``'wall'`` or ``'process'`` (see
            :data:`~nose_mm.benchmark.timing.CLOCKS`). Defaults to ``'wall'``.

    Returns:
        list[dict]: Per model, in order: ``params``, ``flops`` (MACs per image
        or None), ``throughput`` (as :func:`measure_throughput` returns, plus
        ``clock``), ``peak_memory_bytes`` and ``ratios`` to the first model:
        ``params``, ``flops``, ``throughput`` (``median``, ``q1``, ``q3`` of
        the per-round ratios, and every round's ratio in ``repeats``),
        ``throughput_medians`` (ratio of the median img/s), ``ideal_speedup``
        (baseline FLOPs / these FLOPs), ``speedup_vs_ideal`` (median paired
        ratio / ideal speed-up; 1.0: as fast as the FLOPs promise) and
        ``peak_memory``.

    Raises:
        ValueError: No model, a module given twice, an unknown clock, or bad
            settings (see :func:`measure_throughput`).
    """
    if not models:
        raise ValueError('compare_models needs at least one model')
    if len({id(m) for m in models}) != len(models):
        raise ValueError('compare_models got the same module twice; build it twice to '
                         'time two copies')
    if clock not in CLOCKS:
        raise ValueError(f'clock must be one of {", ".join(CLOCKS)}, got {clock!r}')
    dev = device
    for model in models:
        dev = _prepare(model, device, precision, batch_size, warmup, repeats)
    hw = _hw(img_size)
    names = [str(i) for i in range(len(models))]
    out = [{'params': count_params(model),
            'flops': count_flops(model, (_in_channels(model), ) + hw) if flops else None}
           for model in models]
    fns = {name: _forward_fn(model, _inputs(model, batch_size, hw, dev), dev, precision)
           for name, model in zip(names, models)}
    times = time_interleaved(fns, repeats=repeats, warmup=warmup, clock=CLOCKS[clock],
                             rotate=True)
    del fns  # free the timing inputs before measuring memory
    for name, entry, model in zip(names, out, models):
        entry['throughput'] = dict(_throughput_record(times[name], batch_size, hw, dev,
                                                      precision, warmup), clock=clock)
        with contextlib.ExitStack() as stack:
            for other in models:  # the other models' weights must not count
                if other is not model:
                    stack.enter_context(offloaded(other, dev))
            entry['peak_memory_bytes'] = (peak_memory(
                model, batch_size, hw, dev, precision, train=memory_train) if memory else None)
    base = out[0]
    for name, entry in zip(names, out):
        paired = paired_ratios(times, names[0], name)  # this img/s / baseline img/s
        flop_ratio = _ratio(entry['flops'], base['flops'])
        ideal = 1.0 / flop_ratio if flop_ratio else None
        throughput = dict(spread(paired), repeats=paired)
        entry['ratios'] = {
            'params': _ratio(entry['params'], base['params']),
            'flops': flop_ratio,
            'throughput': throughput,
            'throughput_medians': _ratio(entry['throughput']['img_per_s'],
                                         base['throughput']['img_per_s']),
            'ideal_speedup': ideal,
            'speedup_vs_ideal': _ratio(throughput['median'], ideal),
            'peak_memory': _ratio(entry['peak_memory_bytes'], base['peak_memory_bytes']),
        }
    return out


def ab_ratios(ratios: Dict[str, Any]) -> Dict[str, Any]:
    """The flat B / A summary of two models from B's :func:`compare_models` ``ratios``.

    Returns:
        dict: ``params``, ``flops``, ``throughput`` (ratio of the medians),
        ``throughput_paired`` (median of the per-round ratios) with
        ``throughput_paired_repeats``, ``ideal_speedup``, ``speedup_vs_ideal``
        and ``paired_speedup_vs_ideal`` (the two throughput ratios over the
        ideal speed-up), ``peak_memory`` and ``largest_batch`` if measured.
    """
    out = {
        'params': ratios['params'], 'flops': ratios['flops'],
        'throughput': ratios['throughput_medians'],
        'throughput_paired': ratios['throughput']['median'],
        'throughput_paired_repeats': ratios['throughput']['repeats'],
        'ideal_speedup': ratios['ideal_speedup'],
        'speedup_vs_ideal': _ratio(ratios['throughput_medians'], ratios['ideal_speedup']),
        'paired_speedup_vs_ideal': ratios['speedup_vs_ideal'],
        'peak_memory': ratios['peak_memory'],
    }
    if 'largest_batch' in ratios:
        out['largest_batch'] = ratios['largest_batch']
    return out


def compare(model_a: torch.nn.Module, model_b: torch.nn.Module, batch_size: int = 8,
            img_size: ImgSize = 224, device: Union[str, torch.device] = 'cpu',
            precision: str = 'fp32', warmup: int = 2, repeats: int = 5,
            flops: bool = True, memory: bool = True,
            memory_train: bool = False) -> Dict[str, Any]:
    """Two models by :func:`compare_models`, as B / A ratios.

    Args:
        model_a (torch.nn.Module): The reference (e.g. the baseline).
        model_b (torch.nn.Module): The candidate (e.g. the pruned model).
        batch_size, img_size, device, precision, warmup, repeats, flops,
            memory, memory_train: As in :func:`compare_models`.

    Returns:
        dict: ``a`` and ``b`` (the entries of :func:`compare_models`),
        ``ratios`` (B / A, :func:`ab_ratios`) and ``memory_method``.
    """
    a, b = compare_models([model_a, model_b], batch_size, img_size, device, precision,
                          warmup, repeats, flops=flops, memory=memory,
                          memory_train=memory_train)
    return {'a': a, 'b': b, 'ratios': ab_ratios(b['ratios']),
            'memory_method': memory_method(device) if memory else None}
