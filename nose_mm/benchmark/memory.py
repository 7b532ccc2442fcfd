"""Memory of one step on any machine: live tensor bytes tracked op by op, real or fake tensors.

Why: the paper's headline figure is memory (DeiT-B 40% "improves working load by 20.5% in
the same memory budget"), and ``torch.cuda.max_memory_allocated`` exists only on a GPU.
:class:`LiveBytes` is a ``TorchDispatchMode`` that sees every tensor an op returns; it
counts the bytes of the storages alive (the weights, the input, the optimizer's state
and every op output until it is freed) and keeps the peak, taken right after each op
allocated its outputs, before its inputs can be freed (as the CUDA allocator's peak).
Under ``FakeTensorMode`` the same step allocates nothing, so a DeiT-B training step at
batch 1024 is counted in seconds on a laptop; real and fake tensors give the same bytes
(tested). The working load (:func:`tracked_largest_batch`) is the largest batch whose
step fits a budget.

What the count cannot see (each makes a GPU's figure larger): the allocator's rounding
(CUDA: blocks of 512 bytes, then segments) and its cache, cuBLAS / cuDNN workspaces, the
CUDA context, scratch buffers a kernel allocates inside one op (fused attention's tiles),
and the input pipeline. What the kernel chooses to keep is seen: the math attention path
stores the ``B x heads x N x N`` attention matrix for backward, the fused (flash) path only
the output and a ``B x heads x N`` log-sum-exp; both are tracked (:data:`ATTENTION`).
Mixed precision on CPU is bf16 autocast: the same element sizes as fp16 on CUDA, with
the CPU's autocast op lists. Measured figures: ``benchmarks/README.md``.
"""
import contextlib
import copy
import itertools
import weakref
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

import torch
from torch._subclasses.fake_tensor import FakeCopyMode, FakeTensorMode
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.weak import WeakIdKeyDictionary

__all__ = ['TRACKED_METHOD', 'ATTENTION', 'OPTIMIZERS', 'LiveBytes', 'StepMemory',
           'TrackedStep', 'tracked_peak', 'tracked_largest_batch']

#: The method's name, as ``benchmark.json`` records it.
TRACKED_METHOD = ('tracked tensor bytes (nose_mm.benchmark.memory.LiveBytes: live storages '
                  'of weights, input, optimizer state and op outputs, peak after each op)')
#: Attention paths: ``'fused'`` lets torch choose its fused SDPA kernels (flash on CPU,
#: flash / memory-efficient on CUDA), ``'math'`` forces the reference path that stores the
#: attention matrix.
ATTENTION = {
    'fused': [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION,
              SDPBackend.CUDNN_ATTENTION],
    'math': [SDPBackend.MATH],
}
#: Optimizers whose state a training step may count (created by a step; learning rate 0,
#: so a measured step leaves the weights as they were).
OPTIMIZERS = {'sgd': lambda p: torch.optim.SGD(p, lr=0.0, momentum=0.9),
              'adamw': lambda p: torch.optim.AdamW(p, lr=0.0)}
_AUTOCAST = {'fp16': torch.float16, 'bf16': torch.bfloat16}
_ATTENTION_OPS = ('attention', 'softmax')


def _storages(tensor: torch.Tensor) -> List[torch.UntypedStorage]:
    if not isinstance(tensor, torch.Tensor) or tensor.is_sparse:
        return []
    return [tensor.untyped_storage()]


class LiveBytes(TorchDispatchMode):
    """Bytes of the tensor storages alive while the mode is on, and their peak.

    Every storage is counted once (views share it) from when it is seen (``track`` or an
    op's output) until Python frees it.

    Args:
        tensors (iterable of torch.Tensor): Alive before the step (weights, input,
            optimizer state); counted from the start. Defaults to ``()``.

    Attributes:
        current (int): Bytes alive now.
        peak (int): Most bytes alive at once.
        ops (Counter): Calls of attention / softmax ops by name (which kernel ran).
    """

    def __init__(self, tensors: Iterable[torch.Tensor] = ()) -> None:
        super().__init__()
        self._live: WeakIdKeyDictionary = WeakIdKeyDictionary()
        self._refs: List[Any] = []
        self.current = self.peak = 0
        self.ops: Counter = Counter()
        for tensor in tensors:
            self.track(tensor)

    def _free(self, nbytes: int, _ref: Any = None) -> None:
        self.current -= nbytes

    def track(self, tensor: Any) -> None:
        """Count ``tensor``'s storage from now on (a no-op if it is counted already)."""
        for storage in _storages(tensor):
            if storage in self._live:
                continue
            nbytes = storage.nbytes()
            self._live[storage] = nbytes
            self._refs.append(weakref.ref(storage, lambda ref, n=nbytes: self._free(n, ref)))
            self.current += nbytes
        self.peak = max(self.peak, self.current)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func.name()
        if any(key in name for key in _ATTENTION_OPS):
            self.ops[name] += 1
        for tensor in tree_flatten(out)[0]:
            self.track(tensor)
        return out


