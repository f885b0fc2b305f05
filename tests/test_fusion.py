import numpy as np
import pytest

from spinelab.errors import SpinelabError
from spinelab.methods.multiview.fusion import fuse_views, intersect_rays, ray_distances
from spinelab.methods.multiview.projection import circular_views

CENTER = np.array([5.0, -40.0, 300.0])
VIEWS = circular_views(CENTER, [0, 0, 1], k=10, extent_mm=400.0)  # 1.5625 mm per pixel at the isocentre


def spine(count=8):
    """Centroids 25 mm apart along a gently curved spine, superior first."""
    heights = np.arange(count)[::-1] * 25.0 - 90.0
    return CENTER + np.stack([8 * np.sin(heights / 80), -30 + 5 * np.cos(heights / 60), heights], axis=1)


def test_exact_rays_meet_in_the_point_and_parallel_rays_are_refused():
    point = CENTER + [10.0, 20.0, -30.0]
    rays = [view.rays(view.project(point)) for view in VIEWS[:4]]
    origins, directions = (np.concatenate(part) for part in zip(*rays))
    assert np.allclose(intersect_rays(origins, directions), point, atol=1e-6)
    with pytest.raises(SpinelabError, match="intersect"):
        intersect_rays([[0, 0, 0], [1, 0, 0]], [[0, 0, 1], [0, 0, 1]])


def test_noisy_rays_give_a_point_closer_than_the_noise():
    rng = np.random.default_rng(0)
    point = CENTER + [-15.0, 10.0, 40.0]
    noise_px = 1.0
    errors = []
    for _ in range(20):
        rays = [view.rays(view.project(point) + rng.normal(0, noise_px, 2)) for view in VIEWS]
        origins, directions = (np.concatenate(part) for part in zip(*rays))
        errors.append(np.linalg.norm(intersect_rays(origins, directions) - point))
    noise_mm = noise_px * VIEWS[0].pixel_mm_at_isocenter
    assert np.mean(errors) < noise_mm


def test_weights_silence_an_outlier_ray():
    point = CENTER + [0.0, 5.0, 5.0]
    pixels = [view.project(point)[0] for view in VIEWS[:5]]
    pixels[2] = pixels[2] + [30.0, 0.0]
    origins, directions = (np.concatenate(part) for part in zip(*(v.rays(p) for v, p in zip(VIEWS, pixels))))
    assert np.linalg.norm(intersect_rays(origins, directions) - point) > 5.0
    assert np.allclose(intersect_rays(origins, directions, [1, 1, 0, 1, 1]), point, atol=1e-6)
    assert ray_distances(point, origins, directions)[2] > 20.0


def test_fusion_recovers_a_spine_despite_missed_false_and_wrong_detections():
    rng = np.random.default_rng(1)
    truth = spine()
    detections = [view.project(truth) + rng.normal(0, 0.5, (len(truth), 2)) for view in VIEWS]
    detections[2] = np.delete(detections[2], [0, 5], axis=0)  # view 2 misses two vertebrae
    detections[7] = np.delete(detections[7], 3, axis=0)
    detections[4] = np.vstack([detections[4], [[30.0, 40.0]]])  # a false positive
    detections[6][4] += [0.0, 12.0]  # a detection 19 mm off along the spine
    scores = [np.ones(len(points)) for points in detections]
    fused = fuse_views(detections, VIEWS, scores, tolerance_mm=8.0)
    assert len(fused) == len(truth)
    points = np.array([vertebra.point for vertebra in fused])
    assert np.linalg.norm(points - truth, axis=1).max() < 1.5  # sorted superior first, like truth
    assert 6 not in fused[4].views and len(fused[4].views) == 9
    assert all(len(vertebra.views) == 10 for i, vertebra in enumerate(fused) if i not in (0, 3, 4, 5))
    assert not any(4 in v.views and 8 in v.detections[v.views == 4] for v in fused)
    for vertebra in fused:
        assert (vertebra.residuals_mm < 8.0).all()
        assert len(set(vertebra.views.tolist())) == len(vertebra.views)
    view_six = [d for v in fused for d in v.detections[v.views == 6]]
    assert sorted(view_six) == [0, 1, 2, 3, 5, 6, 7]


def test_fusion_needs_enough_views():
    truth = spine(3)
    detections = [view.project(truth) if i < 2 else np.zeros((0, 2)) for i, view in enumerate(VIEWS)]
    assert fuse_views(detections, VIEWS) == []
    with pytest.raises(SpinelabError, match="detection lists"):
        fuse_views(detections[:3], VIEWS)
