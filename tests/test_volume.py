"""CTVolume geometry: resampling and block averaging move no world position; canonical() undoes any storage order."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import ndimage

from spinelab.io.volume import CTVolume

BLOB = np.array([12.3, -40.7, 95.2])


def blob_volume() -> CTVolume:
    """A smooth blob at a known world point on an anisotropic, oblique-free but flipped grid."""
    affine = np.array([[-0.8, 0, 0, 30.0], [0, 0, 2.5, -80.0], [0, 1.1, 0, 60.0], [0, 0, 0, 1]])
    volume = CTVolume(np.zeros((70, 50, 40), np.float32), affine)
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in volume.shape], indexing="ij"), axis=-1)
    distance = np.linalg.norm(volume.to_world(ijk) - BLOB, axis=-1)
    volume.array[:] = 1000.0 * np.exp(-0.5 * (distance / 6.0) ** 2)
    return volume


def world_centre_of_mass(volume: CTVolume) -> np.ndarray:
    return volume.to_world(ndimage.center_of_mass(volume.array))


@pytest.mark.parametrize("spacing", [1.0, (0.5, 3.0, 1.7)])
def test_resampling_keeps_world_positions(spacing):
    resampled = blob_volume().resampled(spacing)
    np.testing.assert_allclose(resampled.spacing, np.broadcast_to(spacing, 3), atol=1e-9)
    np.testing.assert_allclose(world_centre_of_mass(resampled), BLOB, atol=0.15)


def test_block_averaging_keeps_world_positions():
    volume = blob_volume()
    averaged = volume.block_averaged(2.0)
    np.testing.assert_allclose(averaged.spacing, [1.6, 2.2, 2.5], atol=1e-9)
    np.testing.assert_allclose(world_centre_of_mass(averaged), world_centre_of_mass(volume), atol=0.05)


def test_block_averaging_is_the_mean_of_each_whole_block():
    values = np.random.default_rng(0).integers(-1000, 3072, (13, 10, 7)).astype(np.int16)
    averaged = CTVolume(values, np.diag([0.7, 1.0, 2.0, 1.0])).block_averaged(2.0)  # blocks of 3 x 2 x 1
    assert averaged.shape == (4, 5, 7), "the trailing voxel row that fills no block is dropped"
    expected = [[[values[3 * i:3 * i + 3, 2 * j:2 * j + 2, k].mean() for k in range(7)] for j in range(5)]
                for i in range(4)]
    assert averaged.array.dtype == np.float32
    np.testing.assert_allclose(averaged.array, expected, rtol=1e-6)

def test_canonical_undoes_every_axis_order_and_flip():
    canonical = blob_volume().canonical()
    assert canonical.axcodes == ("R", "A", "S")
    for order in itertools.permutations("RAS"):
        for flips in itertools.product((False, True), repeat=3):
            codes = tuple({"R": "L", "A": "P", "S": "I"}[c] if flip else c for c, flip in zip(order, flips))
            stored = blob_volume().reoriented(codes)
            assert stored.axcodes == codes
            again = stored.canonical()
            np.testing.assert_array_equal(again.array, canonical.array)
            np.testing.assert_allclose(again.affine, canonical.affine, atol=1e-9)


def test_resampling_a_column_major_array_gives_the_row_major_result():
    """NIfTI arrays are column-major; resampling reads them through their transpose, which must not move a voxel."""
    values = np.random.default_rng(1).normal(0.0, 300.0, (30, 25, 20)).astype(np.float32)
    affine = np.array([[0.9, 0.1, 0, 5], [0, 1.2, 0.2, -3], [0.05, 0, 2.0, 7], [0, 0, 0, 1.0]])
    row_major = CTVolume(np.ascontiguousarray(values), affine)
    column_major = CTVolume(np.asfortranarray(values), affine)
    grid = CTVolume(np.zeros((15, 17, 12), np.float32), np.array([[1.7, 0, 0.1, 2], [0.05, 1.5, 0, 1],
                                                                  [0, 0, 2.2, 9], [0, 0, 0, 1.0]]))
    for order in (0, 1):
        np.testing.assert_array_equal(column_major.resampled_onto(grid, order=order, cval=-5.0).array,
                                      row_major.resampled_onto(grid, order=order, cval=-5.0).array)
    spacing = (1.1, 2.5, 0.7)
    np.testing.assert_array_equal(column_major.resampled(spacing).array, row_major.resampled(spacing).array)
