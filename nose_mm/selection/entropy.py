"""Gaussian entropy of a feature set and transfer entropy (docs/method.md §1 and §2).

Under a Gaussian assumption the entropy of features ``F`` (N samples x D dims)
is, up to constants that cancel in every difference this project takes,

    H(F) = sum_d log(std_d(F))

* ``std_d`` is the standard deviation of dimension ``d`` over *all* N samples
  (sample std, ``ddof=1``, like :func:`torch.std`; the ``ddof`` only adds a
  constant ``D/2 * log(N / (N - 1))`` that cancels in transfer entropy).
* Everything is computed in float64.
* A dimension that does not vary (std = 0, e.g. a dead channel) would give
  ``log(0) = -inf``. Such a std is clamped to :data:`STD_EPS` (``1e-12``)
  before the log, so the entropy stays finite; a constant dimension then adds
  the same ``log(1e-12)`` to every entropy it appears in and cancels in a
  difference as long as it stays constant.

:class:`FeatureStats` accumulates the statistics over a whole calibration set
batch by batch (Chan et al.'s parallel update of count, mean and sum of
squared deviations, in float64), so the entropy is the one of the full set,
not an average of per-batch entropies.

This module has no framework imports: numpy, plus torch tensors accepted as
input (converted through ``.detach().cpu().numpy()``).
"""
from typing import Any, Optional

import numpy as np

__all__ = ['STD_EPS', 'FeatureStats', 'gaussian_entropy', 'transfer_entropy']

#: Lower clamp for a per-dimension standard deviation before its log.
STD_EPS = 1e-12


def _as_float64_2d(features: Any) -> np.ndarray:
    """Return ``features`` as a float64 (N, D) array (torch tensors accepted)."""
    if hasattr(features, 'detach'):  # torch.Tensor, without importing torch
        features = features.detach().cpu().double().numpy()
    array = np.asarray(features, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise ValueError(f'features must be 2-D (N samples x D dims), got shape {array.shape}')
    return array


def _entropy_from_var(var: np.ndarray, eps: float) -> float:
    std = np.sqrt(np.maximum(var, 0.0))
    return float(np.sum(np.log(np.maximum(std, eps))))


def gaussian_entropy(features: Any, eps: float = STD_EPS) -> float:
    """Gaussian entropy (up to constants) of a feature set: ``sum_d log std_d``.

    Args:
        features (array-like | torch.Tensor): N x D features (a 1-D input is
            one dimension). Converted to float64.
        eps (float): Lower clamp for each per-dimension std before the log
            (guards constant dimensions). Defaults to :data:`STD_EPS` (1e-12).

    Returns:
        float: ``sum_d log(max(std_d, eps))`` with the sample std (``ddof=1``)
        over all N samples.

    Raises:
        ValueError: If fewer than 2 samples are given or ``features`` is not
            1-D or 2-D.
    """
    array = _as_float64_2d(features)
    if array.shape[0] < 2:
        raise ValueError(f'entropy needs at least 2 samples, got {array.shape[0]}')
    return _entropy_from_var(array.var(axis=0, ddof=1), eps)


def transfer_entropy(h_full: float, h_skip: float) -> float:
    """Transfer entropy of a skip set to the head: ``TE(S) = H(F_full) - H(F_S)``.

    The value is signed: skipping a layer can raise the output entropy, so
    ``TE`` can be negative. Greedy selection ranks by ``|TE|`` by default (see
    :func:`nose_mm.selection.greedy_select`).

    Args:
        h_full (float): Entropy of the full model's features.
        h_skip (float): Entropy with the attention of the skip set ``S`` skipped.

    Returns:
        float: ``h_full - h_skip``.
    """
    return float(h_full) - float(h_skip)


class FeatureStats:
    """Streaming float64 statistics of a feature set, for its entropy.

    Feed batches with :meth:`update`; :attr:`count`, :attr:`mean`,
    :meth:`var` and :meth:`entropy` then describe all samples seen so far.
    Batches are merged with Chan et al.'s parallel update (count, mean, sum of
    squared deviations), which avoids the cancellation of a plain
    sum / sum-of-squares accumulator.

    Args:
        eps (float): Std clamp used by :meth:`entropy`. Defaults to
            :data:`STD_EPS` (1e-12).
    """

    def __init__(self, eps: float = STD_EPS) -> None:
        self.eps = eps
        self.count = 0
        self.mean: Optional[np.ndarray] = None
        self._m2: Optional[np.ndarray] = None

    def update(self, features: Any) -> 'FeatureStats':
        """Add a batch of N x D features (torch tensors accepted); returns ``self``."""
        batch = _as_float64_2d(features)
        n_b = batch.shape[0]
        if n_b == 0:
            return self
        mean_b = batch.mean(axis=0)
        m2_b = ((batch - mean_b) ** 2).sum(axis=0)
        if self.mean is None:
            self.count, self.mean, self._m2 = n_b, mean_b, m2_b
            return self
        if mean_b.shape != self.mean.shape:
            raise ValueError(f'feature dims changed between batches: {self.mean.shape[0]} '
                             f'then {mean_b.shape[0]}')
        total = self.count + n_b
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (n_b / total)
        self._m2 = self._m2 + m2_b + delta ** 2 * (self.count * n_b / total)
        self.count = total
        return self

    def merge(self, other: 'FeatureStats') -> 'FeatureStats':
        """Merge another accumulator's samples into this one; returns ``self``."""
        if other.count == 0:
            return self
        if self.count == 0:
            self.count, self.mean, self._m2 = other.count, other.mean.copy(), other._m2.copy()
            return self
        total = self.count + other.count
        delta = other.mean - self.mean
        self.mean = self.mean + delta * (other.count / total)
        self._m2 = self._m2 + other._m2 + delta ** 2 * (self.count * other.count / total)
        self.count = total
        return self

    def var(self, ddof: int = 1) -> np.ndarray:
        """Per-dimension variance over all samples seen. Defaults to ``ddof=1``."""
        if self.count - ddof <= 0:
            raise ValueError(f'variance with ddof={ddof} needs more than {ddof} samples, '
                             f'got {self.count}')
        return self._m2 / (self.count - ddof)

    def entropy(self) -> float:
        """``sum_d log(max(std_d, eps))`` over all samples seen (sample std).

        Raises:
            ValueError: If fewer than 2 samples were seen.
        """
        if self.count < 2:
            raise ValueError(f'entropy needs at least 2 samples, got {self.count}')
        return _entropy_from_var(self.var(ddof=1), self.eps)
