"""Greedy NOSE selection and the baselines on synthetic TE functions (no model)."""
import math

import numpy as np
import pytest

from nose_mm.selection import (greedy_select, select_attn_entropy, select_by_score,
                               select_cosine, select_first, select_random)

# TE(S) = sum of per-layer effects: layer 2 changes nothing, 4 a little, 1 lowers H.
EFFECT = {0: 3.0, 1: -0.2, 2: 0.0, 3: 1.0, 4: 0.1}


def additive(selected, candidate):
    return sum(EFFECT[i] for i in selected) + EFFECT[candidate]


def test_greedy_abs_criterion_and_table():
    calls = []

    def evaluate(selected, candidate):
        calls.append((selected, candidate))
        return additive(selected, candidate)

    result = greedy_select(evaluate, [0, 1, 2, 3, 4], 3)
    assert result.method == 'nose' and result.criterion == 'abs'
    # step 0: |te| = 3, .2, 0, 1, .1 -> 2; step 1: 2+{0,1,3,4} -> 4 (.1); step 2: .1 + {.. } -> 1
    assert result.selection == [2, 4, 1]
    assert result.table.shape == (3, 5)
    np.testing.assert_allclose(result.table[0], [3.0, -0.2, 0.0, 1.0, 0.1])
    assert np.isnan(result.table[1, 2]) and np.isnan(result.table[2, [2, 4]]).all()
    assert result.table[2, 1] == pytest.approx(-0.1)  # raw signed value kept
    # one call per remaining candidate per step, in candidate order
    assert calls[:5] == [((), c) for c in range(5)]
    assert calls[5:9] == [((2, ), c) for c in (0, 1, 3, 4)]
    assert len(calls) == 5 + 4 + 3
    assert result.table_as_lists()[1][2] is None


def test_greedy_signed_criterion_picks_most_negative():
    result = greedy_select(additive, [0, 1, 2, 3, 4], 2, criterion='signed')
    assert result.selection == [1, 2]


def test_greedy_ties_go_to_the_earlier_candidate():
    result = greedy_select(lambda s, c: 0.0, [5, 3, 1], 2)
    assert result.selection == [5, 3]


@pytest.mark.parametrize('k, match', [
    (6, 'cannot select 6 layers from 5 candidate layers'),
    (0, 'positive int, got 0'),
    (-1, 'positive int, got -1'),
    (2.0, 'positive int, got 2.0'),
])
def test_budget_errors_name_the_values(k, match):
    with pytest.raises(ValueError, match=match):
        greedy_select(additive, [0, 1, 2, 3, 4], k)
    with pytest.raises(ValueError, match=match):
        select_random([0, 1, 2, 3, 4], k)


def test_other_input_errors():
    with pytest.raises(ValueError, match="unknown criterion 'max'; allowed: abs, signed"):
        greedy_select(additive, [0, 1], 1, criterion='max')
    with pytest.raises(ValueError, match='unique'):
        greedy_select(additive, [0, 0, 1], 1)
    with pytest.raises(ValueError, match='nan'):
        greedy_select(lambda s, c: math.nan, [0, 1], 1)
    with pytest.raises(ValueError, match=r'no score for candidate layers \[3\]'):
        select_by_score({0: 1.0}, [0, 3], 1)


def test_random_baseline_is_seeded():
    a = select_random(range(12), 5, seed=3)
    assert a.selection == select_random(range(12), 5, seed=3).selection
    assert len(set(a.selection)) == 5 and set(a.selection) <= set(range(12))
    draws = {tuple(select_random(range(12), 5, seed=s).selection) for s in range(5)}
    assert len(draws) > 1
    assert a.extra == {'seed': 3} and a.table.shape == (0, 12)


def test_first_and_score_baselines():
    assert select_first([4, 0, 2, 1], 2).selection == [0, 1]
    entropies = {0: 5.0, 1: -1.0, 2: 2.0, 3: -1.0}
    r = select_attn_entropy(entropies, [0, 1, 2, 3], 3)
    assert r.selection == [1, 3, 2] and r.table_name == 'attn_entropy'
    np.testing.assert_allclose(r.table[0], [5.0, -1.0, 2.0, -1.0])
    cos = {0: 0.5, 1: 0.99, 2: 0.9, 3: 0.7}
    r = select_cosine(cos, [0, 1, 2, 3], 2)
    assert r.selection == [1, 2] and r.method == 'cosine'
