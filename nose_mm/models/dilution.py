"""Dilution learning (docs/method.md §4, §5) in plain functions, and the Dilutable protocol."""
import math
import numbers
from typing import (Callable, Dict, Iterable, List, Optional, Protocol, Sequence, Tuple,
                    runtime_checkable)

import torch

__all__ = [
    'META_LAM', 'META_DILUTED', 'META_COMPENSATE', 'META_REMOVED', 'dilute_residual',
    'removed_residual', 'linear_lam', 'cosine_lam', 'get_lam_schedule',
    'check_lam', 'normalize_layer_indices', 'Dilutable', 'DilutableMixin',
    'find_dilutable_modules'
]


# Keys of a checkpoint's ``meta``, written by DilutionHook, read by prune and the converters.
META_LAM = 'dilution_lam'  # float: lam the saved weights were trained with
META_DILUTED = 'dilution_layers'  # list[int]: diluted layers
META_COMPENSATE = 'dilution_compensate'  # bool: compensated residuals
META_REMOVED = 'removed_layers'  # list[int]: pruned layers (no LN1 / attention)


def dilute_residual(x: torch.Tensor, branch: Optional[torch.Tensor], lam: float,
                    compensate: bool = True) -> torch.Tensor:
    """Combine a block input with its diluted attention branch (docs/method.md §4).

    Args:
        x (torch.Tensor): The block input (the residual stream).
        branch (torch.Tensor, optional): ``DropPath(Attn(LN1(x)))``; None only at ``lam == 0``.
        lam (float): Dilution coefficient in [0, 1]; 1 is a standard block.
        compensate (bool): ``(2 - lam) * x + lam * branch``, not ``x + ...``. Defaults to True.

    Returns:
        torch.Tensor: The new residual stream (exact at ``lam`` 0 and 1).
    """
    if lam == 1:
        return x + branch
    if lam == 0:
        return removed_residual(x, compensate)
    if branch is None:
        raise ValueError(f'the attention branch is needed for lam={lam} (only lam=0 skips it)')
    if compensate:
        return (2.0 - lam) * x + lam * branch
    return x + lam * branch


def removed_residual(x: torch.Tensor, compensate: bool = True) -> torch.Tensor:
    """The residual stream of a pruned block before its MLP: ``2 * x`` or ``x``.

    Args:
        x (torch.Tensor): The block input.
        compensate (bool): Return ``2 * x`` instead of ``x``. Defaults to True.

    Returns:
        torch.Tensor: The residual stream.
    """
    return 2.0 * x if compensate else x


def _fraction(progress: float, begin: float, end: float) -> float:
    """How far ``progress`` is from ``begin`` to ``end``, checked and clipped to [0, 1]."""
    if not (math.isfinite(progress) and math.isfinite(begin) and math.isfinite(end)):
        raise ValueError(f'progress, begin and end must be finite numbers, got '
                         f'{progress!r}, {begin!r}, {end!r}')
    if end < begin:
        raise ValueError(f'end ({end!r}) must be >= begin ({begin!r})')
    if progress >= end:
        return 1.0
    if progress <= begin:
        return 0.0
    return (progress - begin) / (end - begin)


def linear_lam(progress: float, begin: float, end: float) -> float:
    """Linear decay: 1 up to ``begin``, 0 from ``end`` on (docs/method.md §4).

    Args:
        progress (float): Training progress (epoch, iteration or fraction).
        begin (float): Progress at which ``lam`` starts to fall from 1.
        end (float): Progress at which ``lam`` reaches 0 (``end >= begin``).

    Returns:
        float: ``lam`` in [0, 1].
    """
    return 1.0 - _fraction(progress, begin, end)


