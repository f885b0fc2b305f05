"""Oblique and sheared grids: canonical() resamples them onto the world axes without moving anything in world space."""

from __future__ import annotations

import warnings

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.transform import Rotation

from spinelab import vertebrae
from spinelab.errors import SpinelabWarning
from spinelab.io.images import read_ct, read_label_map, write_nifti
from spinelab.io.volume import CTVolume

#: World positions (mm) of bright points, all within 35 mm of the origin so that every grid below holds them.
LANDMARKS = np.array([[10.0, -20.0, 15.0], [-25.0, 12.0, -8.0], [18.0, 22.0, -24.0], [-5.0, -15.0, 28.0]])
SHAPE = (64, 64, 64)
SPACING = 1.5


def centred_affine(matrix: np.ndarray, shape=SHAPE) -> np.ndarray:
    """Voxel -> world affine with direction/size ``matrix`` whose middle voxel sits at the world origin."""
    affine = np.eye(4)
    affine[:3, :3] = matrix
    affine[:3, 3] = -matrix @ ((np.array(shape) - 1) / 2)
    return affine


def landmark_volume() -> CTVolume:
    """Bone-bright Gaussian points (sigma 2 mm, +1000 HU in -1000 HU air) at LANDMARKS on an axis-aligned grid."""
    volume = CTVolume(np.zeros(SHAPE, np.float32), centred_affine(np.eye(3) * SPACING))
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij"), axis=-1)
    world = volume.to_world(ijk)
    for point in LANDMARKS:
        volume.array += 2000.0 * np.exp(-0.5 * (np.linalg.norm(world - point, axis=-1) / 2.0) ** 2)
    volume.array -= 1000.0
    return volume


def stored_on(volume: CTVolume, matrix: np.ndarray) -> CTVolume:
    """The same patient resampled onto a grid with direction/size ``matrix``, centred where the volume is."""
    grid = CTVolume(np.zeros(SHAPE, np.float32), centred_affine(matrix))
    return volume.resampled_onto(grid, order=1, cval=float(volume.array.min()))


def landmark_positions(volume: CTVolume) -> np.ndarray:
    """World centre of mass of each bright blob, in the order of LANDMARKS."""
    weights = volume.array - volume.array.min()
    blobs, count = ndimage.label(weights > 0.2 * weights.max())
    assert count == len(LANDMARKS)
    found = volume.to_world(np.array(ndimage.center_of_mass(weights, blobs, range(1, count + 1))))
    return found[[np.argmin(np.linalg.norm(found - point, axis=1)) for point in LANDMARKS]]


def rotation(axis: str, degrees: float) -> np.ndarray:
    return Rotation.from_euler(axis, degrees, degrees=True).as_matrix()


def rotated_copy(volume: CTVolume, matrix: np.ndarray) -> CTVolume:
    """The same patient on the volume's grid turned by ``matrix`` about its centre, enlarged to hold all of it."""
    axes = matrix @ volume.affine[:3, :3]
    centre = volume.to_world((np.array(volume.shape) - 1) / 2)
    corners = np.array(np.meshgrid(*[(0, n - 1) for n in volume.shape], indexing="ij")).reshape(3, -1).T
    half = np.abs((volume.to_world(corners) - centre) @ np.linalg.inv(axes).T).max(axis=0)
    shape = tuple(int(n) for n in np.ceil(2 * half) + 1)
    affine = np.eye(4)
    affine[:3, :3] = axes
    affine[:3, 3] = centre - axes @ ((np.array(shape) - 1) / 2)
    return volume.resampled_onto(CTVolume(np.zeros(shape, np.float32), affine), order=1, cval=float(volume.array.min()))


@pytest.mark.parametrize("axis", ["x", "y", "z"])
def test_a_grid_rotated_30_degrees_is_resampled_onto_the_world_axes_in_place(axis):
    stored = stored_on(landmark_volume(), rotation(axis, 30.0) @ np.diag([SPACING, SPACING, 2.0 * SPACING]))
    assert stored.obliquity == pytest.approx(30.0)
    with pytest.warns(SpinelabWarning, match=r"oblique scan \(axes 30\.0° from the world axes\): resampled onto"):
        canonical = stored.canonical()
    assert canonical.axcodes == ("R", "A", "S") and canonical.obliquity == 0.0
    np.testing.assert_allclose(canonical.affine[:3, :3], np.diag(np.diag(canonical.affine[:3, :3])))
    assert canonical.array.size <= 1.5 * stored.array.size
    assert canonical.array.min() == pytest.approx(stored.array.min())
    assert np.abs(landmark_positions(canonical) - LANDMARKS).max() <= 1.0


def test_a_sheared_grid_is_resampled_onto_the_world_axes_in_place():
    sheared = np.array([[SPACING, 0.6, 0.0], [0.0, SPACING, 0.0], [0.4, 0.0, SPACING]])
    stored = stored_on(landmark_volume(), sheared)
    with pytest.warns(SpinelabWarning, match=r"axes 21\.8° from the world axes"):
        canonical = stored.canonical()
    assert canonical.axcodes == ("R", "A", "S") and canonical.obliquity == 0.0
    assert np.abs(landmark_positions(canonical) - LANDMARKS).max() <= 1.0


