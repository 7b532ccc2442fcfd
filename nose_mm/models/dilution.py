"""Dilution learning (docs/method.md §4 and §5) in plain functions.

No OpenMMLab imports here: the formulas, the ``lam`` schedules, the layer-index
validation and the :class:`Dilutable` protocol can be read and tested on their
own. The mm-specific parts (:class:`~nose_mm.models.backbones.NoseVisionTransformer`,
:class:`~nose_mm.engine.hooks.DilutionHook`) are thin adapters around them.

Dilution of a pre-norm transformer block with coefficient ``lam`` in [0, 1]::

    x = (2 - lam) * x + lam * DropPath(Attn(LN1(x)))   # compensated (default)
    x = x + lam * DropPath(Attn(LN1(x)))               # uncompensated variant
    x = x + DropPath(MLP(LN2(x)))

At ``lam = 0`` the attention branch is not computed at all, and the pruned
block (no LN1, no attention parameters) computes exactly the same thing::

    x = 2 * x (compensated) or x (uncompensated);  x = x + MLP(LN2(x))

The :class:`Dilutable` protocol is the only interface the engine hooks use to
talk to a backbone, so another architecture (another family) becomes
dilutable by implementing the same few methods; :class:`DilutableMixin`
implements the bookkeeping and leaves one method to the backbone.
"""
import math
import numbers
from typing import (Callable, Dict, Iterable, List, Optional, Protocol, Sequence, Tuple,
                    runtime_checkable)

import torch

__all__ = [
    'META_LAM', 'META_DILUTED', 'META_COMPENSATE', 'META_REMOVED', 'dilute_residual',
    'removed_residual', 'linear_lam', 'cosine_lam', 'LAM_SCHEDULES', 'get_lam_schedule',
    'check_lam', 'normalize_layer_indices', 'Dilutable', 'DilutableMixin',
    'find_dilutable_modules'
]


# Keys of a checkpoint's ``meta`` written by DilutionHook and read by the prune
# tool and the converters.
META_LAM = 'dilution_lam'  # float: lam the saved weights were trained with
META_DILUTED = 'dilution_layers'  # list[int]: diluted layers
META_COMPENSATE = 'dilution_compensate'  # bool: compensated residuals
META_REMOVED = 'removed_layers'  # list[int]: pruned layers (no LN1 / attention)


# ---------------------------------------------------------------------------
# The residual formulas
# ---------------------------------------------------------------------------
def dilute_residual(x: torch.Tensor, branch: Optional[torch.Tensor], lam: float,
                    compensate: bool = True) -> torch.Tensor:
    """Combine a block input with its (diluted) attention branch.

    Args:
        x (torch.Tensor): The block input (the residual stream).
        branch (torch.Tensor, optional): The attention branch output
            ``DropPath(Attn(LN1(x)))`` (with layer scale if any). May be None
            only when ``lam == 0`` (the branch is then not needed).
        lam (float): Dilution coefficient in [0, 1]; 1 is a standard block.
        compensate (bool): Use ``(2 - lam) * x + lam * branch`` (the
            reference default) instead of ``x + lam * branch``.
            Defaults to True.

    Returns:
        torch.Tensor: The new residual stream. ``lam == 1`` gives exactly
        ``x + branch``; ``lam == 0`` gives exactly :func:`removed_residual`.
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
    """The residual stream of a pruned (attention-free) block before its MLP.

    Args:
        x (torch.Tensor): The block input.
        compensate (bool): Return ``2 * x`` (compensated) instead of ``x``.
            Defaults to True.

    Returns:
        torch.Tensor: ``2 * x`` or ``x``.
    """
    return 2.0 * x if compensate else x


# ---------------------------------------------------------------------------
# Schedules: lam as a pure function of the training progress
# ---------------------------------------------------------------------------
def _check_progress(progress: float, begin: float, end: float) -> None:
    """Raise ValueError unless all three are finite and ``end >= begin``."""
    if not (math.isfinite(progress) and math.isfinite(begin) and math.isfinite(end)):
        raise ValueError(f'progress, begin and end must be finite numbers, got '
                         f'{progress!r}, {begin!r}, {end!r}')
    if end < begin:
        raise ValueError(f'end ({end!r}) must be >= begin ({begin!r})')


def _fraction(progress: float, begin: float, end: float) -> float:
    """How far ``progress`` is from ``begin`` to ``end``, checked and clipped to [0, 1]."""
    _check_progress(progress, begin, end)
    if progress >= end:
        return 1.0
    if progress <= begin:
        return 0.0
    return (progress - begin) / (end - begin)


def linear_lam(progress: float, begin: float, end: float) -> float:
    """Linear decay: 1 up to ``begin``, 0 from ``end`` on, linear in between.

    The reference schedule ``lam = max(0, 1 - epoch / 299)`` is
    ``linear_lam(epoch, 0, 299)``.

    Args:
        progress (float): Training progress (epoch, iteration or fraction, in
            the same unit as ``begin`` and ``end``).
        begin (float): Progress at which ``lam`` starts to fall from 1.
        end (float): Progress at which ``lam`` reaches 0 (``end >= begin``;
            ``end == begin`` is a step from 1 to 0 at ``end``).

    Returns:
        float: ``lam`` in [0, 1].
    """
    return 1.0 - _fraction(progress, begin, end)


def cosine_lam(progress: float, begin: float, end: float) -> float:
    """Half-cosine decay: 1 up to ``begin``, 0 from ``end`` on.

    In between ``lam = (1 + cos(pi * t)) / 2`` with
    ``t = (progress - begin) / (end - begin)``.

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