def cosine_lam(progress: float, begin: float, end: float) -> float:
    """Half-cosine decay from 1 at ``begin`` to 0 at ``end``: ``(1 + cos(pi * t)) / 2``.

    Args:
        progress (float): Training progress, same unit as ``begin``/``end``.
        begin (float): Progress at which ``lam`` starts to fall from 1.
        end (float): Progress at which ``lam`` reaches 0 (``end >= begin``).

    Returns:
        float: ``lam`` in [0, 1].
    """
    return 0.5 * (1.0 + math.cos(math.pi * _fraction(progress, begin, end)))


LAM_SCHEDULES: Dict[str, Callable[[float, float, float], float]] = {
    'linear': linear_lam,
    'cosine': cosine_lam,
}


def get_lam_schedule(name: str) -> Callable[[float, float, float], float]:
    """Look up a schedule of :data:`LAM_SCHEDULES` by name.

    Args:
        name (str): ``'linear'`` or ``'cosine'``.

    Returns:
        callable: ``fn(progress, begin, end) -> lam``.

    Raises:
        ValueError: If ``name`` is not a known schedule.
    """
    if name not in LAM_SCHEDULES:
        raise ValueError(f'unknown dilution schedule {name!r}; choose from '
                         f'{sorted(LAM_SCHEDULES)}')
    return LAM_SCHEDULES[name]


def check_lam(lam: float) -> float:
    """Return ``lam`` as a float after checking it lies in [0, 1].

    Raises:
        ValueError: If ``lam`` is not a real number in [0, 1].
    """
    if isinstance(lam, bool):
        raise ValueError(f'lam must be a number in [0, 1], got {lam!r}')
    try:
        value = float(lam)
    except (TypeError, ValueError):
        raise ValueError(f'lam must be a number in [0, 1], got {lam!r}') from None
    if not 0.0 <= value <= 1.0:  # also rejects NaN
        raise ValueError(f'lam must be in [0, 1], got {lam!r}')
    return value


def normalize_layer_indices(indices: Optional[Iterable[int]], num_layers: int,
                            name: str = 'layers') -> Tuple[int, ...]:
    """Validate layer indices and return them sorted, negatives normalised.

    Args:
        indices (iterable of int, optional): The indices (``-1``: the last); None means none.
        num_layers (int): Number of layers of the model.
        name (str): Argument name for error messages. Defaults to ``'layers'``.

    Returns:
        tuple[int]: Sorted, non-negative, unique indices.

    Raises:
        ValueError: An index not an int, out of range, or twice (``[11, -1]`` of 12 layers).
    """
    if indices is None:
        return ()
    if isinstance(indices, (str, bytes)) or not isinstance(indices, Iterable):
        raise ValueError(f'{name} must be a sequence of layer indices, got {indices!r}')
    seen: Dict[int, int] = {}
    for index in indices:
        if isinstance(index, bool) or not isinstance(index, numbers.Integral):
            raise ValueError(f'{name}: layer index {index!r} is not an int')
        index = int(index)
        if not -num_layers <= index < num_layers:
            raise ValueError(f'{name}: layer index {index} is out of range; the model has '
                             f'{num_layers} layers, allowed indices are 0..{num_layers - 1} '
                             f'(or -{num_layers}..-1 from the end)')
        normalised = index % num_layers
        if normalised in seen:
            raise ValueError(f'{name}: layer {normalised} is given twice '
                             f'(as {seen[normalised]} and {index})')
        seen[normalised] = index
    return tuple(sorted(seen))


@runtime_checkable
class Dilutable(Protocol):
    """What a backbone offers to be diluted and pruned (structural protocol).

    The hooks' only interface to a backbone; layer indices are 0-based among its attention
    layers.
    """

    @property
    def num_dilutable_layers(self) -> int: ...
    @property
    def diluted_layers(self) -> Tuple[int, ...]: ...
    @property
    def removed_layers(self) -> Tuple[int, ...]: ...
    @property
    def dilution_compensate(self) -> bool: ...

    def set_dilution_lam(self, lam: float) -> None: ...
    def get_dilution_lam(self) -> float: ...
    def set_diluted_layers(self, indices: Sequence[int]) -> None: ...
    def set_dilution_compensate(self, compensate: bool) -> None: ...


