"""The dilution method as plain functions: formulas, schedules, index validation."""
import math

import pytest
import torch

from nose_mm.models.dilution import (check_lam, cosine_lam, dilute_residual, get_lam_schedule,
                                     linear_lam, normalize_layer_indices, removed_residual)


def test_linear_lam_is_the_reference_schedule():
    for epoch in range(400):
        assert linear_lam(epoch, 0, 299) == pytest.approx(max(0.0, 1 - epoch / 299), abs=1e-12)
    assert linear_lam(299, 0, 299) == 0.0
    assert linear_lam(-5, 0, 299) == 1.0


def test_linear_and_cosine_lam_shapes():
    assert linear_lam(5, 10, 20) == 1.0
    assert linear_lam(15, 10, 20) == pytest.approx(0.5)
    assert linear_lam(25, 10, 20) == 0.0
    assert cosine_lam(10, 10, 20) == 1.0
    assert cosine_lam(15, 10, 20) == pytest.approx(0.5)
    assert cosine_lam(12, 10, 20) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.2)))
    assert cosine_lam(20, 10, 20) == 0.0
    # begin == end: a step from 1 to 0
    assert linear_lam(9.9, 10, 10) == 1.0 and linear_lam(10, 10, 10) == 0.0
    # fractions
    assert linear_lam(0.5, 0.0, 1.0) == pytest.approx(0.5)
    values = [cosine_lam(p, 0, 1) for p in torch.linspace(0, 1, 11).tolist()]
    assert all(a >= b for a, b in zip(values, values[1:]))


@pytest.mark.parametrize('args', [(1, 5, 2), (float('nan'), 0, 1), (1, 0, float('inf'))])
def test_schedules_reject_bad_bounds(args):
    for fn in (linear_lam, cosine_lam):
        with pytest.raises(ValueError):
            fn(*args)


def test_get_lam_schedule():
    assert get_lam_schedule('linear') is linear_lam
    assert get_lam_schedule('cosine') is cosine_lam
    with pytest.raises(ValueError, match="unknown dilution schedule 'step'.*cosine.*linear"):
        get_lam_schedule('step')


def test_dilute_residual_formulas():
    torch.manual_seed(0)
    x, branch = torch.randn(2, 5, 8), torch.randn(2, 5, 8)
    assert torch.equal(dilute_residual(x, branch, 1.0), x + branch)
    assert torch.equal(dilute_residual(x, branch, 1.0, compensate=False), x + branch)
    torch.testing.assert_close(dilute_residual(x, branch, 0.3), 1.7 * x + 0.3 * branch)
    torch.testing.assert_close(dilute_residual(x, branch, 0.3, compensate=False),
                               x + 0.3 * branch)
    # lam = 0: the branch is not needed and the result is the pruned block's
    assert torch.equal(dilute_residual(x, None, 0.0), 2 * x)
    assert torch.equal(dilute_residual(x, None, 0.0, compensate=False), x)
    assert torch.equal(removed_residual(x), 2 * x)
    assert torch.equal(removed_residual(x, compensate=False), x)
    with pytest.raises(ValueError, match='branch is needed'):
        dilute_residual(x, None, 0.5)


def test_check_lam():
    assert check_lam(0) == 0.0 and check_lam(1) == 1.0 and check_lam(0.25) == 0.25
    for bad in (-0.1, 1.5, float('nan'), 'a', None, True):
        with pytest.raises(ValueError, match='lam'):
            check_lam(bad)


def test_normalize_layer_indices():
    assert normalize_layer_indices([4, 0, 2], 12) == (0, 2, 4)
    assert normalize_layer_indices([-1, -12], 12) == (0, 11)
    assert normalize_layer_indices(None, 12) == ()
    assert normalize_layer_indices((), 12) == ()
    with pytest.raises(ValueError, match=r'diluted_layers: layer index 12 is out of range.*'
                                         r'0\.\.11'):
        normalize_layer_indices([0, 12], 12, 'diluted_layers')
    with pytest.raises(ValueError, match=r'-13 is out of range'):
        normalize_layer_indices([-13], 12)
    with pytest.raises(ValueError, match=r'layer 2 is given twice'):
        normalize_layer_indices([2, 2], 12)
    with pytest.raises(ValueError, match=r'layer 11 is given twice \(as 11 and -1\)'):
        normalize_layer_indices([11, -1], 12)
    for bad in ([1.5], ['0'], [True], 3, '01'):
        with pytest.raises(ValueError):
            normalize_layer_indices(bad, 12)
