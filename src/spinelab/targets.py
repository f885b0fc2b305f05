"""Training targets shared by the localization methods: Gaussian heatmaps and dense vertebra labels.

A detection mask is ``dense_labels(...) > 0``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from spinelab import vertebrae
from spinelab.errors import SpinelabError
from spinelab.io.centroids import Centroids

#: Blobs are cut this many sigmas from their centre, where they have fallen below 2e-8.
_HEATMAP_TRUNCATE = 6.0


def gaussian_heatmap(points, shape: Sequence[int], sigma: float | Sequence[float]) -> np.ndarray:
    """Heatmap of ``shape`` (float32) with a Gaussian of peak 1 at every point, overlapping blobs max-combined.

    ``points`` (N, ndim) are array indices (row, col in 2D; i, j, k in 3D), fractional allowed;
    ``sigma`` is in voxels, one value or one per axis. Taking the maximum (not the sum) keeps
    neighbouring vertebrae as separate peaks of height 1. Each blob is the outer product of 1D
    Gaussians over its own box, so many points on a large 3D grid stay cheap.
    """
    shape = tuple(int(n) for n in shape)
    ndim = len(shape)
    sigmas = np.asarray(sigma, dtype=np.float64).reshape(-1)
    if sigmas.size == 1:
        sigmas = np.repeat(sigmas, ndim)
    if sigmas.size != ndim or not (np.isfinite(sigmas) & (sigmas > 0)).all():
        raise SpinelabError(f"heatmap sigma must be positive and finite (one value or {ndim}), got {sigma}")
    points = np.asarray(points, dtype=np.float64)
    if points.size == 0:
        return np.zeros(shape, dtype=np.float32)
    if points.ndim > 2 or points.shape[-1] != ndim:
        raise SpinelabError(f"heatmap points must be (N, {ndim}) array indices, got shape {points.shape}")
    points = points.reshape(-1, ndim)
    if not np.isfinite(points).all():
        raise SpinelabError("heatmap points must be finite")

    heatmap = np.zeros(shape, dtype=np.float32)
    reach = _HEATMAP_TRUNCATE * sigmas
    for point in points:
        lows = np.maximum(np.ceil(point - reach), 0).astype(int)
        highs = np.minimum(np.floor(point + reach) + 1, shape).astype(int)
        if (highs <= lows).any():
            continue
        blob = np.ones((1,) * ndim, dtype=np.float32)
        for axis, (low, high, centre, s) in enumerate(zip(lows, highs, point, sigmas)):
            profile = np.exp(-0.5 * ((np.arange(low, high) - centre) / s) ** 2).astype(np.float32)
            blob = blob * profile.reshape([-1 if a == axis else 1 for a in range(ndim)])
        box = tuple(slice(low, high) for low, high in zip(lows, highs))
        np.maximum(heatmap[box], blob, out=heatmap[box])
    return heatmap


def _segments(centroids: Centroids) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels and (top, bottom) world end points of each vertebra's segment, skull to tail."""
    ordered = centroids.sorted()
    positions = ordered.world
    if len(ordered) == 1:
        half = vertebrae.BODY_SIZES[int(ordered.labels[0])].height / 2
        superior = np.array([0.0, 0.0, half])
        return ordered.labels, positions + superior, positions - superior
    gaps = np.linalg.norm(np.diff(positions, axis=0), axis=1)
    if (gaps < 1e-6).any():
        pair = int(np.argmin(gaps))
        names = [vertebrae.name(label) for label in ordered.labels[pair:pair + 2]]
        raise SpinelabError(f"dense labels: centroids of {names[0]} and {names[1]} coincide")
    midpoints = (positions[:-1] + positions[1:]) / 2
    tops = np.concatenate([[2 * positions[0] - midpoints[0]], midpoints])
    bottoms = np.concatenate([midpoints, [2 * positions[-1] - midpoints[-1]]])
    return ordered.labels, tops, bottoms


def dense_labels(shape: Sequence[int], affine, centroids: Centroids, radius_scale: float = 1.0) -> np.ndarray:
    """Per-voxel VerSe labels (int16, background 0) grown from sparse centroids, after McCouat & Glocker 2019 §2.3.

    Centroids are sorted anatomically; each vertebra owns the segment between the midpoints with its
    upper and lower neighbours (the first and last are extended past their centroid by the half-length
    of their other side; a lone vertebra gets its ``BODY_SIZES`` height along world S). A disc swept
    perpendicular to the segment labels a voxel when its projection falls on the segment and its
    distance from the axis is at most ``radius_scale * depth / 2`` of ``BODY_SIZES``: the depth is the
    smaller endplate dimension, so the disc stays inside the body instead of spilling into soft tissue
    in front of it. Where discs overlap (the concave side of a curve) the closer axis wins. Voxels are
    placed in the world with ``affine``, so the labels do not depend on how the grid orders its axes.
    """
    shape = tuple(int(n) for n in shape)
    affine = np.asarray(affine, dtype=np.float64)
    if len(shape) != 3 or affine.shape != (4, 4):
        raise SpinelabError(f"dense labels need a 3D shape and a 4x4 affine, got {shape} and {affine.shape}")
    if not radius_scale > 0:
        raise SpinelabError(f"dense labels: radius_scale must be positive, got {radius_scale}")
    labels_map = np.zeros(shape, dtype=np.int16)
    if len(centroids) == 0:
        return labels_map
    closest = np.full(shape, np.inf, dtype=np.float32)  # squared distance to the axis of the label given
    to_voxel = np.linalg.inv(affine)
    for label, top, bottom in zip(*_segments(centroids)):
        radius = radius_scale * vertebrae.BODY_SIZES[int(label)].depth / 2
        length = np.linalg.norm(bottom - top)
        axis = (bottom - top) / length
        box = _voxel_box(np.stack([top, bottom]), radius, to_voxel, shape)
        if box is None:
            continue
        offsets = _world_grid(affine, box) - top
        along = offsets @ axis
        across_squared = np.einsum("...i,...i->...", offsets, offsets) - along**2
        inside = (along >= 0) & (along <= length) & (across_squared <= radius**2)
        take = inside & (across_squared < closest[box])
        labels_map[box][take] = label
        closest[box][take] = across_squared[take]
    return labels_map


def _voxel_box(ends: np.ndarray, radius: float, to_voxel: np.ndarray, shape) -> tuple[slice, ...] | None:
    """Voxel index box (clipped to the grid) holding the world box of a segment widened by ``radius``."""
    low, high = ends.min(axis=0) - radius, ends.max(axis=0) + radius
    corners = np.array([[x, y, z] for x in (low[0], high[0]) for y in (low[1], high[1]) for z in (low[2], high[2])])
    ijk = corners @ to_voxel[:3, :3].T + to_voxel[:3, 3]
    starts = np.maximum(np.floor(ijk.min(axis=0)), 0).astype(int)
    stops = np.minimum(np.ceil(ijk.max(axis=0)) + 1, shape).astype(int)
    if (stops <= starts).any():
        return None
    return tuple(slice(start, stop) for start, stop in zip(starts, stops))


def _world_grid(affine: np.ndarray, box: tuple[slice, ...]) -> np.ndarray:
    """World positions (..., 3) of the voxels in ``box``, built by broadcasting one axis at a time."""
    world = affine[:3, 3].copy().reshape(1, 1, 1, 3)
    for axis, part in enumerate(box):
        index = np.arange(part.start, part.stop, dtype=np.float64).reshape([-1 if a == axis else 1 for a in range(3)])
        world = world + index[..., None] * affine[:3, axis]
    return world
