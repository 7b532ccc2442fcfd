"""Gaussian entropy, its streaming accumulator and transfer entropy (no model)."""
import math

import numpy as np
import pytest
import torch

from nose_mm.selection import STD_EPS, FeatureStats, gaussian_entropy, transfer_entropy


def test_gaussian_entropy_is_sum_of_log_sample_std():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(50, 4)) * np.array([1.0, 2.0, 0.5, 3.0])
    expected = np.log(feats.std(axis=0, ddof=1)).sum()
    assert gaussian_entropy(feats) == pytest.approx(expected, abs=1e-12)
    # torch input, float32, gives the float64 result of the same values
    t = torch.from_numpy(feats).float()
    assert gaussian_entropy(t) == pytest.approx(gaussian_entropy(t.double().numpy()), abs=1e-12)
    # scaling one dim by s adds log(s)
    scaled = feats.copy()
    scaled[:, 1] *= 10
    assert gaussian_entropy(scaled) - gaussian_entropy(feats) == pytest.approx(math.log(10))


def test_constant_dimension_is_clamped_not_minus_inf():
    feats = np.stack([np.arange(5.0), np.full(5, 3.0)], axis=1)
    h = gaussian_entropy(feats)
    assert math.isfinite(h)
    assert h == pytest.approx(np.log(np.arange(5.0).std(ddof=1)) + math.log(STD_EPS))


def test_entropy_needs_two_samples_and_2d_input():
    with pytest.raises(ValueError, match='at least 2 samples, got 1'):
        gaussian_entropy(np.zeros((1, 3)))
    with pytest.raises(ValueError, match='2-D'):
        gaussian_entropy(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match='at least 2 samples, got 0'):
        FeatureStats().entropy()


@pytest.mark.parametrize('splits', [[100], [1, 99], [7, 13, 80], [50, 50], [1] * 100])
def test_streaming_stats_equal_the_whole_set(splits):
    rng = np.random.default_rng(1)
    feats = rng.normal(loc=1e3, scale=0.01, size=(100, 6))  # cancellation-prone
    stats = FeatureStats()
    start = 0
    for n in splits:
        stats.update(torch.from_numpy(feats[start:start + n]))
        start += n
    assert stats.count == 100
    np.testing.assert_allclose(stats.var(), feats.var(axis=0, ddof=1), rtol=1e-9)
    assert stats.entropy() == pytest.approx(gaussian_entropy(feats), abs=1e-9)


def test_merge_and_dims_check():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(10, 3)), rng.normal(size=(15, 3))
    merged = FeatureStats().update(a).merge(FeatureStats().update(b))
    assert merged.entropy() == pytest.approx(gaussian_entropy(np.concatenate([a, b])))
    assert FeatureStats().merge(FeatureStats().update(a)).count == 10
    with pytest.raises(ValueError, match='feature dims changed between batches: 3 then 4'):
        FeatureStats().update(a).update(np.zeros((2, 4)))


def test_transfer_entropy_is_signed_difference():
    assert transfer_entropy(2.0, 0.5) == 1.5
    assert transfer_entropy(0.5, 2.0) == -1.5
