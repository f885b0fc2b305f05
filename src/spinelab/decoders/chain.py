"""Keep the candidates that form one smooth vertebral column; drop those off it.

On real CTs a localizer also fires on dense structures beside the spine (a contrast-filled heart,
a rib head, a clavicle): each such candidate takes a label slot and shifts every label below it.
Real columns are smooth: over the 2,240 real keypoint sets in ``../shared/data`` (VID ground
truth and the VerSe tables) a body centroid lies at most 13.7 mm (99.9th percentile; 15.1 mm
with a neighbour missing) from the segment joining its neighbours, and neighbours lie 10.5-72 mm
apart (99.9 % under 45 mm). ``smooth_chain`` finds, by dynamic programming over the candidates
sorted superior -> inferior, the largest-scoring subsequence in which every kept candidate lies
within ``max_deviation_mm`` of the segment joining its kept neighbours and consecutive kept ones
are ``min_step_mm``-``max_step_mm`` apart. The defaults add about 5 mm of localization error to
the anatomical bounds and let the chain step over one missed vertebra.
"""

from __future__ import annotations

import numpy as np

from spinelab.errors import SpinelabError

MAX_DEVIATION_MM = 20.0
MIN_STEP_MM = 10.0
MAX_STEP_MM = 90.0


def segment_deviations(points: np.ndarray) -> np.ndarray:
    """``out[i, j, k]``: distance of point j from the segment from point i to point k."""
    start, middle, end = points[:, None, None], points[None, :, None], points[None, None, :]
    along = end - start
    length2 = np.maximum((along**2).sum(axis=-1), 1e-12)
    t = np.clip(((middle - start) * along).sum(axis=-1) / length2, 0.0, 1.0)
    return np.linalg.norm(middle - start - t[..., None] * along, axis=-1)


def smooth_chain(points, scores=None, max_deviation_mm: float = MAX_DEVIATION_MM,
                 min_step_mm: float = MIN_STEP_MM, max_step_mm: float = MAX_STEP_MM) -> np.ndarray:
    """Boolean mask (n,) of the candidates (n, 3) world mm, sorted superior -> inferior, on the column.

    ``scores`` (n,) non-negative weights (default 1 each: the longest chain); a single candidate is
    a chain of one. An end of the column has one neighbour to be tested against, so there a candidate
    beside the last vertebra competes with it by score alone.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    count = len(points)
    scores = np.ones(count) if scores is None else np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(scores) != count or (scores < 0).any():
        raise SpinelabError(f"chain: {count} candidates need {count} non-negative scores")
    keep = np.zeros(count, dtype=bool)
    if count <= 1:
        keep[:] = True
        return keep
    steps = np.linalg.norm(points[:, None] - points[None], axis=-1)
    step_ok = (steps >= min_step_mm) & (steps <= max_step_mm)
    bend_ok = segment_deviations(points) <= max_deviation_mm
    # best[j, k]: score of the best chain whose last two members are j < k; parent[j, k]: the one before j.
    best = np.full((count, count), -np.inf)
    parent = np.full((count, count), -1)
    for k in range(count):
        for j in range(k):
            if not step_ok[j, k]:
                continue
            best[j, k] = scores[j] + scores[k]
            before = [i for i in range(j) if np.isfinite(best[i, j]) and bend_ok[i, j, k]]
            if before:
                i = max(before, key=lambda i: best[i, j])
                if best[i, j] + scores[k] > best[j, k]:
                    best[j, k], parent[j, k] = best[i, j] + scores[k], i
    if not np.isfinite(best).any():
        keep[int(np.argmax(scores))] = True
        return keep
    j, k = np.unravel_index(int(np.argmax(best)), best.shape)
    while j >= 0:
        keep[[j, k]] = True
        j, k = parent[j, k], j
    return keep
