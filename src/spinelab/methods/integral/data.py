"""Training data of the integral method: each case resampled once into the shared case cache, then
random crops drawn per batch with every vertebra whose centroid lies inside as a positive label.

Following the paper, HU are clipped below -1000 and the scan is z-score normalized over the
patient's voxels (``spinelab.io.working``). Cases are cropped in-plane to the labelled spine and a
100 mm margin, which keeps hundreds of cases in memory while every training
crop (160 mm in-plane) can still be shifted off the spine.
"""

from __future__ import annotations

import numpy as np
import torch

from spinelab.io.centroids import Centroids
from spinelab.io.volume import CTVolume
from spinelab.io.working import spine_case
from spinelab.methods.integral.config import IntegralConfig
from spinelab.training.augment import zscore_augment
from spinelab.training.crops import SpineCrops
from spinelab.vertebrae import VERTEBRA_CLASSES

CROP_MARGIN_MM = 100.0


def prepare_case(ct: CTVolume, centroids: Centroids, config: IntegralConfig) -> dict[str, np.ndarray]:
    """One training case at the config's spacing (``spinelab.io.working.spine_case``)."""
    return spine_case(ct, centroids, config.spacing_mm, CROP_MARGIN_MM)


def crop_targets(classes: np.ndarray, points: np.ndarray, starts: np.ndarray, crop) -> tuple[np.ndarray, np.ndarray]:
    """Presence (K,) and crop-voxel coordinates (K, 3) of the vertebrae whose centroid lies in the crop."""
    presence = np.zeros(len(VERTEBRA_CLASSES), dtype=np.float32)
    coordinates = np.zeros((len(VERTEBRA_CLASSES), 3), dtype=np.float32)
    local = points - starts
    inside = ((local >= 0) & (local <= np.asarray(crop) - 1)).all(axis=1)
    presence[classes[inside]] = 1.0
    coordinates[classes[inside]] = local[inside]
    return presence, coordinates


class Crops(SpineCrops):
    """Items: crop (1, R, A, S), presence (K,), coordinates (K, 3) in crop voxels; ``augmented=False``
    (evaluation) leaves out the mirroring and the intensity changes."""

    def __init__(self, cache: list[dict[str, np.ndarray]], config: IntegralConfig, seed: int = 0,
                 augmented: bool = True):
        super().__init__(cache, config.crop, seed, spread=0.35)  # outer 15 % free
        self.config, self.augmented = config, augmented

    def __getitem__(self, index: int):
        case, rng, starts, image = self.draw(index)
        crop = self.crop
        presence, coordinates = crop_targets(case["classes"], case["points"], starts, crop)
        if self.augmented:
            if rng.random() < 0.5:  # mirror left-right: the labels do not change, the R coordinates do
                image = image[::-1].copy()
                coordinates[:, 0] = np.where(presence > 0, crop[0] - 1 - coordinates[:, 0], 0.0)
            image = zscore_augment(image, rng)
        return torch.from_numpy(image)[None], torch.from_numpy(presence), torch.from_numpy(coordinates)
