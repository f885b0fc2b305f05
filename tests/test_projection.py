import numpy as np
import pytest

from spinelab.errors import SpinelabError
from spinelab.methods.multiview.projection import ConeBeamView, circular_views, views_for_volume
from spinelab.io.volume import CTVolume

CENTER = np.array([12.0, -30.0, 400.0])


def views(**kwargs):
    return circular_views(CENTER, [0, 0, 1], k=10, extent_mm=500.0, **kwargs)


def distance_to_rays(points, origins, directions):
    offsets = points - origins
    return np.linalg.norm(offsets - (offsets * directions).sum(axis=1, keepdims=True) * directions, axis=1)


@pytest.mark.parametrize("start_angle", [0.0, 17.0])
def test_project_then_back_project_passes_through_the_point(start_angle):
    points = CENTER + np.random.default_rng(0).uniform(-200, 200, size=(200, 3))
    for view in views(start_angle=start_angle):
        origins, directions = view.rays(view.project(points))
        assert np.allclose(np.linalg.norm(directions, axis=1), 1.0)
        assert distance_to_rays(points, origins, directions).max() <= 0.01


def test_projection_matches_a_line_plane_intersection():
    view = views()[3]
    point = CENTER + np.array([40.0, -25.0, 90.0])
    ray = point - view.source
    hit = view.source + ray * ((view.detector_center - view.source) @ view.normal) / (ray @ view.normal)
    expected = ((hit - view.detector_center) @ np.stack([view.u, view.v]).T) / view.pixel_size + view.center_pixel
    assert np.allclose(view.project(point)[0], expected, atol=1e-9)
    homogeneous = view.projection_matrix() @ np.append(point, 1.0)
    assert np.isclose(homogeneous[2], (point - view.source) @ view.normal)


def test_view_conventions_ap_first_head_up_counter_clockwise_from_the_head():
    first, quarter = circular_views(CENTER, [0, 0, 1], k=4, extent_mm=500.0)[:2]
    assert np.allclose(first.source, CENTER + [0, 500, 0])  # source anterior: AP beam
    assert np.allclose(quarter.source, CENTER + [-500, 0, 0])  # +90 degrees: source on the patient's left
    assert np.allclose(first.normal, [0, -1, 0])
    assert np.allclose(first.project(CENTER), [first.center_pixel])
    head, foot, left = first.project([CENTER + [0, 0, 100], CENTER - [0, 0, 100], CENTER + [-50, 0, 0]])
    assert head[1] < foot[1]  # head up
    assert left[0] > first.center_pixel[0]  # patient's right on the image's left


def test_magnification_and_pixel_size_at_the_isocenter():
    view = views()[2]
    assert view.magnification == pytest.approx(2.0)
    assert view.shape[1] * view.pixel_mm_at_isocenter == pytest.approx(500.0)
    ends = view.project([CENTER, CENTER + 10.0 * view.u])
    assert np.linalg.norm(ends[1] - ends[0]) == pytest.approx(10.0 / view.pixel_mm_at_isocenter)


@pytest.mark.parametrize("radius", [None, 120.0])
def test_views_for_volume_keep_the_content_on_the_detector(radius):
    affine = np.array([[0, 0, -1.5, 80], [-0.8, 0, 0, 40], [0, 2.0, 0, -300], [0, 0, 0, 1]])
    volume = CTVolume(np.zeros((300, 120, 200), np.int16), affine)
    corners = volume.to_world(np.array(np.meshgrid([0, 299], [0, 119], [0, 199], indexing="ij")).reshape(3, -1).T)
    fitted = views_for_volume(volume, k=6, detector_shape=(128, 96), content_radius_mm=radius)
    if radius is not None:
        angles = np.linspace(0, 2 * np.pi, 50)
        ring = radius * np.stack([np.cos(angles), np.sin(angles), 0 * angles], axis=1)
        center = fitted[0].isocenter
        corners = np.concatenate([center + ring + [0, 0, z] for z in (corners[:, 2].min() - center[2],
                                                                       corners[:, 2].max() - center[2])])
    extents = []
    for view in fitted:
        projected = view.project(corners)
        assert (projected >= -0.5).all() and (projected <= np.array([96, 128]) - 0.5).all()
        extents.append(np.abs(projected - view.center_pixel).max(axis=0) / [48, 64])
    assert max(np.max(e) for e in extents) > 1 / 1.05 - 0.01  # tight up to the margin


def test_view_round_trips_through_a_dict():
    view = views()[5]
    again = ConeBeamView.from_dict(view.as_dict())
    assert np.allclose(again.projection_matrix(), view.projection_matrix())


def test_bad_geometry_is_reported():
    with pytest.raises(SpinelabError, match="exactly one"):
        circular_views(CENTER, [0, 0, 1], pixel_size=1.0, extent_mm=300.0)
    with pytest.raises(SpinelabError, match="anterior-posterior"):
        circular_views(CENTER, [0, 1, 0], extent_mm=300.0)
    with pytest.raises(SpinelabError, match="behind"):
        views()[0].project(CENTER + [0, 600, 0])
