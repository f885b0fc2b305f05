"""The continuous vertebra number the identification network regresses, and dense maps back to centroids.

Vertebrae are numbered along ``vertebrae.ANATOMICAL_ORDER`` from C1 = 1: T12 = 19, T13 = 20,
L1 = 21, L5 = 25, L6 = 26, sacrum = 27. The transitional T13 and L6 thus have numbers of their own
and the scale stays monotonic down the spine. In a spine without T13 the target steps from 19 to 21
at the T12/L1 disc, but the regression passes through 20 on its way, and that band often holds
enough voxels to pass the voxel count: on 30 synthetic validation scans the packaged model reported
37 T13s and L6s where there were 2. ``distinct_transitional`` drops a T13 or L6 that lies closer to
a neighbour than a vertebra's own height allows: the disc between two vertebrae, not one of its own.
"""

from __future__ import annotations

import numpy as np

from spinelab.io.centroids import Centroids
from spinelab.vertebrae import BODY_SIZES, LABELS, VERTEBRA_CLASSES, rank

NUMBER = {label: rank(label) + 1 for label in VERTEBRA_CLASSES}
TRANSITIONAL = (LABELS["T13"], LABELS["L6"])
_LABEL_OF_NUMBER = np.zeros(max(NUMBER.values()) + 2, dtype=np.int16)
for _label, _number in NUMBER.items():
    _LABEL_OF_NUMBER[_number] = _label


def label_numbers(labels: np.ndarray) -> np.ndarray:
    """VerSe labels (0 background) -> continuous-scale numbers (float32, 0 background)."""
    table = np.zeros(int(max(labels.max(initial=0), max(NUMBER))) + 1, dtype=np.float32)
    for label, number in NUMBER.items():
        table[label] = number
    return table[labels]


def number_labels(numbers: np.ndarray) -> np.ndarray:
    """Regressed numbers -> VerSe labels of the nearest integer (0 where it names no vertebra)."""
    rounded = np.clip(np.rint(numbers), 0, len(_LABEL_OF_NUMBER) - 1).astype(np.intp)
    return _LABEL_OF_NUMBER[rounded]


def min_voxels(label: int, spacing_mm: float, floor_mm3: float, radius_scale: float = 1.0) -> float:
    """Voxels a label needs at ``spacing_mm``: max(floor, 0.4 R^3) mm^3, R the level's dense-label disc radius."""
    radius = radius_scale * BODY_SIZES[int(label)].depth / 2
    return max(floor_mm3, 0.4 * radius ** 3) / spacing_mm ** 3


def dense_to_sparse(body: np.ndarray, numbers: np.ndarray, affine: np.ndarray, spacing_mm: float,
                    floor_mm3: float, radius_scale: float = 1.0) -> tuple[Centroids, dict]:
    """Centroids (world mm) from a vertebral-body mask and the regressed numbers on the same grid.

    Each body voxel votes for its rounded number; a label's centroid is the median position of its
    voxels, kept when they reach ``min_voxels``. Its confidence is how squarely the votes sit on the
    integer: the mean of 1 - 2 |number - label's number| over its voxels. Returns the centroids and
    the labels dropped for too few voxels.
    """
    voted = np.where(body, number_labels(numbers), 0)
    labels, points, confidence, dropped = [], [], [], []
    for label in np.unique(voted[voted > 0]):
        voxels = np.argwhere(voted == label)
        if len(voxels) < min_voxels(label, spacing_mm, floor_mm3, radius_scale):
            dropped.append(int(label))
            continue
        labels.append(int(label))
        points.append(np.median(voxels, axis=0))
        offset = np.abs(numbers[tuple(voxels.T)] - NUMBER[int(label)])
        confidence.append(float(np.clip(1.0 - 2.0 * offset, 0.0, 1.0).mean()))
    if not labels:
        return Centroids.empty(), {"dropped_labels": dropped}
    return Centroids.from_voxel(labels, points, affine, confidence).sorted(), {"dropped_labels": dropped}


def distinct_transitional(centroids: Centroids, separation: float) -> tuple[Centroids, list[int]]:
    """``centroids`` without each T13 or L6 lying closer to another vertebra than ``separation`` x the
    mean body height of the two levels (0 keeps them all), and the labels dropped."""
    if separation <= 0 or not len(centroids):
        return centroids, []
    heights = np.array([BODY_SIZES[int(label)].height for label in centroids.labels])
    transitional = np.isin(centroids.labels, TRANSITIONAL)
    distances = np.linalg.norm(centroids.world[:, None] - centroids.world[None], axis=-1)
    too_close = distances < separation * (heights[:, None] + heights[None]) / 2
    drop = transitional & (too_close & ~transitional[None]).any(axis=1)
    return centroids.take(~drop), centroids.labels[drop].tolist()
