"""Gaussian heatmaps and dense vertebra labels: the training targets every method shares."""

from __future__ import annotations

import numpy as np
import pytest

from spinelab import vertebrae
from spinelab.errors import SpinelabError
from spinelab.io.centroids import Centroids
from spinelab.io.volume import CTVolume
from spinelab.targets import dense_labels, gaussian_heatmap

T12, L1, L2 = vertebrae.LABELS["T12"], vertebrae.LABELS["L1"], vertebrae.LABELS["L2"]


def test_heatmap_peak_at_nearest_voxel_of_fractional_point():
    heatmap = gaussian_heatmap([[10.3, 20.7, 5.4]], (32, 40, 16), sigma=2.0)
    assert heatmap.dtype == np.float32 and heatmap.shape == (32, 40, 16)
    assert np.unravel_index(np.argmax(heatmap), heatmap.shape) == (10, 21, 5)
    assert heatmap.max() < 1


def test_heatmap_is_one_at_integer_points():
    heatmap = gaussian_heatmap([[3, 4, 5], [20, 10, 1]], (24, 16, 8), sigma=(1.0, 2.0, 1.5))
    assert heatmap[3, 4, 5] == 1 and heatmap[20, 10, 1] == 1
    assert heatmap.max() == 1


def test_close_points_keep_two_maxima_not_a_sum():
    heatmap = gaussian_heatmap([[10, 10], [10, 14]], (20, 30), sigma=2.0)
    assert heatmap[10, 10] == 1 and heatmap[10, 14] == 1
    assert heatmap[10, 12] == pytest.approx(np.exp(-0.5), rel=1e-6)  # a sum would give 2 exp(-0.5) > 1
    assert heatmap[10, 12] < heatmap[10, 11] and heatmap[10, 12] < heatmap[10, 13]


def test_2d_heatmap_matches_direct_formula():
    points = np.array([[5.5, 7.25], [30.0, 2.0], [12.0, 40.5]])
    sigma = (2.5, 4.0)
    rows, cols = np.meshgrid(np.arange(36), np.arange(48), indexing="ij")
    expected = np.max([np.exp(-0.5 * (((rows - r) / sigma[0]) ** 2 + ((cols - c) / sigma[1]) ** 2))
                       for r, c in points], axis=0)
    np.testing.assert_allclose(gaussian_heatmap(points, (36, 48), sigma), expected, atol=1e-6)


def test_heatmap_point_outside_grid_leaves_its_tail_inside():
    heatmap = gaussian_heatmap([[-2.0, 5.0]], (10, 10), sigma=2.0)
    assert heatmap[0, 5] == pytest.approx(np.exp(-0.5), rel=1e-6)


def test_heatmap_without_points_is_zero():
    assert not gaussian_heatmap(np.zeros((0, 3)), (4, 5, 6), 1.0).any()
    assert gaussian_heatmap([], (4, 5), 1.0).shape == (4, 5)


@pytest.mark.parametrize("sigma", [0, -1.0, float("nan"), (1.0, 0.0), (1.0, 1.0, 1.0)])
def test_heatmap_rejects_bad_sigma(sigma):
    with pytest.raises(SpinelabError, match="sigma"):
        gaussian_heatmap([[1, 1]], (8, 8), sigma)


def test_heatmap_rejects_bad_points():
    with pytest.raises(SpinelabError, match="finite"):
        gaussian_heatmap([[1, np.nan]], (8, 8), 1.0)
    with pytest.raises(SpinelabError, match=r"\(N, 2\)"):
        gaussian_heatmap([[1, 2, 3]], (8, 8), 1.0)


# A straight lumbar column on a 1 mm grid: T12, L1, L2 centroids at z = 90, 63, 34 (x = y = 30).
# Midpoints 76.5 and 48.5; T12 reaches up to 90 + 13.5 = 103.5, L2 down to 34 - 14.5 = 19.5.
GRID = (61, 61, 120)
COLUMN = Centroids([L2, T12, L1], [[30, 30, 34], [30, 30, 90], [30, 30, 63]])  # deliberately unsorted


def _column_labels(radius_scale: float = 1.0) -> np.ndarray:
    return dense_labels(GRID, np.eye(4), COLUMN, radius_scale)


def test_dense_labels_at_centroids_and_midpoint_boundaries():
    labels = _column_labels()
    assert labels.dtype == np.int16
    assert labels[30, 30, 90] == T12 and labels[30, 30, 63] == L1 and labels[30, 30, 34] == L2
    assert labels[30, 30, 77] == T12 and labels[30, 30, 76] == L1
    assert labels[30, 30, 49] == L1 and labels[30, 30, 48] == L2


def test_dense_labels_end_segments_mirror_their_inner_half():
    labels = _column_labels()
    assert labels[30, 30, 103] == T12 and labels[30, 30, 104] == 0
    assert labels[30, 30, 20] == L2 and labels[30, 30, 19] == 0


