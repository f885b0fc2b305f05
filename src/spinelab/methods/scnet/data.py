"""Training data of the scnet method: each case resampled once, at the three networks' spacings, into
the shared case cache (``spinelab.io.working.spine_case``, HU / 2048 clipped to [-1, 1] as in the
paper), then random inputs drawn per batch:

* ``SpineInputs``: the 8 mm volume around the spine, shifted at random, with the merged Gaussian
  heatmap of all vertebrae as the target (§2.1);
* ``LandmarkCrops``: 4 mm crops near the spine with the crop-local position of each vertebra class
  (NaN when absent), from which the loss draws the heatmaps with the learned sigma_i (§2.2);
* ``VertebraCrops``: 2 mm crops centred on one vertebra (its centroid jittered by a few mm, as a
  predicted one would be), a Gaussian heatmap of that centroid as the second input channel and the
  vertebra's voxels in the generator's VerSe label map as the target (§2.3).

Every input is mirrored left-right at random (labels do not change) and gets the paper's intensity
augmentation (``intensity_jitter``).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from spinelab.errors import SpinelabError
from spinelab.inference import window
from spinelab.io.centroids import Centroids
from spinelab.io.volume import CTVolume
from spinelab.io.working import spine_case
from spinelab.methods.scnet.config import SCNetConfig
from spinelab.targets import gaussian_heatmap
from spinelab.training.crops import SpineCrops
from spinelab.vertebrae import VERTEBRA_CLASSES

SPINE_MARGIN_MM = 400.0  # the 8 mm volume keeps the whole patient
LANDMARK_MARGIN_MM = 150.0  # crops (192 mm wide) can be shifted off the spine and still see the body wall
SEGMENT_MARGIN_MM = 90.0  # a vertebra's crop reaches 64-80 mm from its centroid
CENTROID_JITTER_MM = 3.0  # standard deviation of the guiding centroid's offset per axis
STAGES = ("spine", "landmark", "segment")


def prepare_case(ct: CTVolume, centroids: Centroids, mask: CTVolume | None, config: SCNetConfig) -> dict[str, np.ndarray]:
    """The case at the three spacings, keys prefixed ``spine_``, ``landmark_`` and ``segment_``."""
    if mask is None:
        raise SpinelabError("scnet trains its segmentation network on vertebra label maps: every case needs a "
                            "*_seg-vert_msk mask")
    scale = config.hu_scale
    parts = {"spine": spine_case(ct, centroids, config.spine_spacing_mm, SPINE_MARGIN_MM, hu_scale=scale),
             "landmark": spine_case(ct, centroids, config.spacing_mm, LANDMARK_MARGIN_MM, hu_scale=scale),
             "segment": spine_case(ct, centroids, config.segment_spacing_mm, SEGMENT_MARGIN_MM, mask, scale)}
    return {f"{stage}_{key}": value for stage, part in parts.items() for key, value in part.items()}


def stage_cases(cache: list[dict[str, np.ndarray]], stage: str) -> list[dict[str, np.ndarray]]:
    """One stage's view of the cached cases, prefixes removed."""
    prefix = f"{stage}_"
    return [{key[len(prefix):]: value for key, value in case.items() if key.startswith(prefix)} for case in cache]


def intensity_jitter(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The paper's intensity augmentation, values times [0.75, 1.25] plus [-0.25, 0.25], after a blur half the
    time (synthetic bone edges are sharper than a real scanner's)."""
    if rng.random() < 0.5:
        image = ndimage.gaussian_filter(image, rng.uniform(0.3, 1.2))
    return (image * rng.uniform(0.75, 1.25) + rng.uniform(-0.25, 0.25)).astype(np.float32)


def _mirrored(rng: np.random.Generator, *arrays: np.ndarray) -> list[np.ndarray]:
    """All arrays flipped along their first spatial axis (R-L) with probability 1/2 (the last 3 axes are spatial)."""
    if rng.random() < 0.5:
        arrays = tuple(array[..., ::-1, :, :] for array in arrays)
    return [np.ascontiguousarray(array) for array in arrays]


class SpineInputs(SpineCrops):
    """Items: the 8 mm input (1, R, A, S) and the merged spine heatmap (1, R, A, S)."""

    def __init__(self, cache, config: SCNetConfig, seed: int = 0):
        super().__init__(stage_cases(cache, "spine"), config.spine_input, seed, on_spine=1.0, spread=0.25)
        self.sigma = config.spine_sigma_voxels

    def __getitem__(self, index: int):
        case, rng, starts, image = self.draw(index)
        heatmap = gaussian_heatmap(case["points"] - starts, self.crop, self.sigma)
        image, heatmap = _mirrored(rng, image, heatmap)
        return torch.from_numpy(intensity_jitter(image, rng))[None], torch.from_numpy(heatmap)[None]


class LandmarkCrops(SpineCrops):
    """Items: the 4 mm crop (1, R, A, S) and each class's crop-voxel position (classes, 3), NaN when absent."""

    def __init__(self, cache, config: SCNetConfig, seed: int = 0):
        super().__init__(stage_cases(cache, "landmark"), config.crop, seed, spread=0.3)

    def __getitem__(self, index: int):
        case, rng, starts, image = self.draw(index)
        positions = np.full((len(VERTEBRA_CLASSES), 3), np.nan, dtype=np.float32)
        positions[case["classes"]] = case["points"] - starts
        if rng.random() < 0.5:
            image = image[::-1]
            positions[:, 0] = self.crop[0] - 1 - positions[:, 0]
        image = intensity_jitter(np.ascontiguousarray(image), rng)
        return torch.from_numpy(image)[None], torch.from_numpy(positions)


class VertebraCrops(torch.utils.data.Dataset):
    """Items: the 2 mm crop with its guiding heatmap (2, R, A, S) and the vertebra's mask (1, R, A, S)."""

    def __init__(self, cache, config: SCNetConfig, seed: int = 0, per_case: int = 4):
        self.cases = [case for case in stage_cases(cache, "segment") if len(case["points"])]
        self.crop, self.seed, self.epoch, self.per_case = np.array(config.segment_crop), seed, 0, per_case
        self.sigma = config.segment_sigma_mm / config.segment_spacing_mm
        self.jitter = CENTROID_JITTER_MM / config.segment_spacing_mm

    def __len__(self) -> int:
        return len(self.cases) * self.per_case

    def __getitem__(self, index: int):
        rng = np.random.default_rng([self.seed, self.epoch, index])
        case = self.cases[index // self.per_case]
        pick = rng.integers(len(case["points"]))
        label = VERTEBRA_CLASSES[int(case["classes"][pick])]
        centre = case["points"][pick] + rng.normal(0.0, self.jitter, 3)
        starts = np.round(centre - self.crop / 2).astype(int)
        image = window(case["image"], starts, self.crop, fill=case["air"]).astype(np.float32)
        target = (window(case["labels"], starts, self.crop, fill=0) == label).astype(np.float32)
        guide = gaussian_heatmap((centre - starts)[None], self.crop, self.sigma)
        image, guide, target = _mirrored(rng, image, guide, target)
        inputs = np.stack([intensity_jitter(image, rng), guide])
        return torch.from_numpy(inputs), torch.from_numpy(target)[None]
