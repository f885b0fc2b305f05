"""2D training targets on a DRR and the class vocabulary of the identification network.

Classes: 0 is background and ``class_index(label)`` numbers the predicted vertebrae
(``spinelab.vertebrae.PREDICTED_LABELS``: C1..C7, T1..T12, T13, L1..L6, sacrum) in anatomical
order from 1, so neighbouring class indices are neighbouring vertebrae; T13 sits between T12 and
L1 and L6 between L5 and the sacrum. ``NUM_CLASSES`` counts background too.

Probability matrices used by the Sequence Loss and the voting (``P`` in Wu et al. 2023) have one
column per vertebra class and no background column: column ``c`` is class ``c + 1``.
``SKIPPABLE_COLUMNS`` are the columns of the transitional vertebrae (T13, L6) that a normal spine
goes straight past (T12 -> L1, L5 -> sacrum).

Points are detector pixel coordinates ``(column, row)`` as produced by ``ConeBeamView.project``.
"""

from __future__ import annotations

import numpy as np

from spinelab import vertebrae
from spinelab.errors import SpinelabError

VERTEBRA_CLASSES: tuple[int, ...] = vertebrae.PREDICTED_LABELS
NUM_CLASSES = len(VERTEBRA_CLASSES) + 1
_INDEX = {label: index + 1 for index, label in enumerate(VERTEBRA_CLASSES)}
SKIPPABLE_COLUMNS: tuple[int, ...] = (_INDEX[vertebrae.LABELS["T13"]] - 1, _INDEX[vertebrae.LABELS["L6"]] - 1)


def class_index(label: int) -> int:
    """Network class (1..NUM_CLASSES-1) of a VerSe label; 0 is background."""
    try:
        return _INDEX[int(label)]
    except KeyError:
        raise SpinelabError(f"vertebra label {label} is not predicted by the multi-view method "
                            f"(predicted: {', '.join(vertebrae.name(v) for v in VERTEBRA_CLASSES)})") from None


def label_of_class(index: int) -> int:
    """VerSe label of a network class (1..NUM_CLASSES-1)."""
    if not 1 <= int(index) < NUM_CLASSES:
        raise SpinelabError(f"class {index} is not a vertebra class (1..{NUM_CLASSES - 1})")
    return VERTEBRA_CLASSES[int(index) - 1]


def _points(points_2d) -> np.ndarray:
    points = np.asarray(points_2d, dtype=np.float64).reshape(-1, 2)
    if not np.isfinite(points).all():
        raise SpinelabError("2D target points must be finite")
    return points


def heatmap_targets(points_2d, shape, sigma_px: float) -> np.ndarray:
    """Gaussian heatmap (H, W) float32 with peak 1 at every point, overlapping blobs max-combined.

    Taking the maximum (not the sum) keeps neighbouring vertebrae as separate peaks of height 1.
    """
    if not sigma_px > 0:
        raise SpinelabError(f"heatmap sigma must be positive, got {sigma_px}")
    height, width = shape
    heatmap = np.zeros((height, width), dtype=np.float32)
    columns, rows = np.arange(width), np.arange(height)
    for col, row in _points(points_2d):
        across = np.exp(-0.5 * ((columns - col) / sigma_px) ** 2).astype(np.float32)
        down = np.exp(-0.5 * ((rows - row) / sigma_px) ** 2).astype(np.float32)
        np.maximum(heatmap, np.outer(down, across), out=heatmap)
    return heatmap


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
        if int(label) not in _INDEX:
            continue
        inside = np.outer(np.abs(rows - row) <= half, np.abs(columns - col) <= half)
        distance = np.add.outer((rows - row) ** 2, (columns - col) ** 2)
        closer = inside & (distance < nearest)
        classes[closer] = _INDEX[int(label)]
        nearest[closer] = distance[closer]
    return classes
