"""Frequency analysis, branch entropies and the figure/CSV writers."""
import numpy as np
import pytest
import torch

from nose_mm.analysis import (band_shares, block_entropies, block_spectra, check_band_edges,
                              frequency_analysis, magnitude_spectrum, plot_te_heatmap,
                              radial_distance, radial_profile)
from nose_mm.selection import build_adapter
from tests.test_selection.conftest import build_tiny_classifier, make_batches


def test_radial_distance_runs_from_centre_to_corner():
    r = radial_distance(4, 6)
    assert r[2, 3] == 0.0 and r.max() == 1.0 and r.min() == 0.0
    assert r[0, 0] == 1.0  # the farthest bin from (2, 3)
    assert radial_distance(1, 1).tolist() == [[0.0]]


def test_constant_image_is_all_low_frequency():
    featmap = torch.full((2, 3, 8, 8), 5.0)
    mag = magnitude_spectrum(featmap)
    assert mag.shape == (8, 8) and mag[4, 4] == pytest.approx(5.0 * 64)
    shares = band_shares(mag.numpy())
    assert shares == pytest.approx({'low': 1.0, 'mid': 0.0, 'high': 0.0})


def test_checkerboard_is_high_frequency_and_shares_sum_to_one():
    yy, xx = np.meshgrid(np.arange(8), np.arange(8), indexing='ij')
    board = torch.from_numpy(((yy + xx) % 2 * 2.0 - 1.0))[None, None].repeat(2, 3, 1, 1)
    assert band_shares(magnitude_spectrum(board).numpy())['high'] == pytest.approx(1.0)
    noise = magnitude_spectrum(torch.randn(4, 5, 7, 9)).numpy()
    for edges in [(1 / 3, 2 / 3), (0.1, 0.9), (0.5, 0.6)]:
        assert sum(band_shares(noise, edges).values()) == pytest.approx(1.0)
    assert band_shares(np.zeros((4, 4))) == {'low': 0.0, 'mid': 0.0, 'high': 0.0}


def test_radial_profile_and_edge_checks():
    mag = np.ones((8, 8))
    centres, values = radial_profile(mag, num_bins=4)
    np.testing.assert_allclose(centres, [0.125, 0.375, 0.625, 0.875])
    np.testing.assert_allclose(values, 1.0)
    for bad in [(0.5, 0.5), (0.0, 0.5), (0.5, 1.0), (0.7, 0.3), (0.3, )]:
        with pytest.raises(ValueError, match='0 < e1 < e2 < 1'):
            check_band_edges(bad)


def test_block_analyses_on_a_tiny_vit():
    model = build_tiny_classifier(num_layers=3)
    adapter = build_adapter(model)
    batches = make_batches(8, 4)
    spectra = block_spectra(adapter, batches)
    assert len(spectra) == 3 and spectra[0].shape == (4, 4)
    results = frequency_analysis(adapter, batches, num_bins=5)
    for r in results:
        assert r['low'] + r['mid'] + r['high'] == pytest.approx(1.0)
        assert len(r['profile']) == 5
    rows = block_entropies(adapter, batches)
    assert [r['block'] for r in rows] == [0, 1, 2]
    assert all(np.isfinite([r['attn_entropy'], r['mlp_entropy']]).all() for r in rows)


def test_te_heatmap_png_and_csv(tmp_path):
    record = dict(method='nose', criterion='abs', selection=[2, 0], candidates=[0, 1, 2],
                  te_table=[[1.5, -0.3, 0.01], [1.2, 0.4, None]])
    paths = plot_te_heatmap(record, str(tmp_path / 'out'))
    with open(paths['png'], 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    assert open(paths['csv']).read().splitlines() == [
        'step,selected,layer_0,layer_1,layer_2', '0,2,1.5,-0.3,0.01', '1,0,1.2,0.4,']
    with pytest.raises(ValueError, match="method 'random'"):
        plot_te_heatmap(dict(method='random', selection=[1], te_table=None), str(tmp_path))
