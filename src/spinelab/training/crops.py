"""Random training crops of cached spine cases (``spinelab.io.working.spine_case``), shared by the
methods that train on 3D crops of the z-scored CT (``integral``, ``di2in``)."""

from __future__ import annotations

import numpy as np
import torch

from spinelab.inference import window


class SpineCrops(torch.utils.data.Dataset):
    """``per_case`` crops of each case per epoch: with probability ``on_spine`` around a random vertebra
    (its centroid up to ``spread`` crop sizes from the crop's centre), else anywhere in the case, so the
    network also learns what holds no vertebra. Subclasses turn ``draw(index)`` into their items."""

    def __init__(self, cache: list[dict[str, np.ndarray]], crop, seed: int = 0, per_case: int = 4,
                 on_spine: float = 0.85, spread: float = 0.35):
        self.cache, self.crop, self.seed, self.epoch = cache, np.array(crop), seed, 0
        self.per_case, self.on_spine, self.spread = per_case, on_spine, spread

    def __len__(self) -> int:
        return len(self.cache) * self.per_case

    def draw(self, index: int) -> tuple[dict[str, np.ndarray], np.random.Generator, np.ndarray, np.ndarray]:
        """The case, the item's random generator, the crop's start (voxels) and its image (float32)."""
        rng = np.random.default_rng([self.seed, self.epoch, index])
        case = self.cache[index // self.per_case]
        if len(case["points"]) and rng.random() < self.on_spine:
            centre = case["points"][rng.integers(len(case["points"]))]
            centre = centre + rng.uniform(-self.spread, self.spread, 3) * self.crop
        else:
            centre = rng.uniform(0, 1, 3) * np.array(case["image"].shape)
        starts = np.round(centre - self.crop / 2).astype(int)
        return case, rng, starts, window(case["image"], starts, self.crop, fill=case["air"]).astype(np.float32)