class DilutableMixin:
    """Bookkeeping for :class:`Dilutable` backbones.

    A backbone calls :meth:`_init_dilution` and implements :meth:`_apply_dilution`.
    """

    _num_dilutable_layers: int
    _diluted_layers: Tuple[int, ...]
    _removed_layers: Tuple[int, ...]
    _dilution_lam: float
    _dilution_compensate: bool

    def _init_dilution(self, num_layers: int, diluted_layers: Optional[Sequence[int]],
                       removed_layers: Optional[Sequence[int]], compensate: bool,
                       lam: float) -> None:
        """Validate the constructor arguments and store them (no apply)."""
        if not isinstance(compensate, bool):
            raise ValueError(f'compensate must be True or False, got {compensate!r}')
        removed = normalize_layer_indices(removed_layers, num_layers, 'removed_layers')
        diluted = normalize_layer_indices(diluted_layers, num_layers, 'diluted_layers')
        overlap = sorted(set(removed) & set(diluted))
        if overlap:
            raise ValueError(f'layers {overlap} are both in diluted_layers and removed_layers; '
                             f'a removed layer has no attention left to dilute')
        self._num_dilutable_layers = num_layers
        self._removed_layers = removed
        self._diluted_layers = diluted
        self._dilution_compensate = compensate
        self._dilution_lam = check_lam(lam)

    def _apply_dilution(self) -> None:
        """Push the stored state into the layers (implemented by the backbone)."""
        raise NotImplementedError

    @property
    def num_dilutable_layers(self) -> int:
        """int: Number of attention layers (indices are ``0..n-1``)."""
        return self._num_dilutable_layers

    @property
    def diluted_layers(self) -> Tuple[int, ...]:
        """tuple[int]: Layers whose attention branch is scaled by ``lam``."""
        return self._diluted_layers

    @property
    def removed_layers(self) -> Tuple[int, ...]:
        """tuple[int]: Pruned layers (no LN1, no attention parameters)."""
        return self._removed_layers

    @property
    def dilution_compensate(self) -> bool:
        """bool: Whether residuals are compensated (``(2 - lam) * x``)."""
        return self._dilution_compensate

    def set_dilution_lam(self, lam: float) -> None:
        """Set ``lam`` in [0, 1] for every diluted layer."""
        self._dilution_lam = check_lam(lam)
        self._apply_dilution()

    def get_dilution_lam(self) -> float:
        """float: The current ``lam`` of the diluted layers."""
        return self._dilution_lam

    def set_diluted_layers(self, indices: Optional[Sequence[int]]) -> None:
        """Choose the diluted layers; all others run with ``lam = 1``.

        Raises:
            ValueError: Bad, duplicated or removed layer indices.
        """
        diluted = normalize_layer_indices(indices, self._num_dilutable_layers, 'diluted_layers')
        overlap = sorted(set(diluted) & set(self._removed_layers))
        if overlap:
            raise ValueError(f'cannot dilute layers {overlap}: they are removed (pruned); '
                             f'removed_layers={list(self._removed_layers)}')
        self._diluted_layers = diluted
        self._apply_dilution()

    def set_dilution_compensate(self, compensate: bool) -> None:
        """Switch the residual compensation (diluted and removed layers alike)."""
        if not isinstance(compensate, bool):
            raise ValueError(f'compensate must be True or False, got {compensate!r}')
        self._dilution_compensate = compensate
        self._apply_dilution()


def find_dilutable_modules(model: torch.nn.Module) -> List[Dilutable]:
    """All submodules of ``model`` (itself included) implementing :class:`Dilutable`.

    Args:
        model (torch.nn.Module): Any model; ``modules()`` reaches through DDP wrappers.

    Returns:
        list: The dilutable modules, outermost first.
    """
    return [m for m in model.modules() if isinstance(m, Dilutable)]
