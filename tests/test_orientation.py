"""Metamorphic: storing one real label map in any of the 48 axis orders/flips changes no world centroid."""

import itertools

import numpy as np
import pytest
from nibabel import orientations as nio
from scipy import ndimage

from spinelab.io.formats import read_centroids, write_centroids
from spinelab.io.labelmap import centroids_from_label_map
from spinelab.io.images import read_label_map, write_nifti
from spinelab.io.volume import CTVolume

#: All 48 orientations: every permutation of the three axes with every combination of flips.
ORIENTATIONS = [np.column_stack([order, flips]).astype(float)
                for order in itertools.permutations(range(3)) for flips in itertools.product((1, -1), repeat=3)]


@pytest.fixture(scope="module")
def lumbar_map(shared_data) -> CTVolume:
    """VerSe's sub-verse010 (L1-L5, PIR, 1 mm) at 0.6 x 2 x 2 mm, cropped to the spine: small, asymmetric,
    and fine enough along one axis that the body estimate block-averages it."""
    labels = read_label_map(shared_data / "verse_masks" / "sub-verse010_seg-vert_msk.nii.gz")
    labels = labels.resampled((0.6, 2.0, 2.0), order=0)
    spine = ndimage.find_objects((labels.array > 0).astype(np.uint8))[0]
    box = tuple(slice(max(s.start - 3, 0), s.stop + 3) for s in spine)
    affine = labels.affine.copy()
    affine[:3, 3] = labels.to_world([s.start for s in box])
    return CTVolume(np.ascontiguousarray(labels.array[box]), affine, "sub-verse010")


def stored_as(volume: CTVolume, orientation: np.ndarray) -> CTVolume:
    """The same voxels in another axis order/flip, with the affine changed so every voxel keeps its place."""
    array = nio.apply_orientation(volume.array, orientation)
    affine = volume.affine @ nio.inv_ornt_aff(orientation, volume.shape)
    return CTVolume(np.ascontiguousarray(array), affine, volume.source)


def test_the_48_orientations_are_distinct_and_keep_world_positions(lumbar_map):
    codes = {stored_as(lumbar_map, o).axcodes for o in ORIENTATIONS}
    assert len(codes) == 48
    corner = lumbar_map.to_world([1, 2, 3])
    for orientation in ORIENTATIONS[::7]:
        stored = stored_as(lumbar_map, orientation)
        ijk = np.round(stored.to_voxel(corner)).astype(int)
        assert stored.array[tuple(ijk)] == lumbar_map.array[1, 2, 3]


def test_centroids_and_files_do_not_depend_on_axis_order(lumbar_map, tmp_path):
    baseline = centroids_from_label_map(lumbar_map.canonical(), scheme="verse")
    assert baseline.names() == ["L1", "L2", "L3", "L4", "L5"]
    for n, orientation in enumerate(ORIENTATIONS):
        stored = stored_as(lumbar_map, orientation)
        if n % 12 == 5:  # a few also travel through a NIfTI file
            stored = read_label_map(write_nifti(stored, tmp_path / f"o{n}.nii.gz"))
        found = centroids_from_label_map(stored.canonical(), scheme="verse")
        np.testing.assert_array_equal(found.labels, baseline.labels)
        assert np.abs(found.world - baseline.world).max() <= 0.01, stored.axcodes
        assert np.abs(centroids_from_label_map(stored, scheme="verse").world - baseline.world).max() <= 0.01
        for name in (f"o{n}_ctd.json", f"o{n}.mrk.json"):
            back = read_centroids(write_centroids(found, tmp_path / name, reference=stored), reference=stored)
            assert np.abs(back.world - baseline.world).max() <= 0.01, (name, stored.axcodes)