@dataclass
class StepMemory:
    """The tracked memory of one step (:func:`tracked_peak`).

    Attributes:
        peak_bytes (int): Most bytes alive at once during the step.
        base_bytes (int): Bytes alive before it (weights, input, optimizer state).
        attention_ops (dict): Attention / softmax ops that ran, by name, and their calls.
    """

    peak_bytes: int
    base_bytes: int
    attention_ops: Dict[str, int] = field(default_factory=dict)


def _reduce(out: Any) -> torch.Tensor:
    """The float sum of every tensor of a model output (the training step's loss)."""
    tensors = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
    if not tensors:
        raise TypeError(f'cannot reduce a model output of type {type(out).__name__}')
    return sum(t.float().sum() for t in tensors)


def _check(batch_size: int, precision: str, attention: str, optimizer: Optional[str]) -> None:
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f'batch_size must be an integer >= 1, got {batch_size!r}')
    if precision not in ('fp32', *_AUTOCAST):
        raise ValueError(f'precision must be one of fp32, {", ".join(_AUTOCAST)}, '
                         f'got {precision!r}')
    if attention not in ATTENTION:
        raise ValueError(f'attention must be one of {", ".join(ATTENTION)}, got {attention!r}')
    if optimizer is not None and optimizer not in OPTIMIZERS:
        raise ValueError(f'optimizer must be one of {", ".join(OPTIMIZERS)} or None, '
                         f'got {optimizer!r}')


class TrackedStep:
    """One inference or training step of a copy of ``model``, tracked at any batch size.

    Inference: ``model(x)`` under ``torch.no_grad`` (the bytes of ``inference_mode``,
    whose Python dispatch would see SDPA as one op, never its math path). Training:
    forward, backward of the summed outputs, the optimizer's step and
    ``zero_grad(set_to_none=True)``, as mmengine's ``OptimWrapper`` does; the optimizer's
    state is created by one untracked step at the first call, so it counts as in every
    later step. The copy is made once, so a batch search reuses it.

    Args:
        model (torch.nn.Module): Called as ``model(x)``; never changed (a fake copy is
            measured with ``fake``, a deep copy otherwise).
        precision (str): ``'fp32'``, or ``'fp16'`` / ``'bf16'`` autocast. Defaults to ``'fp32'``.
        train (bool): A training step instead of inference. Defaults to False.
        optimizer (str, optional): ``'sgd'`` (momentum) or ``'adamw'`` state counted in a
            training step. Defaults to None (weights, gradients and activations only).
        attention (str): ``'fused'`` or ``'math'`` (:data:`ATTENTION`). Defaults to ``'fused'``.
        fake (bool): Fake tensors (no memory allocated, any size) instead of real ones.
            Defaults to True.
        in_channels (int, optional): Input channels. Defaults to ``model.in_channels`` or 3.

    Raises:
        ValueError: A bad precision, attention path or optimizer.
    """

    def __init__(self, model: torch.nn.Module, precision: str = 'fp32', train: bool = False,
                 optimizer: Optional[str] = None, attention: str = 'fused', fake: bool = True,
                 in_channels: Optional[int] = None) -> None:
        _check(1, precision, attention, optimizer)
        if optimizer is not None and not train:
            raise ValueError(f'optimizer={optimizer!r} needs train=True (inference has no '
                             f'optimizer state)')
        self.channels = in_channels or int(getattr(model, 'in_channels', 3))
        self.train, self.attention, self.optimizer = train, attention, optimizer
        self.dtype = _AUTOCAST.get(precision)
        self.fake_mode = FakeTensorMode() if fake else None
        on_cpu = all(t.device.type == 'cpu' for t in itertools.chain(model.parameters(),
                                                                      model.buffers()))
        source = model if on_cpu else copy.deepcopy(model).cpu()
        with FakeCopyMode(self.fake_mode) if fake else contextlib.nullcontext():
            self.net = copy.deepcopy(source)
        self.net.train(train)
        self.opt: Any = None

    def _autocast(self) -> Any:
        return torch.autocast('cpu', dtype=self.dtype, enabled=self.dtype is not None)

    def _step(self, x: torch.Tensor) -> None:
        with self._autocast():
            loss = _reduce(self.net(x))
        loss.backward()
        del loss
        if self.opt is not None:
            self.opt.step()
        self.net.zero_grad(set_to_none=True)

    def __call__(self, batch_size: int, img_size: Tuple[int, int]) -> StepMemory:
        """Tracked bytes of the step at ``batch_size`` images of ``img_size`` ``(H, W)``."""
        _check(batch_size, 'fp32', self.attention, None)
        with self.fake_mode or contextlib.nullcontext(), \
                sdpa_kernel(ATTENTION[self.attention]):
            x = torch.zeros(batch_size, self.channels, *img_size)
            if self.optimizer and self.opt is None:
                self.opt = OPTIMIZERS[self.optimizer](
                    [p for p in self.net.parameters() if p.requires_grad])
                self._step(x)  # creates the optimizer's state
            state = [t for s in (self.opt.state.values() if self.opt else ())
                     for t in s.values() if isinstance(t, torch.Tensor)]
            counter = LiveBytes([*self.net.parameters(), *self.net.buffers(), x, *state])
            base = counter.current
            with counter:
                if self.train:
                    self._step(x)
                else:
                    with torch.no_grad(), self._autocast():
                        out = self.net(x)
                    del out
        return StepMemory(peak_bytes=counter.peak, base_bytes=base,
                          attention_ops=dict(counter.ops))


