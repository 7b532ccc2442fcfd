"""Gaussian entropy and transfer entropy (docs/method.md §1, §2) in float64, framework-free."""
from typing import Any, List, Optional

import numpy as np

__all__ = ['STD_EPS', 'FeatureStats', 'FeatureSetStats', 'gaussian_entropy', 'transfer_entropy']

#: Lower clamp for a per-dimension standard deviation before its log.
STD_EPS = 1e-12


def gaussian_entropy(features: Any, eps: float = STD_EPS) -> float:
    """Gaussian entropy (up to constants) of a feature set: ``sum_d log std_d``.

    Args:
        features (array-like | torch.Tensor): N x D features (1-D: one dimension).
        eps (float): Lower clamp for each std before the log. Defaults to :data:`STD_EPS` (1e-12).

    Returns:
        float: ``sum_d log(max(std_d, eps))``, sample std (``ddof=1``) over all samples.

    Raises:
        ValueError: Fewer than 2 samples, or ``features`` not 1-D or 2-D.
    """
    return FeatureStats(eps).update(features).entropy()


def transfer_entropy(h_full: float, h_skip: float) -> float:
    """Transfer entropy of a skip set to the head: ``TE(S) = H(F_full) - H(F_S)``, signed.

    Args:
        h_full (float): Entropy of the full model's features.
        h_skip (float): Entropy with the attention of the skip set ``S`` skipped.

    Returns:
        float: ``h_full - h_skip``.
    """
    return float(h_full) - float(h_skip)


class FeatureStats:
    """Streaming float64 statistics of a feature set, for its entropy.

    :meth:`update` with batches; :meth:`entropy` is then over all samples seen.

    Args:
        eps (float): Std clamp used by :meth:`entropy`. Defaults to :data:`STD_EPS`.
    """

    def __init__(self, eps: float = STD_EPS) -> None:
        self.eps = eps
        self.count = 0
        self.mean: Optional[np.ndarray] = None
        self._m2: Optional[np.ndarray] = None

    def update(self, features: Any) -> 'FeatureStats':
        """Add a batch of N x D features (torch tensors accepted); returns ``self``."""
        if hasattr(features, 'detach'):  # torch.Tensor, without importing torch
            features = features.detach().cpu().double().numpy()
        batch = np.asarray(features, dtype=np.float64)
        if batch.ndim == 1:
            batch = batch[:, None]
        if batch.ndim != 2:
            raise ValueError(f'features must be 2-D (N samples x D dims), got shape {batch.shape}')
        if batch.shape[0] == 0:
            return self
        mean_b = batch.mean(axis=0)
        return self._add(batch.shape[0], mean_b, ((batch - mean_b) ** 2).sum(axis=0))

    def merge(self, other: 'FeatureStats') -> 'FeatureStats':
        """Merge another accumulator's samples into this one; returns ``self``."""
        return self._add(other.count, other.mean, other._m2) if other.count else self

    def _add(self, n_b: int, mean_b: np.ndarray, m2_b: np.ndarray) -> 'FeatureStats':
        """Chan et al.'s pairwise update with ``n_b`` samples of mean ``mean_b``, M2 ``m2_b``."""
        if self.count == 0:
            self.count, self.mean, self._m2 = n_b, mean_b.copy(), m2_b.copy()
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
        std = np.sqrt(np.maximum(self.var(ddof=1), 0.0))
        return float(np.sum(np.log(np.maximum(std, self.eps))))


class FeatureSetStats:
    """:class:`FeatureStats` of one feature set or of several (their entropies summed).

    :meth:`update` takes an N x D batch, or a tuple / list of batches, one per part (each
    its own samples and dims: e.g. a backbone's outputs at different resolutions). With
    parts of equal sample counts the sum is the entropy of their concatenation along the
    dims (the entropy is a sum over dims); with one part it is :class:`FeatureStats`'.

    Args:
        eps (float): Std clamp. Defaults to :data:`STD_EPS`.
    """

    def __init__(self, eps: float = STD_EPS) -> None:
        self.eps = eps
        self.parts: Optional[List[FeatureStats]] = None

    def update(self, features: Any) -> 'FeatureSetStats':
        """Add a batch (or one batch per part); returns ``self``."""
        batches = list(features) if isinstance(features, (list, tuple)) else [features]
        if self.parts is None:
            self.parts = [FeatureStats(self.eps) for _ in batches]
        if len(batches) != len(self.parts):
            raise ValueError(f'feature parts changed between batches: {len(self.parts)} '
                             f'then {len(batches)}')
        for part, batch in zip(self.parts, batches):
            part.update(batch)
        return self

    def entropy(self) -> float:
        """The sum of the parts' :meth:`FeatureStats.entropy`.

        Raises:
            ValueError: Nothing seen, or a part with fewer than 2 samples.
        """
        if not self.parts:
            raise ValueError('entropy needs at least 2 samples, got 0')
        return float(sum(part.entropy() for part in self.parts))
