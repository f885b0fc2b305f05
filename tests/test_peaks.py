import numpy as np

from spinelab.methods.multiview.peaks import find_peaks
from spinelab.targets import gaussian_heatmap


def test_peaks_are_found_with_sub_pixel_precision_despite_noise_and_close_neighbours():
    truth = np.array([[30.3, 20.6], [31.2, 34.1], [29.5, 47.8], [80.7, 60.2], [45.0, 90.4]])  # (column, row)
    rng = np.random.default_rng(0)
    heatmap = gaussian_heatmap(truth[:, ::-1], (110, 120), 2.5) + rng.normal(0, 0.04, (110, 120))
    heatmap[5, 100] = 0.7  # a lone noisy spike: high value, no density
    heatmap[100, 10:12] = 0.5
    positions, scores = find_peaks(heatmap, pixel_mm=1.2, min_distance_mm=12.0, threshold=0.3)
    assert len(positions) == len(truth)
    assert np.abs(positions - truth[np.argsort(truth[:, 1])]).max() < 0.35
    assert (np.diff(positions[:, 1]) > 0).all()  # superior (top) first
    assert ((scores > 0.8) & (scores < 1.2)).all()


def test_min_distance_is_in_millimetres():
    truth = np.array([[20.0, 20.0], [20.0, 28.0]])  # 8 pixels apart
    heatmap = gaussian_heatmap(truth[:, ::-1], (50, 40), 2.0)
    assert len(find_peaks(heatmap, pixel_mm=1.0, min_distance_mm=6.0)[0]) == 2  # 8 mm apart
    assert len(find_peaks(heatmap, pixel_mm=1.0, min_distance_mm=10.0)[0]) == 1
    assert len(find_peaks(heatmap, pixel_mm=2.0, min_distance_mm=10.0)[0]) == 2  # 16 mm apart


def test_a_plateau_gives_one_peak_and_an_empty_map_none():
    heatmap = np.zeros((30, 30))
    heatmap[10:13, 10:14] = 1.0
    positions, _ = find_peaks(heatmap, pixel_mm=1.0, min_distance_mm=5.0, density_sigma_px=0.0)
    assert positions.shape == (1, 2) and np.allclose(positions, [[11.5, 11.0]], atol=0.6)
    positions, scores = find_peaks(np.zeros((30, 30)), pixel_mm=1.0)
    assert positions.shape == (0, 2) and scores.shape == (0,)