def tracked_peak(model: torch.nn.Module, batch_size: int = 8,
                 img_size: Tuple[int, int] = (224, 224), precision: str = 'fp32',
                 train: bool = False, optimizer: Optional[str] = None,
                 attention: str = 'fused', fake: bool = True,
                 in_channels: Optional[int] = None) -> StepMemory:
    """Tracked bytes of one step of ``model`` (:class:`TrackedStep`, its arguments).

    Args:
        model (torch.nn.Module): Called as ``model(x)``; never changed.
        batch_size (int): Images per step. Defaults to 8.
        img_size (tuple[int, int]): ``(H, W)``. Defaults to ``(224, 224)``.
        precision, train, optimizer, attention, fake, in_channels: As
            :class:`TrackedStep`. Defaults to fp32 inference, fused attention, fake tensors.

    Returns:
        StepMemory: Peak and base bytes, the attention ops that ran.

    Raises:
        ValueError: A bad batch size, precision, attention path or optimizer.
    """
    _check(batch_size, precision, attention, optimizer)
    return TrackedStep(model, precision, train, optimizer, attention, fake,
                       in_channels)(batch_size, img_size)


def tracked_largest_batch(peak: Callable[[int], int], budget_bytes: int,
                          max_batch: int = 4096, min_batch: int = 1
                          ) -> Tuple[int, Dict[int, int]]:
    """The largest batch whose step's peak (``peak(batch)``) fits ``budget_bytes``.

    Beyond a few images a step's tracked peak grows by a constant per image, so the
    batch predicted from batches 32 and 64 is checked first, with its neighbour above;
    when that does not settle it, doubling and bisection do (``peak`` non-decreasing).

    Args:
        peak (callable): Batch size -> tracked peak bytes.
        budget_bytes (int): The budget, > 0.
        max_batch (int): Upper end of the search. Defaults to 4096.
        min_batch (int): Lower end (2 for a training step with batch norm, which refuses
            one image). Defaults to 1.

    Returns:
        tuple: ``(batch, tried)``: the batch (0: ``min_batch`` does not fit), every batch
        tried -> its peak.
    """
    if budget_bytes <= 0:
        raise ValueError(f'the memory budget must be positive, got {budget_bytes} bytes')
    tried: Dict[int, int] = {}

    def fits(batch: int) -> bool:
        if batch not in tried:
            tried[batch] = peak(batch)
        return tried[batch] <= budget_bytes

    if not fits(min_batch):
        return 0, tried
    low, high = min(32, max_batch), min(64, max_batch)
    guess = high
    if high > low and fits(low) and fits(high) and tried[high] > tried[low]:
        per_image = (tried[high] - tried[low]) / (high - low)
        guess = int(high + (budget_bytes - tried[high]) // per_image)
    guess = min(max(guess, 1), max_batch)
    if fits(guess) and (guess == max_batch or not fits(guess + 1)):
        return guess, tried
    good = max(b for b, v in tried.items() if v <= budget_bytes)
    bad = min((b for b, v in tried.items() if v > budget_bytes), default=None)
    while bad is None and good < max_batch:
        batch = min(2 * good, max_batch)
        good, bad = (batch, None) if fits(batch) else (good, batch)
    while bad is not None and bad - good > 1:
        mid = (good + bad) // 2
        good, bad = (mid, bad) if fits(mid) else (good, mid)
    return good, tried
