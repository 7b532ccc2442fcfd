"""Baseline layer selectors with NOSE's budget ``K`` (docs/design.md)."""
from typing import Mapping, Sequence

import numpy as np

from .greedy import SelectionResult, check_budget

__all__ = ['select_random', 'select_first', 'select_by_score', 'select_attn_entropy',
           'select_cosine']


def select_random(candidates: Sequence[int], k: int, seed: int = 0) -> SelectionResult:
    """Select ``k`` candidates at random (seeded, without replacement).

    Args:
        candidates (Sequence[int]): Layers that may be selected.
        k (int): Number of layers to select.
        seed (int): Seed of :func:`numpy.random.default_rng`. Defaults to 0.

    Returns:
        SelectionResult: Selection in draw order, empty table.
    """
    candidates = check_budget(candidates, k)
    order = np.random.default_rng(seed).permutation(len(candidates))[:k]
    return SelectionResult(method='random', selection=[candidates[i] for i in order],
                           candidates=candidates, table=np.zeros((0, len(candidates))),
                           extra=dict(seed=int(seed)))


def select_first(candidates: Sequence[int], k: int) -> SelectionResult:
    """Select the ``k`` lowest-index candidates (bottom layers first).

    Args:
        candidates (Sequence[int]): Layers that may be selected.
        k (int): Number of layers to select.

    Returns:
        SelectionResult: Selection in ascending layer order, empty table.
    """
    candidates = check_budget(candidates, k)
    return SelectionResult(method='first', selection=sorted(candidates)[:k],
                           candidates=candidates, table=np.zeros((0, len(candidates))))


def select_by_score(scores: Mapping[int, float], candidates: Sequence[int], k: int,
                    descending: bool = False, method: str = 'score',
                    table_name: str = 'score') -> SelectionResult:
    """Select the ``k`` candidates with the lowest (or highest) score; ties keep order.

    Args:
        scores (Mapping[int, float]): Score of every candidate layer.
        candidates (Sequence[int]): Layers that may be selected.
        k (int): Number of layers to select.
        descending (bool): Select the highest scores first. Defaults to False.
        method (str): Method name stored in the result. Defaults to ``'score'``.
        table_name (str): Name of the score table. Defaults to ``'score'``.

    Returns:
        SelectionResult: Selection in score order; one table row of scores.

    Raises:
        ValueError: On a bad budget or a candidate without a score.
    """
    candidates = check_budget(candidates, k)
    missing = [c for c in candidates if c not in scores]
    if missing:
        raise ValueError(f'no score for candidate layers {missing}')
    row = np.array([float(scores[c]) for c in candidates], dtype=np.float64)
    order = np.argsort(-row if descending else row, kind='stable')[:k]
    return SelectionResult(method=method, selection=[candidates[i] for i in order],
                           candidates=candidates, table=row[None, :], table_name=table_name)


def select_attn_entropy(attn_entropies: Mapping[int, float], candidates: Sequence[int],
                        k: int) -> SelectionResult:
    """Select the ``k`` layers whose attention output has the lowest entropy.

    Args:
        attn_entropies (Mapping[int, float]): Entropy of each attention-branch output.
        candidates (Sequence[int]): Layers that may be selected.
        k (int): Number of layers to select.

    Returns:
        SelectionResult: Lowest entropy first; the table row holds the entropies.
    """
    return select_by_score(attn_entropies, candidates, k, descending=False,
                           method='attn_entropy', table_name='attn_entropy')


def select_cosine(similarities: Mapping[int, float], candidates: Sequence[int],
                  k: int) -> SelectionResult:
    """Select the ``k`` attention sublayers whose output is most similar to their input.

    Args:
        similarities (Mapping[int, float]): Mean input/output cosine of each sublayer.
        candidates (Sequence[int]): Layers that may be selected.
        k (int): Number of layers to select.

    Returns:
        SelectionResult: Most similar first; the table row holds the similarities.
    """
    return select_by_score(similarities, candidates, k, descending=True, method='cosine',
                           table_name='cosine_similarity')
