"""Training data of the integral method: each case resampled once into the shared case cache, then
random crops drawn per batch with every vertebra whose centroid lies inside as a positive label.

Following the paper, HU are clipped below -1000 and the scan is z-score normalized. The mean and
standard deviation are taken over the patient's voxels (denser than -500 HU), not the whole box, so a
tight field of view and one full of air give bone the same values. Cases are cropped in-plane to the
labelled spine and a 100 mm margin, which keeps hundreds of cases in memory while every training
crop (160 mm in-plane) can still be shifted off the spine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from spinelab.inference import window
from spinelab.io.centroids import Centroids
from spinelab.io.volume import CTVolume
from spinelab.methods.integral.config import IntegralConfig
from spinelab.vertebrae import VERTEBRA_CLASSES, class_index

CROP_MARGIN_MM = 100.0
PATIENT_HU = -500.0
CROPS_PER_CASE = 4
ON_SPINE = 0.85  # share of training crops centred near a vertebra; the rest anywhere in the case


@dataclass
class WorkingVolume:
    volume: CTVolume  # canonical, at the working spacing, z-scored (float32)
    mean: float  # HU = value * std + mean
    std: float

    def value(self, hu: float) -> float:
        """The normalized value of ``hu``: air (-1000) pads crops that leave the volume."""
        return (hu - self.mean) / self.std


def working_volume(ct: CTVolume, config: IntegralConfig) -> WorkingVolume:
    """The canonical CT at the working spacing, HU clipped below -1000 and z-scored over the patient's voxels."""
    resampled = ct.canonical().resampled(config.spacing_mm, order=1, cval=-1000.0)
    hu = np.maximum(resampled.array, -1000.0).astype(np.float32)
    patient = hu[hu > PATIENT_HU]
    if patient.size < 100:
        patient = hu
    mean, std = float(patient.mean()), max(float(patient.std()), 1.0)
    return WorkingVolume(resampled.with_array((hu - mean) / std), mean, std)


def prepare_case(ct: CTVolume, centroids: Centroids, config: IntegralConfig) -> dict[str, np.ndarray]:
    """Normalized volume (float16) cropped in-plane around the spine, with the air value, the class
    index (0-based, ``VERTEBRA_CLASSES`` order) and voxel position of every labelled vertebra."""
    working = working_volume(ct, config)
    volume = working.volume
    known = centroids.select(VERTEBRA_CLASSES)
    voxels = known.to_voxel(volume.affine)
    box = [slice(None)] * 3
    if len(known):
        margin = CROP_MARGIN_MM / config.spacing_mm
        for axis in (0, 1):
            low = max(int(np.floor(voxels[:, axis].min() - margin)), 0)
            box[axis] = slice(low, int(np.ceil(voxels[:, axis].max() + margin)) + 1)
            voxels[:, axis] -= low
    return {"image": volume.array[tuple(box)].astype(np.float16), "air": np.float32(working.value(-1000.0)),
            "classes": np.array([class_index(label) - 1 for label in known.labels], dtype=np.int64).reshape(-1),
            "points": voxels.reshape(-1, 3).astype(np.float32)}


def crop_targets(classes: np.ndarray, points: np.ndarray, starts: np.ndarray, crop) -> tuple[np.ndarray, np.ndarray]:
    """Presence (K,) and crop-voxel coordinates (K, 3) of the vertebrae whose centroid lies in the crop."""
    presence = np.zeros(len(VERTEBRA_CLASSES), dtype=np.float32)
    coordinates = np.zeros((len(VERTEBRA_CLASSES), 3), dtype=np.float32)
    local = points - starts
    inside = ((local >= 0) & (local <= np.asarray(crop) - 1)).all(axis=1)
    presence[classes[inside]] = 1.0
    coordinates[classes[inside]] = local[inside]
    return presence, coordinates


def augment(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Blur, contrast and brightness jitter and noise on a z-scored crop (synthetic edges are sharper
    and synthetic noise plainer than a real scanner's)."""
    if rng.random() < 0.5:
        image = ndimage.gaussian_filter(image, rng.uniform(0.3, 1.2))
    image = image * rng.uniform(0.85, 1.15) + rng.uniform(-0.15, 0.15)
    return (image + rng.normal(0.0, rng.uniform(0.0, 0.1), image.shape)).astype(np.float32)


class Crops(torch.utils.data.Dataset):
    """Items: crop (1, R, A, S), presence (K,), coordinates (K, 3) in crop voxels; ``augmented=False``
    (evaluation) leaves out the mirroring and the intensity changes."""

    def __init__(self, cache: list[dict[str, np.ndarray]], config: IntegralConfig, seed: int = 0,
                 augmented: bool = True):
        self.cache, self.config, self.seed, self.epoch, self.augmented = cache, config, seed, 0, augmented

    def __len__(self) -> int:
        return len(self.cache) * CROPS_PER_CASE

    def __getitem__(self, index: int):
        rng = np.random.default_rng([self.seed, self.epoch, index])
        case = self.cache[index // CROPS_PER_CASE]
        crop, shape = np.array(self.config.crop), np.array(case["image"].shape)
        if len(case["points"]) and rng.random() < ON_SPINE:
            centre = case["points"][rng.integers(len(case["points"]))]
            centre = centre + rng.uniform(-0.35, 0.35, 3) * crop  # the vertebra anywhere but the outer 15 %
        else:
            centre = rng.uniform(0, 1, 3) * shape
        starts = np.round(centre - crop / 2).astype(int)
        image = window(case["image"], starts, crop, fill=case["air"]).astype(np.float32)
        presence, coordinates = crop_targets(case["classes"], case["points"], starts, crop)
        if self.augmented:
            if rng.random() < 0.5:  # mirror left-right: the labels do not change, the R coordinates do
                image = image[::-1].copy()
                coordinates[:, 0] = np.where(presence > 0, crop[0] - 1 - coordinates[:, 0], 0.0)
            image = augment(image, rng)
        return torch.from_numpy(image)[None], torch.from_numpy(presence), torch.from_numpy(coordinates)
