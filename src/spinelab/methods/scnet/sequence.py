"""The landmark sequence of §2.2: heatmap maxima -> one chain of vertebrae under the paper's rules.

Candidates are each class's local maxima above a threshold. The first and last visible vertebrae
are the strongest candidates near the volume's top and bottom (within ``min_distance_mm`` along S of
the highest and lowest candidate: rival class hypotheses for the same vertebra). Between them,
dynamic programming picks the chain of the largest summed response in which the class rises from one
member to the next and:
* consecutive members are ``min_distance_mm`` to ``max_distance_mm`` apart, both bounds times the
  number of levels between them when a class is skipped (T13 and L6 are no level of their own);
* no member lies above its predecessor.
When no chain joins the two ends (they contradict each other) the best chain without them is kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from spinelab.vertebrae import SKIPPABLE_COLUMNS, VERTEBRA_CLASSES

PEAK_NEIGHBOURHOOD = 3  # voxels: a local maximum is the largest value of its 3 x 3 x 3 neighbourhood


@dataclass
class Candidate:
    column: int  # class index (0-based, ``VERTEBRA_CLASSES`` order)
    world: np.ndarray  # (3,) RAS+ mm
    value: float


def local_maxima(heatmap: np.ndarray, threshold: float) -> list[tuple[np.ndarray, float]]:
    """Positions (voxels, refined by the response-weighted mean of the 3 x 3 x 3 neighbourhood) and values
    of the local maxima of one heatmap at or above ``threshold``."""
    peaks = (heatmap == ndimage.maximum_filter(heatmap, PEAK_NEIGHBOURHOOD, mode="constant")) & (heatmap >= threshold)
    found = []
    for index in np.argwhere(peaks):
        low, high = np.maximum(index - 1, 0), np.minimum(index + 2, heatmap.shape)
        patch = np.clip(heatmap[tuple(slice(a, b) for a, b in zip(low, high))], 0.0, None)
        position = index.astype(float)
        if patch.sum() > 0:
            grids = np.meshgrid(*[np.arange(a, b) for a, b in zip(low, high)], indexing="ij")
            position = np.array([(grid * patch).sum() for grid in grids]) / patch.sum()
        found.append((position, float(heatmap[tuple(index)])))
    return found


def _levels_between(first: int, second: int) -> int:
    """Vertebral levels from class ``first`` to ``second`` (> first): T13 and L6 add none."""
    return max(1, sum(1 for column in range(first + 1, second + 1) if column not in SKIPPABLE_COLUMNS))


def _follows(previous: Candidate, following: Candidate, min_distance_mm: float, max_distance_mm: float) -> bool:
    if following.column <= previous.column or following.world[2] > previous.world[2]:
        return False
    distance = float(np.linalg.norm(following.world - previous.world))
    levels = _levels_between(previous.column, following.column)
    return min_distance_mm * levels <= distance <= max_distance_mm * levels


def _best_chain(candidates: list[Candidate], min_distance_mm: float, max_distance_mm: float,
                start: int | None = None, end: int | None = None) -> list[int]:
    """Indices into ``candidates`` (sorted by class) of the valid chain of the largest summed response,
    optionally from ``start`` to ``end``; [] when there is none."""
    score = np.full(len(candidates), -np.inf)
    before = np.full(len(candidates), -1)
    for j, candidate in enumerate(candidates):
        if start is None or j == start:
            score[j] = candidate.value
        for i in range(j):
            if np.isfinite(score[i]) and score[i] + candidate.value > score[j] and \
                    _follows(candidates[i], candidate, min_distance_mm, max_distance_mm):
                score[j], before[j] = score[i] + candidate.value, i
    last = int(np.argmax(score)) if end is None else end
    if not np.isfinite(score[last]):
        return []
    chain = [last]
    while before[chain[-1]] >= 0:
        chain.append(int(before[chain[-1]]))
    return chain[::-1]


def landmark_sequence(candidates: list[Candidate], min_distance_mm: float = 12.5, max_distance_mm: float = 50.0
                      ) -> list[Candidate]:
    """The paper's landmark sequence (module docstring), superior to inferior."""
    if not candidates:
        return []
    candidates = sorted(candidates, key=lambda c: (c.column, -c.world[2]))
    heights = np.array([c.world[2] for c in candidates])
    values = np.array([c.value for c in candidates])
    top = np.flatnonzero(heights >= heights.max() - min_distance_mm)
    bottom = np.flatnonzero(heights <= heights.min() + min_distance_mm)
    first, last = int(top[np.argmax(values[top])]), int(bottom[np.argmax(values[bottom])])
    chain = _best_chain(candidates, min_distance_mm, max_distance_mm, first, last)
    if not chain:
        chain = _best_chain(candidates, min_distance_mm, max_distance_mm)
    return [candidates[i] for i in chain]


def heatmap_candidates(heatmaps: np.ndarray, to_world, threshold: float, per_class: int) -> list[Candidate]:
    """Each class's ``per_class`` strongest local maxima of (classes, R, A, S) ``heatmaps`` (a flat, noisy
    heatmap has thousands); ``to_world`` maps voxels to RAS+ mm."""
    candidates = []
    for column in range(min(len(heatmaps), len(VERTEBRA_CLASSES))):
        maxima = sorted(local_maxima(heatmaps[column], threshold), key=lambda peak: -peak[1])
        for position, value in maxima[:per_class]:
            candidates.append(Candidate(column, to_world(position[None])[0], value))
    return candidates