def test_an_anisotropic_oblique_grid_keeps_its_voxel_count_bounded():
    thick_slices = CTVolume(np.zeros((120, 110, 30), np.int16),
                            centred_affine(rotation("x", 45.0) @ np.diag([0.5, 0.5, 5.0]), (120, 110, 30)))
    with pytest.warns(SpinelabWarning):
        canonical = thick_slices.canonical()
    assert canonical.array.size <= 1.5 * thick_slices.array.size
    assert canonical.array.dtype == np.float32


@pytest.mark.parametrize("codes", [("P", "I", "L"), ("L", "A", "I"), ("S", "R", "P")])
def test_permuted_grids_and_a_hair_of_tilt_stay_exact_views_without_warning(codes):
    volume = landmark_volume()
    slightly_tilted = CTVolume(volume.array, centred_affine(rotation("y", 0.3) * SPACING))
    for stored in (volume.reoriented(codes), slightly_tilted.reoriented(codes)):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            canonical = stored.canonical()
        assert canonical.axcodes == ("R", "A", "S")
        assert np.shares_memory(canonical.array, stored.array)
        np.testing.assert_array_equal(canonical.array, volume.array)


def test_a_boolean_mask_stays_a_mask():
    volume = landmark_volume()
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij"), axis=-1)
    ball = volume.with_array(np.linalg.norm(volume.to_world(ijk) - LANDMARKS[0], axis=-1) < 15.0)
    stored = stored_on(ball.with_array(ball.array.astype(np.float32)), rotation("z", 30.0) * SPACING)
    stored = stored.with_array(stored.array >= 0.5)
    with pytest.warns(SpinelabWarning):
        canonical = stored.canonical()
    assert canonical.array.dtype == bool
    assert canonical.array.sum() * np.prod(canonical.spacing) == pytest.approx(4 / 3 * np.pi * 15.0**3, rel=0.05)
    centre = canonical.to_world(ndimage.center_of_mass(canonical.array))
    assert np.linalg.norm(centre - LANDMARKS[0]) <= 0.5


def test_a_nifti_without_sform_and_qform_is_read_with_a_warning(tmp_path):
    volume = landmark_volume()
    image = nib.Nifti1Image(volume.array, volume.affine)
    image.set_sform(None, code=0)
    image.set_qform(None, code=0)
    nib.save(image, tmp_path / "bare.nii.gz")
    expected = r"bare\.nii\.gz has no orientation in its header \(sform and qform codes 0\); assuming LAS axes of 1\.5"
    with pytest.warns(SpinelabWarning, match=expected):
        bare = read_ct(tmp_path / "bare.nii.gz")
    assert bare.axcodes == ("L", "A", "S")
    labels = nib.Nifti1Image((volume.array > 0).astype(np.int16), None)
    nib.save(labels, tmp_path / "bare_labels.nii.gz")
    with pytest.warns(SpinelabWarning, match="bare_labels.nii.gz has no orientation"):
        read_label_map(tmp_path / "bare_labels.nii.gz")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_ct(write_nifti(volume, tmp_path / "oriented.nii.gz"))


@pytest.mark.slow
def test_the_packaged_model_finds_the_same_vertebrae_in_an_oblique_copy_of_a_scan():
    """End to end: a synthetic lumbar CT and the same patient stored on a grid turned 30 degrees about x.

    The case is the first lumbar one from seed 6 on in which the model finds every vertebra within
    5 mm (seed 6 itself, an osteoporotic-looking 2.2 mm case, gives no spine). The sacrum's centroid is loosely
    defined for this model, whose predictions move up to 5.6 mm when the same CT is merely resampled
    half a voxel over.
    """
    from spinelab.methods import load_method
    from spinelab.synth import SynthOptions, generate_case

    method = load_method("multiview")
    for seed in range(6, 16):
        case = generate_case(seed, SynthOptions(resolution="test", fov="lumbar"))
        reference = method.predict(case.ct).centroids
        truth = case.centroids.as_dict()
        found = reference.as_dict()
        if set(truth) <= set(found) and max(np.linalg.norm(found[label] - truth[label]) for label in truth) <= 5.0:
            break
    assert set(truth) <= set(found)
    assert max(np.linalg.norm(found[label] - truth[label]) for label in truth) <= 5.0
    with pytest.warns(SpinelabWarning, match=r"oblique scan \(axes 30\.0° from the world axes\)"):
        oblique = method.predict(rotated_copy(case.ct, rotation("x", 30.0))).centroids
    assert oblique.labels.tolist() == reference.labels.tolist()
    moved = np.linalg.norm(oblique.world - reference.world, axis=1)
    sacrum = reference.labels == vertebrae.label("S")
    # The bone stage's 4 mm mask is resampled with the grid, so a vertebra may move about one of its voxels
    # (2.3 mm measured with the first stage, 3.5 mm with the retrained one, 4.1 mm for the topmost vertebra
    # once fusion kept only rays within 7 mm); the sacrum as far as a half-voxel resampling moves it (5.3 mm
    # measured without the real spines). An orientation error moves them centimetres.
    assert moved[~sacrum].max() <= 5.0 and moved[sacrum].max() <= 6.0
