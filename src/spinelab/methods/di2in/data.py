"""Training data of the di2in method: each case z-scored at 4 mm once into the shared case cache
(``spinelab.io.working.spine_case``), then random crops drawn per batch with one Gaussian heatmap per
vertebra class as the target (``spinelab.targets.gaussian_heatmap``; absent classes stay zero).

Cases keep 200 mm in-plane on each side of the labelled spine, in practice the whole patient: inference
runs over the whole volume, so training crops must also see arms, lateral ribs and bowel far from the
spine. At 4 mm a case is about 1 MB.
"""

from __future__ import annotations

import numpy as np
import torch

from spinelab.io.centroids import Centroids
from spinelab.io.volume import CTVolume
from spinelab.io.working import spine_case
from spinelab.methods.di2in.config import DI2INConfig
from spinelab.targets import gaussian_heatmap
from spinelab.training.augment import zscore_augment
from spinelab.training.crops import SpineCrops
from spinelab.vertebrae import VERTEBRA_CLASSES

CROP_MARGIN_MM = 200.0


def prepare_case(ct: CTVolume, centroids: Centroids, config: DI2INConfig) -> dict[str, np.ndarray]:
    return spine_case(ct, centroids, config.spacing_mm, CROP_MARGIN_MM)


def crop_heatmaps(classes: np.ndarray, points: np.ndarray, starts: np.ndarray, crop, sigma: float) -> np.ndarray:
    """(classes, *crop) float32: a Gaussian of peak 1 at each vertebra near the crop, in its class's channel.
    Vertebrae just outside the crop still leave the tail of their blob inside."""
    heatmaps = np.zeros((len(VERTEBRA_CLASSES), *crop), dtype=np.float32)
    for k, point in zip(classes, points - starts):
        heatmaps[k] = gaussian_heatmap(point[None], crop, sigma)
    return heatmaps


class Crops(SpineCrops):
    """Items: crop (1, R, A, S) and target heatmaps (classes, R, A, S)."""

    def __init__(self, cache: list[dict[str, np.ndarray]], config: DI2INConfig, seed: int = 0):
        super().__init__(cache, config.crop, seed, spread=0.3)
        self.config = config

    def __getitem__(self, index: int):
        case, rng, starts, image = self.draw(index)
        heatmaps = crop_heatmaps(case["classes"], case["points"], starts, self.crop,
                                 self.config.sigma_mm / self.config.spacing_mm)
        if rng.random() < 0.5:  # mirror left-right: the labels do not change
            image, heatmaps = image[::-1], heatmaps[:, ::-1]
        image = zscore_augment(np.ascontiguousarray(image), rng)
        return torch.from_numpy(image)[None], torch.from_numpy(np.ascontiguousarray(heatmaps))
