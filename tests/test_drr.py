import numpy as np
import pytest

from spinelab import vertebrae
from spinelab.errors import SpinelabError
from spinelab.io.volume import CTVolume
from spinelab.methods.multiview.projection import circular_views
from spinelab.methods.multiview.render import (MU_WATER, normalize_drr, render_drr, render_drr_torch,
                                               render_views)
from spinelab.methods.multiview.targets import identification_targets
from spinelab.targets import gaussian_heatmap
from spinelab.vertebrae import NUM_CLASSES, class_index, label_of_class

BONE_HU = 1000.0  # mu = 2 * MU_WATER


def sphere_volume(radius=25.0, spacing=1.0, size=72):
    """A uniform sphere of BONE_HU in air, centred on the world origin."""
    axis = (np.arange(size) - (size - 1) / 2) * spacing
    x, y, z = np.meshgrid(axis, axis, axis, indexing="ij")
    array = np.where(x**2 + y**2 + z**2 <= radius**2, BONE_HU, -1000.0).astype(np.float32)
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = -(size - 1) / 2 * spacing
    return CTVolume(array, affine)


def test_sphere_line_integrals_match_the_chord_lengths():
    radius = 25.0
    volume = sphere_volume(radius)
    view = circular_views([0, 0, 0], [0, 0, 1], k=7, extent_mm=80.0, detector_shape=(41, 41))[3]
    image = render_drr(volume, view, step_mm=0.5)
    rows, cols = np.mgrid[0:41, 0:41]
    origins, directions = view.rays(np.stack([cols.ravel(), rows.ravel()], axis=1))
    miss = np.linalg.norm(np.cross(-origins, directions), axis=1)  # distance of each ray to the centre
    chord = 2 * np.sqrt(np.clip(radius**2 - miss**2, 0, None))
    expected = (2 * MU_WATER * chord).reshape(41, 41)
    inside = chord.reshape(41, 41) > 10.0
    assert np.abs(image - expected)[inside].max() / expected.max() < 0.02
    assert not image[miss.reshape(41, 41) > radius + 1.5].any()


def test_box_integral_along_the_central_ray_is_exact():
    array = np.full((40, 50, 30), -1000.0, np.float32)
    array[10:30, 12:37, 5:25] = BONE_HU  # 25 voxels deep along y, the beam axis of view 0
    affine = np.diag([1.0, 2.0, 1.0, 1.0])
    volume = CTVolume(array, affine)
    center = volume.to_world([19.5, 24.0, 14.5])
    view = circular_views(center, [0, 0, 1], k=1, extent_mm=60.0, detector_shape=(31, 31))[0]
    assert render_drr(volume, view, step_mm=0.5)[15, 15] == pytest.approx(2 * MU_WATER * 25 * 2.0, rel=1e-3)


def bright_point_volume():
    array = np.full((30, 36, 40), -1000.0, np.float32)
    array[9, 20, 27] = 20000.0
    affine = np.array([[1.5, 0, 0, -20], [0, 1.2, 0, -25], [0, 0, 2.0, 100], [0, 0, 0, 1]])
    return CTVolume(array, affine), (9, 20, 27)


