"""Training data of the dense method: each case resampled once into the shared case cache with its
dense labels, then random detection patches and identification slabs drawn per batch.

Dense labels come from the centroids alone (``spinelab.targets.dense_labels``), so any VerSe- or
CSI2014-layout dataset trains the method. Cases are cropped in-plane to the labelled spine and a
60 mm margin (ribs, vessels and bowel beside it stay in view as background), which keeps a
cache of hundreds of cases in memory.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from spinelab.inference import pad_to, random_patch_slices, window
from spinelab.io.centroids import Centroids
from spinelab.io.volume import CTVolume
from spinelab.methods.dense.config import DenseConfig
from spinelab.methods.dense.labels import label_numbers
from spinelab.targets import dense_labels
from spinelab.training import intensity_augment
from spinelab.vertebrae import VERTEBRA_CLASSES

CROP_MARGIN_MM = 60.0
DETECTION_SAMPLES_PER_CASE = 5  # the paper's 5 patches per scan, at least 4 of them on vertebrae
IDENTIFICATION_SAMPLES_PER_CASE = 20


def working_volume(ct: CTVolume, config: DenseConfig) -> CTVolume:
    """The canonical CT resampled to the working spacing, HU windowed to [0, 1] (float32)."""
    resampled = ct.canonical().resampled(config.spacing_mm, order=1, cval=-1000.0)
    low, high = config.hu_window
    return resampled.with_array(((np.clip(resampled.array, low, high) - low) / (high - low)).astype(np.float32))


def prepare_case(ct: CTVolume, centroids: Centroids, config: DenseConfig) -> dict[str, np.ndarray]:
    """Working volume (float16) and dense labels (int16) of one training case, cropped around the spine."""
    volume = working_volume(ct, config)
    labels = dense_labels(volume.shape, volume.affine, centroids.select(VERTEBRA_CLASSES), config.disc_radius_scale)
    box = [slice(None)] * 3
    found = np.argwhere(labels > 0)
    if len(found):
        margin = int(round(CROP_MARGIN_MM / config.spacing_mm))
        for axis in (0, 1):
            box[axis] = slice(max(found[:, axis].min() - margin, 0), found[:, axis].max() + margin + 1)
    return {"image": volume.array[tuple(box)].astype(np.float16), "labels": labels[tuple(box)]}


def elastic_deform(images: np.ndarray, target: np.ndarray, sigma: float, rng: np.random.Generator):
    """The same smooth random deformation of (C, H, W) images (linear) and an (H, W) target (nearest):
    displacements drawn on a 3 x 3 grid with standard deviation ``sigma`` pixels, cubic-interpolated."""
    height, width = target.shape
    grid = rng.normal(0.0, sigma, (2, 3, 3))
    field = np.stack([ndimage.zoom(g, (height / 3, width / 3), order=3)[:height, :width] for g in grid])
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    coordinates = np.stack([rows + field[0], cols + field[1]])
    warped = np.stack([ndimage.map_coordinates(image, coordinates, order=1, mode="constant") for image in images])
    return warped.astype(np.float32), ndimage.map_coordinates(target, coordinates, order=0, mode="constant")


class DetectionPatches(torch.utils.data.Dataset):
    """Items: image patch (1, *patch) and body target (*patch) long; 4 of 5 patches centred on vertebrae."""

    def __init__(self, cache: list[dict[str, np.ndarray]], config: DenseConfig, seed: int = 0):
        self.cache, self.config, self.seed, self.epoch = cache, config, seed, 0

    def __len__(self) -> int:
        return len(self.cache) * DETECTION_SAMPLES_PER_CASE

    def __getitem__(self, index: int):
        rng = np.random.default_rng([self.seed, self.epoch, index])
        case = self.cache[index // DETECTION_SAMPLES_PER_CASE]
        image, _ = pad_to(case["image"].astype(np.float32), self.config.detection_patch)
        labels, _ = pad_to(case["labels"], self.config.detection_patch)
        box = random_patch_slices(image.shape, self.config.detection_patch, rng, labels > 0, 0.8)
        patch, body = intensity_augment(image[box], rng), (labels[box] > 0).astype(np.int64)
        if rng.random() < 0.5:  # mirror left-right: a vertebral body does not care
            patch, body = patch[::-1].copy(), body[::-1].copy()
        return torch.from_numpy(patch)[None], torch.from_numpy(body)


class IdentificationSlabs(torch.utils.data.Dataset):
    """Items: a sagittal slab (slices, A-P, S-I) and the continuous numbers of its third slice (0 background)."""

    def __init__(self, cache: list[dict[str, np.ndarray]], config: DenseConfig, seed: int = 0):
        self.cache, self.config, self.seed, self.epoch = cache, config, seed, 0
        self.foreground = [np.argwhere(case["labels"] > 0) for case in cache]

    def __len__(self) -> int:
        return len(self.cache) * IDENTIFICATION_SAMPLES_PER_CASE

    def __getitem__(self, index: int):
        rng = np.random.default_rng([self.seed, self.epoch, index])
        case_index = index // IDENTIFICATION_SAMPLES_PER_CASE
        case, voxels = self.cache[case_index], self.foreground[case_index]
        slices, rows, cols = self.config.slab
        centre = voxels[rng.integers(len(voxels))] if len(voxels) else np.array(case["labels"].shape) // 2
        shift = rng.uniform(-0.4, 0.4, 2) * (rows, cols)
        starts = (int(centre[0]) - slices // 2, int(centre[1] - rows // 2 + shift[0]), int(centre[2] - cols // 2 + shift[1]))
        slab = window(case["image"].astype(np.float32), starts, self.config.slab)
        target = label_numbers(window(case["labels"], (centre[0], *starts[1:]), (1, rows, cols))[0])
        slab, target = elastic_deform(intensity_augment(slab, rng), target, self.config.elastic_sigma, rng)
        return torch.from_numpy(slab), torch.from_numpy(target[None].astype(np.float32))
