"""Vertebra centres on a predicted 2D heatmap by density-peak clustering (Rodriguez & Laio 2014).

Wu et al. locate the vertebrae on each DRR heatmap with this "fast search of density peaks".
Every pixel whose heatmap value reaches ``threshold`` is a candidate. For each candidate:

* ``rho`` (local density) is the heatmap smoothed by a Gaussian of ``density_sigma_px``, i.e. a
  Gaussian-kernel density estimate with the heatmap values as point weights, so a lone noisy
  pixel has a low density while a real blob keeps almost its peak value;
* ``delta`` is the distance to the nearest candidate of higher density (ties broken by pixel
  order so plateaus give one centre).

Centres are candidates with ``rho >= threshold`` and ``delta >= min_distance`` (the decision graph's
upper-right corner). Only whether ``delta`` exceeds the minimum distance matters, so it is
computed among neighbours within that distance (a k-d tree), which keeps the search near-linear.
Each centre is refined to sub-pixel precision by the heatmap-weighted centroid of a small window.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from spinelab.errors import SpinelabError


def find_peaks(heatmap, pixel_mm: float, min_distance_mm: float = 12.0, threshold: float = 0.3,
               density_sigma_px: float = 1.0, refine_radius_px: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Peaks of a heatmap (H, W): positions (M, 2) as (column, row) and scores (M,).

    ``pixel_mm`` converts ``min_distance_mm`` (the closest two vertebra centres can be, at the
    patient) into pixels; for a DRR it is ``view.pixel_mm_at_isocenter``. Scores are the heatmap
    values at the peak pixels. Peaks are sorted by row: superior to inferior on a head-up DRR.
    """
    heatmap = np.asarray(heatmap, dtype=np.float64)
    if heatmap.ndim != 2:
        raise SpinelabError(f"heatmap must be 2D, got shape {heatmap.shape}")
    if not np.isfinite(heatmap).all():
        raise SpinelabError("heatmap holds NaN or infinite values")
    if not (pixel_mm > 0 and min_distance_mm > 0):
        raise SpinelabError("pixel size and minimum peak distance must be positive")
    density = ndimage.gaussian_filter(heatmap, density_sigma_px, mode="constant") if density_sigma_px > 0 else heatmap
    rows, cols = np.nonzero(heatmap >= threshold)
    if len(rows) == 0:
        return np.zeros((0, 2)), np.zeros(0)
    rho = density[rows, cols]
    order = np.lexsort((-(rows * heatmap.shape[1] + cols), rho))  # ascending density, ties by pixel order
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    radius = min_distance_mm / pixel_mm
    points = np.stack([cols, rows], axis=1).astype(np.float64)
    pairs = cKDTree(points).query_pairs(radius, output_type="ndarray")
    dominated = np.zeros(len(points), dtype=bool)  # a denser candidate lies within the radius: delta < radius
    if len(pairs):
        a, b = pairs[:, 0], pairs[:, 1]
        lower = np.where(rank[a] < rank[b], a, b)
        close = np.linalg.norm(points[a] - points[b], axis=1) < radius
        dominated[lower[close]] = True
    centres = np.flatnonzero(~dominated & (rho >= threshold))
    positions = np.array([_weighted_centroid(heatmap, rows[i], cols[i], refine_radius_px) for i in centres])
    scores = heatmap[rows[centres], cols[centres]]
    by_row = np.argsort(positions[:, 1], kind="stable") if len(centres) else np.zeros(0, dtype=np.int64)
    return positions.reshape(-1, 2)[by_row], scores[by_row]


def _weighted_centroid(heatmap: np.ndarray, row: int, col: int, radius: int) -> np.ndarray:
    """(column, row) centroid of the non-negative heatmap in a (2r+1)^2 window around a pixel."""
    r0, r1 = max(row - radius, 0), min(row + radius + 1, heatmap.shape[0])
    c0, c1 = max(col - radius, 0), min(col + radius + 1, heatmap.shape[1])
    weights = np.clip(heatmap[r0:r1, c0:c1], 0.0, None)
    window_rows, window_cols = np.mgrid[r0:r1, c0:c1]
    total = weights.sum()
    if total <= 0:
        return np.array([col, row], dtype=np.float64)
    return np.array([(weights * window_cols).sum() / total, (weights * window_rows).sum() / total])
