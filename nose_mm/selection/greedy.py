"""NOSE greedy selection (docs/method.md §3, the paper's Algorithm 1), framework-free."""
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

__all__ = ['CRITERIA', 'SelectionResult', 'check_choice', 'check_budget', 'greedy_select']

#: Allowed greedy criteria.
CRITERIA = ('abs', 'signed')


@dataclass
class SelectionResult:
    """Outcome of a selection method (NOSE or a baseline).

    Attributes:
        method (str): Name of the method (``'nose'``, ``'random'``...).
        selection (list[int]): Selected layers in the order they were chosen.
        candidates (list[int]): Layers that could be chosen; the table's columns.
        table (np.ndarray): float64, a column per candidate, a row per NOSE step (or score).
        table_name (str, optional): What the table holds. Defaults to None.
        criterion (str, optional): Greedy criterion for NOSE. Defaults to None.
        extra (dict): Method-specific information (e.g. the seed). Defaults to {}.
    """

    method: str
    selection: List[int]
    candidates: List[int]
    table: np.ndarray
    table_name: Optional[str] = None
    criterion: Optional[str] = None
    extra: Dict = field(default_factory=dict)

    def table_as_lists(self) -> List[List[Optional[float]]]:
        """The table as nested lists with NaN written as None (valid JSON)."""
        return [[None if math.isnan(v) else float(v) for v in row] for row in self.table]


def check_choice(name: str, value: Any, choices: Sequence[str]) -> None:
    """Raise ValueError ``unknown <name> <value>; allowed: ...`` if ``value`` is not a choice."""
    if value not in choices:
        raise ValueError(f'unknown {name} {value!r}; allowed: {", ".join(choices)}')


def check_budget(candidates: Sequence[int], k: int) -> List[int]:
    """Validate a candidate list and a budget; return the candidates as ints.

    Args:
        candidates (Sequence[int]): Layer indices that may be selected.
        k (int): Number of layers to select.

    Returns:
        list[int]: The candidates.

    Raises:
        ValueError: ``k`` not a positive int or above the candidates, or repeated candidates.
    """
    candidates = [int(c) for c in candidates]
    if len(set(candidates)) != len(candidates):
        raise ValueError(f'candidates must be unique, got {candidates}')
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f'the number of layers to select must be a positive int, got {k!r}')
    if k > len(candidates):
        raise ValueError(f'cannot select {k} layers from {len(candidates)} candidate layers '
                         f'{candidates}')
    return candidates


def greedy_select(evaluate_fn: Callable[[Tuple[int, ...], int], float],
                  candidates: Sequence[int],
                  k: int,
                  criterion: str = 'abs',
                  callback: Optional[Callable[[int, int, np.ndarray], None]] = None
                  ) -> SelectionResult:
    """Greedy NOSE selection of ``k`` layers (docs/method.md §3).

    Args:
        evaluate_fn (callable): ``(selected, candidate) -> TE``, in candidate order.
        candidates (Sequence[int]): Layers that may be selected.
        k (int): Number of layers to select.
        criterion (str): ``'abs'`` (smallest ``|TE|``) or ``'signed'``. Defaults to ``'abs'``.
        callback (callable, optional): ``callback(step, layer, te_row)``. Defaults to None.

    Returns:
        SelectionResult: ``selection`` in step order, ``table`` the signed TE per step.

    Raises:
        ValueError: On a bad budget, criterion, or a non-finite TE.
    """
    candidates = check_budget(candidates, k)
    check_choice('criterion', criterion, CRITERIA)
    table = np.full((k, len(candidates)), np.nan, dtype=np.float64)
    selected: List[int] = []
    for step in range(k):
        best_col, best_score = None, math.inf
        for col, layer in enumerate(candidates):
            if layer in selected:
                continue
            te = float(evaluate_fn(tuple(selected), layer))
            if not math.isfinite(te):
                raise ValueError(f'transfer entropy of {selected + [layer]} is {te}')
            table[step, col] = te
            score = abs(te) if criterion == 'abs' else te
            if score < best_score:
                best_col, best_score = col, score
        selected.append(candidates[best_col])
        if callback is not None:
            callback(step, candidates[best_col], table[step].copy())
    return SelectionResult(method='nose', selection=selected, candidates=candidates,
                           table=table, table_name='transfer_entropy', criterion=criterion)