# ---------------------------------------------------------------------------
# Validation helpers
# ---------------------------------------------------------------------------
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

    Negative indices count from the end like Python (and like mmpretrain's
    ``out_indices``): ``-1`` is the last layer.

    Args:
        indices (iterable of int, optional): The indices; None means none.
        num_layers (int): Number of layers of the model.
        name (str): Argument name used in error messages. Defaults to
            ``'layers'``.

    Returns:
        tuple[int]: Sorted, non-negative, unique indices.

    Raises:
        ValueError: If an index is not an int, lies outside
            ``[-num_layers, num_layers - 1]``, or appears twice (also after
            normalisation, e.g. ``[11, -1]`` with 12 layers).
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


# ---------------------------------------------------------------------------
# The protocol the hooks use
# ---------------------------------------------------------------------------
@runtime_checkable
class Dilutable(Protocol):
    """What a backbone offers to be diluted and pruned (structural protocol).

    Hooks find these modules with :func:`find_dilutable_modules` and talk to
    them only through this interface. Layer indices are positions in the
    backbone's sequence of attention layers, 0-based.

    Members:
        num_dilutable_layers (int): Number of attention layers (property).
        diluted_layers (tuple[int]): Layers whose attention branch is scaled by
            ``lam`` (property).
        removed_layers (tuple[int]): Pruned layers, which hold no attention
            parameters (property, fixed at construction).
        dilution_compensate (bool): Whether the residual is compensated
            (property).
        set_dilution_lam(lam): Set ``lam`` (in [0, 1]) of every diluted layer.
        get_dilution_lam(): The current ``lam``.
        set_diluted_layers(indices): Choose the diluted layers (the others go
            back to ``lam = 1``; removed layers cannot be chosen).
        set_dilution_compensate(flag): Switch the compensation on or off.
    """

    @property
    def num_dilutable_layers(self) -> int:
        ...

    @property
    def diluted_layers(self) -> Tuple[int, ...]:
        ...

    @property
    def removed_layers(self) -> Tuple[int, ...]:
        ...

    @property
    def dilution_compensate(self) -> bool:
        ...

    def set_dilution_lam(self, lam: float) -> None:
        ...

    def get_dilution_lam(self) -> float:
        ...

    def set_diluted_layers(self, indices: Sequence[int]) -> None:
        ...

    def set_dilution_compensate(self, compensate: bool) -> None:
        ...


class DilutableMixin:
    """Bookkeeping for :class:`Dilutable` backbones.

    A backbone using it calls :meth:`_init_dilution` in its constructor and
    implements :meth:`_apply_dilution`, which pushes the current state
    (``self._dilution_lam``, ``self._diluted_layers``,
    ``self._dilution_compensate``) into its layers. The mixin validates every
    change and calls :meth:`_apply_dilution` afterwards.
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
        model (torch.nn.Module): Any model (unwrap DDP wrappers first, or not:
            ``model.modules()`` reaches through them).

    Returns:
        list: The dilutable modules, outermost first.
    """
    return [m for m in model.modules() if isinstance(m, Dilutable)]