def rotated(volume):
    """Same voxels, world turned by a rigid rotation (an oblique acquisition)."""
    angle = np.deg2rad(25.0)
    turn = np.eye(4)
    turn[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    return CTVolume(volume.array, turn @ volume.affine)


@pytest.mark.parametrize("orient", ["RAS", "LPI", "PIR", "oblique"])
def test_a_bright_voxel_appears_where_the_view_projects_it(orient):
    volume, voxel = bright_point_volume()
    if orient == "oblique":
        volume = rotated(volume)
    point = volume.to_world(voxel)
    if orient not in ("RAS", "oblique"):
        volume = volume.reoriented(tuple(orient))
    for view in circular_views(volume.to_world((np.array(volume.shape) - 1) / 2), [0, 0, 1], k=5,
                               extent_mm=90.0, detector_shape=(64, 64)):
        image = render_drr(volume, view)
        brightest = np.unravel_index(np.argmax(image), image.shape)[::-1]
        assert np.linalg.norm(brightest - view.project(point)[0]) <= 1.0


def test_orientation_of_the_stored_array_does_not_change_the_image():
    volume, _ = bright_point_volume()
    volume.array[5:20, 10:30, 5:35] += 1500.0
    views = circular_views(volume.to_world([14.5, 17.5, 19.5]), [0, 0, 1], k=3, extent_mm=90.0, detector_shape=(48, 40))
    reference = render_views(volume, views)
    for axcodes in (("L", "P", "I"), ("I", "R", "P")):
        assert np.allclose(render_views(volume.reoriented(axcodes), views), reference, rtol=1e-4, atol=1e-4)


def test_torch_renderer_agrees_with_the_numba_renderer():
    volume, _ = bright_point_volume()
    volume.array[5:20, 10:30, 5:35] = np.random.default_rng(1).uniform(-200, 1500, (15, 20, 30))
    views = circular_views(volume.to_world([14.5, 17.5, 19.5]), [0, 0, 1], k=3, extent_mm=90.0, detector_shape=(32, 24))
    numba_images = render_views(volume, views)
    torch_images = render_drr_torch(volume, views, max_samples=20000).numpy()
    assert torch_images.shape == numba_images.shape
    assert np.abs(torch_images - numba_images).max() / numba_images.max() < 1e-2


def test_render_rejects_a_non_positive_step():
    volume, _ = bright_point_volume()
    view = circular_views([0, 0, 100], [0, 0, 1], k=1, extent_mm=90.0, detector_shape=(8, 8))[0]
    with pytest.raises(SpinelabError, match="step"):
        render_drr(volume, view, step_mm=0.0)


def test_normalize_drr_is_a_deterministic_scale_free_map_to_unit_range():
    image = np.random.default_rng(2).gamma(2.0, 1.0, (64, 64)).astype(np.float32)
    scaled = normalize_drr(image)
    assert scaled.min() == 0.0 and scaled.max() == 1.0 and scaled.dtype == np.float32
    assert np.allclose(normalize_drr(3 * image + 1), scaled, atol=1e-6)
    assert (np.diff(scaled.ravel()[np.argsort(image.ravel())]) >= 0).all()  # monotonic
    assert not normalize_drr(np.full((8, 8), 2.0)).any()


def test_heatmaps_peak_at_the_points_and_take_the_maximum_of_neighbours():
    heatmap = gaussian_heatmap(np.array([[10, 20], [14, 20], [40, 5]])[:, ::-1], (32, 48), 2.0)
    assert heatmap.shape == (32, 48) and heatmap.dtype == np.float32
    assert heatmap[20, 10] == pytest.approx(1.0) and heatmap[5, 40] == pytest.approx(1.0)
    assert heatmap[20, 12] == pytest.approx(np.exp(-0.5))  # midway: one Gaussian, not the sum of two
    assert heatmap[22, 40] == pytest.approx(0.0, abs=1e-6)


def test_class_indices_follow_the_spine_with_background_zero():
    names = ["C1", "C7", "T1", "T12", "T13", "L1", "L5", "L6", "S"]
    indices = [class_index(vertebrae.label(name)) for name in names]
    assert indices == [1, 7, 8, 19, 20, 21, 25, 26, 27]
    assert NUM_CLASSES == 28
    assert [vertebrae.name(label_of_class(i)) for i in indices] == names
    with pytest.raises(SpinelabError):
        class_index(vertebrae.label("coccyx"))


def test_identification_squares_are_22_mm_and_the_nearest_centroid_wins():
    labels = [vertebrae.label("T12"), vertebrae.label("L1"), vertebrae.label("coccyx")]
    classes = identification_targets([[20, 20], [20, 31], [50, 50]], labels, (64, 64), pixel_mm=1.0)
    t12, l1 = class_index(labels[0]), class_index(labels[1])
    assert classes.dtype == np.int64
    assert ((classes[:, 20] == t12) | (classes[:, 20] == l1)).sum() == 34  # rows 9..42
    assert classes[25, 20] == t12 and classes[26, 20] == l1  # overlap split half-way
    assert (classes[20] == t12).sum() == 23  # columns 9..31: |dc| <= 11 px
    assert not classes[40:, 40:].any()  # coccyx is not a predicted class
    half_mm = identification_targets([[20, 20]], labels[:1], (64, 64), pixel_mm=2.0)
    assert (half_mm[20] == t12).sum() == 11
