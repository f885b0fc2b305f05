"""§2.3 at inference: one binary U-Net response per localized vertebra, merged into one label map.

Each vertebra's crop is centred on its predicted centroid, with a Gaussian heatmap of that centroid
as the second input channel. The sigmoid responses are resampled linearly back onto the CT's own
grid (only over each crop's box) and every voxel takes the label of the largest response above 0.5.
"""

from __future__ import annotations

import numpy as np

from spinelab.io.volume import CTVolume

RESPONSE_THRESHOLD = 0.5


def merge_responses(shape, pieces: list[tuple[int, tuple[slice, ...], np.ndarray]]) -> np.ndarray:
    """A uint8 label map of ``shape`` from (VerSe label, box, response in [0, 1] of the box's shape)
    pieces: each voxel gets the label of the largest response above ``RESPONSE_THRESHOLD``, else 0."""
    labels = np.zeros(shape, dtype=np.uint8)
    best = np.full(shape, RESPONSE_THRESHOLD, dtype=np.float32)
    for label, box, response in pieces:
        stronger = response > best[box]
        labels[box][stronger] = label
        best[box][stronger] = response[stronger]
    return labels


def response_on_grid(response: CTVolume, grid: CTVolume) -> tuple[tuple[slice, ...], np.ndarray] | None:
    """The box of ``grid`` voxels that ``response`` (a crop with its affine) covers and the response
    resampled linearly onto it; None when the crop lies outside the grid."""
    corners = np.array(np.meshgrid(*[[-0.5, n - 0.5] for n in response.shape], indexing="ij")).reshape(3, -1).T
    voxels = grid.to_voxel(response.to_world(corners))
    low = np.maximum(np.floor(voxels.min(axis=0)).astype(int), 0)
    high = np.minimum(np.ceil(voxels.max(axis=0)).astype(int) + 1, grid.shape)
    if (high <= low).any():
        return None
    box = tuple(slice(int(a), int(b)) for a, b in zip(low, high))
    return box, response.resampled_onto(grid.cropped(box), order=1, cval=0.0).array
