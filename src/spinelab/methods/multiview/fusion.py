"""Multi-view localization fusion: 2D detections of K views -> 3D vertebra centroids (world mm).

A detection in a view defines the ray from the X-ray source through its pixel; the rays of one
vertebra from different views meet near its centroid. Wu et al. (eq. 4-5) take the point with the
least summed squared distance to the K rays::

    D(p) = sum_k (a_k - p)^T (I - n_k n_k^T) (a_k - p)
    dD/dp = 0  =>  S p = q,  S = sum_k (I - n_k n_k^T),  q = sum_k (I - n_k n_k^T) a_k     (4-5)

(``intersect_rays``, optionally weighted). The paper pairs detections across views by their
order along the spine and only uses views that found the most common number of vertebrae;
``fuse_views`` instead associates them geometrically, so a view that misses a vertebra or adds a
false one costs only its own ray: hypotheses are the near-intersections of ray pairs from views
at least ``min_angle_deg`` apart, each is scored by how many views have a ray within
``tolerance_mm`` of it, and the best is refined by alternating eq. 5 with re-selecting, per view,
the nearest unused ray inside the tolerance (a RANSAC-style consensus with least-squares refits).
Rays of neighbouring vertebrae run about one vertebra height (15-35 mm) apart, so a tolerance
below that separates them without looking at labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spinelab.errors import SpinelabError
from spinelab.methods.multiview.projection import ConeBeamView


@dataclass
class FusedVertebra:
    """One vertebra seen in several views: its world ``point`` (RAS+ mm) and the rays behind it.

    ``views[i]`` and ``detections[i]`` index the contributing detection (view number, position in
    that view's list); ``residuals_mm[i]`` is that ray's distance to ``point``.
    """

    point: np.ndarray
    views: np.ndarray
    detections: np.ndarray
    residuals_mm: np.ndarray

    @property
    def support(self) -> int:
        """The number of views that saw it."""
        return len(np.unique(self.views))


def ray_distances(point, origins, directions) -> np.ndarray:
    """Distances (N,) from a point to N lines given by origins and unit directions (N, 3)."""
    offsets = np.asarray(point, dtype=np.float64) - np.asarray(origins, dtype=np.float64)
    directions = np.asarray(directions, dtype=np.float64)
    along = (offsets * directions).sum(axis=-1, keepdims=True)
    return np.linalg.norm(offsets - along * directions, axis=-1)


def intersect_rays(origins, directions, weights=None) -> np.ndarray:
    """Least-squares intersection (3,) of lines (eq. 4-5): the point nearest to all of them.

    ``weights`` (N,) scale each line's squared distance. Raises ``SpinelabError`` when the lines
    are (nearly) parallel and so do not fix a point.
    """
    origins = np.asarray(origins, dtype=np.float64).reshape(-1, 3)
    directions = np.asarray(directions, dtype=np.float64).reshape(-1, 3)
    directions = directions / np.linalg.norm(directions, axis=1, keepdims=True)
    weights = np.ones(len(origins)) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    if len(directions) != len(origins) or len(weights) != len(origins):
        raise SpinelabError("rays: origins, directions and weights differ in length")
    projectors = np.eye(3) - directions[:, :, None] * directions[:, None, :]  # I - n n^T
    system = np.einsum("n,nij->ij", weights, projectors)
    target = np.einsum("n,nij,nj->i", weights, projectors, origins)
    eigenvalues = np.linalg.eigvalsh(system)
    if len(origins) < 2 or eigenvalues[0] <= 1e-9 * max(eigenvalues[-1], 1e-300):
        raise SpinelabError(f"{len(origins)} rays do not intersect in a point (parallel or too few)")
    return np.linalg.solve(system, target)


def _closest_points(origins_a, directions_a, origins_b, directions_b):
    """Midpoints and gaps of the closest approach of line pairs (unit directions, not parallel)."""
    offset = origins_a - origins_b
    cosine = (directions_a * directions_b).sum(axis=1)
    along_a, along_b = (directions_a * offset).sum(axis=1), (directions_b * offset).sum(axis=1)
    denominator = 1.0 - cosine**2
    s = (cosine * along_b - along_a) / denominator
    t = (along_b - cosine * along_a) / denominator
    on_a = origins_a + s[:, None] * directions_a
    on_b = origins_b + t[:, None] * directions_b
    return (on_a + on_b) / 2.0, np.linalg.norm(on_a - on_b, axis=1)


def _join(parts, empty_shape) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(empty_shape)


class _Rays:
    """All detections of all views as rays, with the bookkeeping the consensus loop needs."""

    def __init__(self, points_per_view, views, scores_per_view):
        origins, directions, view_of, detection_of, scores = [], [], [], [], []
        for index, (points, view) in enumerate(zip(points_per_view, views)):
            points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
            if len(points) == 0:
                continue
            ray_origins, ray_directions = view.rays(points)
            origins.append(ray_origins)
            directions.append(ray_directions)
            view_of.append(np.full(len(points), index))
            detection_of.append(np.arange(len(points)))
            weight = np.ones(len(points)) if scores_per_view is None else np.asarray(scores_per_view[index], float)
            if weight.shape != (len(points),) or (weight < 0).any():
                raise SpinelabError(f"view {index}: scores must be {len(points)} non-negative numbers")
            scores.append(weight)
        self.origins, self.directions = _join(origins, (0, 3)), _join(directions, (0, 3))
        self.view_of = _join(view_of, 0).astype(np.int64)
        self.detection_of = _join(detection_of, 0).astype(np.int64)
        self.scores = _join(scores, 0)

    def nearest_per_view(self, distances: np.ndarray, usable: np.ndarray, tolerance: float):
        """For each row of ``distances`` (H, R): the nearest usable ray of every view within tolerance.

        Returns a boolean (H, R) mask selecting at most one ray per view and row.
        """
        chosen = np.zeros(distances.shape, dtype=bool)
        rows = np.arange(len(distances))
        for view in np.unique(self.view_of):
            columns = np.flatnonzero((self.view_of == view) & usable)
            if len(columns) == 0:
                continue
            block = distances[:, columns]
            best = block.argmin(axis=1)
            inside = block[rows, best] < tolerance
            chosen[rows[inside], columns[best[inside]]] = True
        return chosen


def _hypotheses(rays: _Rays, views, tolerance: float, min_angle_deg: float) -> np.ndarray:
    """Near-intersections of ray pairs from views whose beams differ by at least the minimum angle."""
    min_sine = np.sin(np.deg2rad(min_angle_deg))
    found = []
    present = np.unique(rays.view_of)
    for position, a in enumerate(present):
        for b in present[position + 1:]:
            if np.linalg.norm(np.cross(views[a].normal, views[b].normal)) < min_sine:
                continue
            ia, ib = np.flatnonzero(rays.view_of == a), np.flatnonzero(rays.view_of == b)
            ia, ib = np.repeat(ia, len(ib)), np.tile(ib, len(ia))
            midpoints, gaps = _closest_points(rays.origins[ia], rays.directions[ia],
                                              rays.origins[ib], rays.directions[ib])
            found.append(midpoints[gaps < tolerance])
    return np.concatenate(found) if found else np.zeros((0, 3))


def fuse_views(points_per_view, views: list[ConeBeamView], scores_per_view=None, tolerance_mm: float = 10.0,
               min_views: int = 3, min_angle_deg: float = 20.0, max_refits: int = 10) -> list[FusedVertebra]:
    """3D vertebrae from per-view 2D detections (list of (m_v, 2) arrays of (column, row) pixels).

    ``scores_per_view`` (optional, list of (m_v,) non-negative numbers, e.g. heatmap peak values)
    weight the rays in the consensus and in the least-squares refit. A vertebra needs rays from at
    least ``min_views`` views, each within ``tolerance_mm`` of the fitted point; each detection is
    used at most once. The result is sorted from superior to inferior (along the detectors' mean
    "up" direction, ``-v``), the order of the rows of the Sequence Loss and the voting.
    """
    if len(points_per_view) != len(views):
        raise SpinelabError(f"{len(points_per_view)} detection lists for {len(views)} views")
    if scores_per_view is not None and len(scores_per_view) != len(views):
        raise SpinelabError(f"{len(scores_per_view)} score lists for {len(views)} views")
    if min_views < 2:
        raise SpinelabError("a 3D point needs rays from at least 2 views")
    rays = _Rays(points_per_view, views, scores_per_view)
    candidates = _hypotheses(rays, views, tolerance_mm, min_angle_deg)
    distances = ray_distances(candidates[:, None, :], rays.origins, rays.directions)  # (H, R)
    alive = np.ones(len(candidates), dtype=bool)
    unused = np.ones(len(rays.scores), dtype=bool)

    def fit(members):
        return intersect_rays(rays.origins[members], rays.directions[members], rays.scores[members] + 1e-9)

    def inliers(point):
        return np.flatnonzero(rays.nearest_per_view(
            ray_distances(point, rays.origins, rays.directions)[None], unused, tolerance_mm)[0])

    fused = []
    while alive.any():
        chosen = rays.nearest_per_view(distances, unused, tolerance_mm) & alive[:, None]
        count, support = chosen.sum(axis=1), (chosen * rays.scores).sum(axis=1)
        best = np.lexsort((support, count))[-1]
        if count[best] < min_views:
            break
        alive[best] = False
        members = np.flatnonzero(chosen[best])
        for _ in range(max_refits):
            reselected = inliers(fit(members))
            if len(reselected) < min_views or np.array_equal(reselected, members):
                break
            members = reselected
        point = fit(members)
        members = members[ray_distances(point, rays.origins[members], rays.directions[members]) < tolerance_mm]
        if len(members) < min_views:
            continue
        point = fit(members)
        unused[members] = False
        fused.append(FusedVertebra(point, rays.view_of[members], rays.detection_of[members],
                                   ray_distances(point, rays.origins[members], rays.directions[members])))
    superior = -np.mean([view.v for view in views], axis=0)
    return sorted(fused, key=lambda vertebra: -float(vertebra.point @ superior))
