"""The multi-view identification target: a class square around each vertebra on a DRR.

Points are detector pixel coordinates ``(column, row)`` as produced by ``ConeBeamView.project``;
classes follow ``spinelab.vertebrae.class_index``.
"""

from __future__ import annotations

import numpy as np

from spinelab.errors import SpinelabError
from spinelab.vertebrae import VERTEBRA_CLASSES, class_index


def _points(points_2d) -> np.ndarray:
    points = np.asarray(points_2d, dtype=np.float64).reshape(-1, 2)
    if not np.isfinite(points).all():
        raise SpinelabError("2D target points must be finite")
    return points


def identification_targets(points_2d, labels, shape, pixel_mm: float, square_mm: float = 22.0) -> np.ndarray:
    """Class map (H, W) int64: a ``square_mm`` square of ``class_index(label)`` around each point.

    ``pixel_mm`` is the size of a detector pixel at the patient (``view.pixel_mm_at_isocenter``),
    so the 22 mm x 22 mm squares of Wu et al. are measured at the isocentre plane, where the
    vertebrae are; a pixel is inside a square if both its offsets are at most half the side. Where
    squares overlap the pixel goes to the nearest point (Euclidean distance), which splits the
    overlap half-way between neighbouring vertebrae. Labels outside ``VERTEBRA_CLASSES`` (coccyx)
    are left as background.
    """
    points = _points(points_2d)
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != len(points):
        raise SpinelabError(f"{len(points)} points but {len(labels)} labels")
    if not (pixel_mm > 0 and square_mm > 0):
        raise SpinelabError("pixel size and square size must be positive")
    half = square_mm / pixel_mm / 2.0
    height, width = shape
    columns, rows = np.arange(width), np.arange(height)
    classes = np.zeros((height, width), dtype=np.int64)
    nearest = np.full((height, width), np.inf)
    for (col, row), label in zip(points, labels):
        if int(label) not in VERTEBRA_CLASSES:
            continue
        inside = np.outer(np.abs(rows - row) <= half, np.abs(columns - col) <= half)
        distance = np.add.outer((rows - row) ** 2, (columns - col) ** 2)
        closer = inside & (distance < nearest)
        classes[closer] = class_index(label)
        nearest[closer] = distance[closer]
    return classes
