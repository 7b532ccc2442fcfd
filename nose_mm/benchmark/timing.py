"""Interleaved timing (A, B, A, B...: machine drift hits all alike) and its statistics."""
import statistics
import time
from typing import Callable, Dict, List, Sequence

__all__ = ['CLOCKS', 'time_interleaved', 'median', 'paired_ratio', 'spread']

#: Clocks by name: wall time, or CPU time of this process (use it with one thread).
CLOCKS: Dict[str, Callable[[], float]] = {'wall': time.perf_counter,
                                          'process': time.process_time}


def time_interleaved(fns: Dict[str, Callable[[], None]], repeats: int = 5, warmup: int = 1,
                     clock: Callable[[], float] = time.perf_counter,
                     rotate: bool = False) -> Dict[str, List[float]]:
    """Time each callable ``repeats`` times, interleaved, after ``warmup`` untimed rounds.

    Args:
        fns (dict): ``{name: fn}``; each ``fn()`` runs one step (synchronised, e.g. CUDA).
        repeats (int): Timed rounds. Defaults to 5.
        warmup (int): Untimed rounds first. Defaults to 1.
        clock (callable): The clock (:data:`CLOCKS`). Defaults to :func:`time.perf_counter`.
        rotate (bool): Start round ``i`` at the ``i``-th callable. Defaults to False.

    Returns:
        dict: ``{name: [seconds per round]}``.

    Raises:
        ValueError: ``repeats < 1`` or ``warmup < 0``.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f'need repeats >= 1 and warmup >= 0, got {repeats}, {warmup}')
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: Dict[str, List[float]] = {name: [] for name in fns}
    order = list(fns.items())
    for i in range(repeats):
        shift = i % len(order) if rotate and order else 0
        for name, fn in order[shift:] + order[:shift]:
            start = clock()
            fn()
            times[name].append(clock() - start)
    return times


def median(values: List[float]) -> float:
    """The median of ``values``."""
    return statistics.median(values)


def paired_ratio(times: Dict[str, List[float]], num: str, den: str) -> float:
    """Median over rounds of ``times[num][i] / times[den][i]`` (steadier than medians' ratio)."""
    return statistics.median(a / b for a, b in zip(times[num], times[den]))


def spread(values: Sequence[float]) -> Dict[str, float]:
    """``median``, ``q1`` and ``q3`` of ``values`` (inclusive quartiles; one value: all three).

    Raises:
        ValueError: ``values`` is empty.
    """
    values = list(values)
    if not values:
        raise ValueError('spread of no values')
    if len(values) == 1:
        return {'median': values[0], 'q1': values[0], 'q3': values[0]}
    q1, q2, q3 = statistics.quantiles(values, n=4, method='inclusive')
    return {'median': q2, 'q1': q1, 'q3': q3}