def test_dense_labels_follow_anatomical_order_along_superior():
    along_s = _column_labels()[30, 30]
    present = [int(v) for i, v in enumerate(along_s) if v and (i == 0 or v != along_s[i - 1])]
    assert present == [L2, L1, T12]  # increasing z = going up the spine


def test_dense_label_disc_radius_is_half_body_depth():
    assert vertebrae.BODY_SIZES[L1].depth / 2 == 17
    labels = _column_labels()
    assert labels[30 + 16, 30, 63] == L1 and labels[30 - 17, 30, 63] == L1
    assert labels[30 + 18, 30, 63] == 0 and labels[30, 30 - 18, 63] == 0
    assert labels[30 + 12, 30 + 12, 63] == L1  # 16.97 mm off axis
    assert labels[30 + 13, 30 + 12, 63] == 0  # 17.69 mm
    assert _column_labels(radius_scale=0.5)[30 + 9, 30, 63] == 0


def test_dense_labels_overlap_goes_to_the_closer_axis():
    # A bent column; segments T12 (30,30,102.5)-(30,30,77.5), L1 -(37.5,30,55), L2 -(52.5,30,35).
    centroids = Centroids([T12, L1, L2], [[30, 30, 90], [30, 30, 65], [45, 30, 45]])
    shape = (80, 61, 110)
    labels = dense_labels(shape, np.eye(4), centroids)
    ends = [((30, 30, 102.5), (30, 30, 77.5)), ((30, 30, 77.5), (37.5, 30, 55)), ((37.5, 30, 55), (52.5, 30, 35))]
    world = np.stack(np.meshgrid(*[np.arange(n, dtype=float) for n in shape], indexing="ij"), axis=-1)
    across = []
    for (top, bottom), label in zip(ends, (T12, L1, L2)):
        top, bottom = np.array(top), np.array(bottom)
        axis = (bottom - top) / np.linalg.norm(bottom - top)
        along = (world - top) @ axis
        squared = ((world - top) ** 2).sum(-1) - along**2
        inside = (along >= 0) & (along <= np.linalg.norm(bottom - top))
        inside &= squared <= (vertebrae.BODY_SIZES[label].depth / 2) ** 2
        across.append(np.where(inside, squared, np.inf))
    across = np.stack(across)
    assert (np.isfinite(across).sum(0) >= 2).sum() > 100  # the discs really overlap
    expected = np.where(np.isfinite(across).any(0), np.array([T12, L1, L2])[np.argmin(across, axis=0)], 0)
    np.testing.assert_array_equal(labels, expected)
    # By hand, at the T12/L1 bend both discs hold these voxels: (44, 30, 82) is 14.0 mm off T12's axis
    # and 14.7 mm off L1's; (46, 30, 78) is 16.0 mm off T12's and 15.3 mm off L1's.
    assert np.isfinite(across[:2, 44, 30, 82]).all() and labels[44, 30, 82] == T12
    assert np.isfinite(across[:2, 46, 30, 78]).all() and labels[46, 30, 78] == L1


def test_lone_vertebra_gets_its_body_height_along_s():
    labels = dense_labels((40, 40, 60), np.eye(4), Centroids([L1], [[20, 20, 30.2]]))
    # L1 body height 25 mm: from z = 17.7 to 42.7.
    assert labels[20, 20, 18] == L1 and labels[20, 20, 42] == L1
    assert labels[20, 20, 17] == 0 and labels[20, 20, 43] == 0


def test_no_centroids_give_background():
    assert not dense_labels((8, 8, 8), np.eye(4), Centroids.empty()).any()


def test_dense_labels_honour_the_world_frame_of_a_permuted_flipped_grid():
    # Grid stored as (S, L, P) with anisotropic voxels, i.e. LPS-like with a permuted axis order.
    affine = np.array([[0.0, -1.0, 0.0, 40.37],
                       [0.0, 0.0, -1.5, 50.21],
                       [2.0, 0.0, 0.0, -10.13],
                       [0.0, 0.0, 0.0, 1.0]])
    shape = (60, 61, 41)
    centroids = Centroids([T12, L1, L2], [[10.2, 20.3, 80.4], [11.1, 18.7, 53.9], [12.6, 19.4, 25.3]])
    labels = dense_labels(shape, affine, centroids)
    for label, ijk in zip(centroids.labels, np.round(centroids.to_voxel(affine)).astype(int)):
        assert labels[tuple(ijk)] == label
    canonical = CTVolume(labels, affine).canonical()
    assert canonical.axcodes == ("R", "A", "S")
    np.testing.assert_array_equal(canonical.array, dense_labels(canonical.shape, canonical.affine, centroids))


def test_dense_labels_reject_coincident_centroids_and_bad_scale():
    with pytest.raises(SpinelabError, match="coincide"):
        dense_labels((8, 8, 8), np.eye(4), Centroids([L1, L2], [[4, 4, 4], [4, 4, 4]]))
    with pytest.raises(SpinelabError, match="radius_scale"):
        dense_labels((8, 8, 8), np.eye(4), COLUMN, radius_scale=0)
