"""Frequency content of each block's patch features (docs/method.md §7, docs/design.md)."""
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch

__all__ = ['check_band_edges', 'radial_distance', 'magnitude_spectrum', 'radial_profile',
           'band_shares', 'block_spectra', 'frequency_analysis']

#: Default band edges on the normalised radial distance.
DEFAULT_BAND_EDGES = (1.0 / 3.0, 2.0 / 3.0)
#: Band names, low to high.
BANDS = ('low', 'mid', 'high')


def check_band_edges(edges: Sequence[float]) -> Tuple[float, float]:
    """Validate band edges ``(e1, e2)`` with ``0 < e1 < e2 < 1``.

    Raises:
        ValueError: Naming the bad edges.
    """
    edges = tuple(float(e) for e in edges)
    if len(edges) != 2 or not 0.0 < edges[0] < edges[1] < 1.0:
        raise ValueError(f'band edges must be two numbers 0 < e1 < e2 < 1, got {edges}')
    return edges


def radial_distance(height: int, width: int) -> np.ndarray:
    """Normalised distance of each ``fftshift``-ed frequency bin from the centre.

    Args:
        height (int): Grid height ``H``.
        width (int): Grid width ``W``.

    Returns:
        np.ndarray: ``(H, W)`` float64 in [0, 1], 0 at ``(H // 2, W // 2)``.
    """
    ys = np.arange(height, dtype=np.float64) - height // 2
    xs = np.arange(width, dtype=np.float64) - width // 2
    dist = np.sqrt(ys[:, None] ** 2 + xs[None, :] ** 2)
    peak = dist.max()
    return dist / peak if peak > 0 else dist


def magnitude_spectrum(featmap: torch.Tensor) -> torch.Tensor:
    """Mean over samples and channels of ``|fftshift(fft2(featmap))|``.

    Args:
        featmap (Tensor): ``(B, C, H, W)`` features.

    Returns:
        Tensor: ``(H, W)`` float64 magnitude map, centred.
    """
    if featmap.dim() != 4:
        raise ValueError(f'featmap must be B x C x H x W, got shape {tuple(featmap.shape)}')
    spectrum = torch.fft.fftshift(torch.fft.fft2(featmap.double()), dim=(-2, -1))
    return spectrum.abs().mean(dim=(0, 1))


def radial_profile(magnitude: np.ndarray, num_bins: int = 10) -> Tuple[np.ndarray, np.ndarray]:
    """Mean magnitude as a function of the normalised radial distance.

    Args:
        magnitude (array-like): ``(H, W)`` centred magnitude map.
        num_bins (int): Equal-width bins on [0, 1] (the last includes 1). Defaults to 10.

    Returns:
        tuple: ``(centres, values)`` of length ``num_bins``; an empty bin is NaN.
    """
    magnitude = np.asarray(magnitude, dtype=np.float64)
    if num_bins < 1:
        raise ValueError(f'num_bins must be >= 1, got {num_bins}')
    radius = radial_distance(*magnitude.shape)
    index = np.minimum((radius * num_bins).astype(int), num_bins - 1)
    sums = np.bincount(index.ravel(), weights=magnitude.ravel(), minlength=num_bins)
    counts = np.bincount(index.ravel(), minlength=num_bins)
    values = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    centres = (np.arange(num_bins) + 0.5) / num_bins
    return centres, values


def band_shares(magnitude: np.ndarray,
                edges: Sequence[float] = DEFAULT_BAND_EDGES) -> Dict[str, float]:
    """Share of the total magnitude in the low / mid / high bands (docs/design.md).

    Args:
        magnitude (array-like): ``(H, W)`` centred magnitude map.
        edges (Sequence[float]): ``(e1, e2)``. Defaults to ``(1/3, 2/3)``.

    Returns:
        dict: ``{'low', 'mid', 'high'}`` shares adding up to 1 (all 0 for a zero map).
    """
    e1, e2 = check_band_edges(edges)
    magnitude = np.asarray(magnitude, dtype=np.float64)
    radius = radial_distance(*magnitude.shape)
    total = magnitude.sum()
    if total <= 0:
        return {band: 0.0 for band in BANDS}
    masks = (radius < e1, (radius >= e1) & (radius < e2), radius >= e2)
    return {band: float(magnitude[mask].sum() / total) for band, mask in zip(BANDS, masks)}


def block_spectra(adapter, batches: Sequence[torch.Tensor]) -> List[np.ndarray]:
    """Mean centred magnitude map of every block's output over a calibration set.

    Args:
        adapter (FamilyAdapter): The model (full forward, nothing skipped).
        batches (Sequence[Tensor]): Preprocessed image batches.

    Returns:
        list[np.ndarray]: One ``(H, W)`` float64 map per block.
    """
    sums, count = [0.0] * adapter.num_layers, 0
    with torch.no_grad():
        for inputs in batches:
            x, ctx = adapter.embed(inputs)
            n = inputs.shape[0]
            for i in range(adapter.num_layers):
                x = adapter.block(i, x)
                sums[i] = sums[i] + magnitude_spectrum(adapter.patch_tokens(x, ctx)) * n
            count += n
    if count == 0:
        raise ValueError('the calibration set is empty')
    return [(s / count).cpu().numpy() for s in sums]


def frequency_analysis(adapter, batches: Sequence[torch.Tensor],
                       edges: Sequence[float] = DEFAULT_BAND_EDGES,
                       num_bins: int = 10) -> List[Dict]:
    """Per-block radial profile and band shares (paper Fig. 5).

    Args:
        adapter (FamilyAdapter): The model.
        batches (Sequence[Tensor]): Preprocessed image batches.
        edges (Sequence[float]): Band edges. Defaults to ``(1/3, 2/3)``.
        num_bins (int): Radial profile bins. Defaults to 10.

    Returns:
        list[dict]: Per block ``{'block', 'profile_centres', 'profile', 'low', 'mid', 'high'}``.
    """
    edges = check_band_edges(edges)
    results = []
    for i, magnitude in enumerate(block_spectra(adapter, batches)):
        centres, values = radial_profile(magnitude, num_bins)
        results.append(dict(block=i, profile_centres=centres.tolist(),
                            profile=values.tolist(), **band_shares(magnitude, edges)))
    return results
