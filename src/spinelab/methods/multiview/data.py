"""Training data of the multi-view method: DRRs rendered once per case into a cache, targets on the fly.

Rendering dominates the cost of a sample, so each training case is rendered from
``views_per_case`` angles (random start angle and isocentre jitter) once and stored as float16 in
the shared case cache (``spinelab.training.cache``) with the projected centroids; targets and
augmentation are computed per batch.
"""

from __future__ import annotations

import numpy as np
import torch

from spinelab.bone import BoneStage
from spinelab.io.centroids import Centroids
from spinelab.io.volume import CTVolume
from spinelab.methods.multiview.config import MultiViewConfig
from spinelab.methods.multiview.targets import identification_targets
from spinelab.methods.multiview.views import make_views, render_normalized, rendering_volume
from spinelab.targets import gaussian_heatmap
from spinelab.training import intensity_augment
from spinelab.vertebrae import VERTEBRA_CLASSES


def render_training_case(ct: CTVolume, centroids: Centroids, config: MultiViewConfig, views_per_case: int,
                         rng: np.random.Generator, bone: BoneStage | None = None) -> dict[str, np.ndarray]:
    """Normalized DRRs (K, H, W) float16, projected centroids (K, N, 2), their labels (N) and pixel mm (K),
    rendered through the same bone stage as at inference."""
    centroids = centroids.select(VERTEBRA_CLASSES)
    volume = rendering_volume(ct.canonical(), config, bone)
    shift = rng.normal(0.0, config.isocenter_jitter_mm, 3) if config.isocenter_jitter_mm > 0 else None
    views = make_views(volume, config, k=views_per_case, start_angle=rng.uniform(0.0, 360.0), center_shift=shift)
    images = render_normalized(volume, views)
    points = np.stack([view.project(centroids.world) for view in views]) if len(centroids) else \
        np.zeros((len(views), 0, 2))
    return {"images": images.astype(np.float16), "points": points.astype(np.float32),
            "labels": centroids.labels.astype(np.int16),
            "pixel_mm": np.array([view.pixel_mm_at_isocenter for view in views], dtype=np.float32)}


class DRRDataset(torch.utils.data.Dataset):
    """One item per cached view: image (1, H, W), heatmap (1, H, W), class map (H, W) / identifier_scale."""

    def __init__(self, cache: list[dict[str, np.ndarray]], config: MultiViewConfig, augment: bool = True,
                 seed: int = 0):
        self.cache, self.config, self.augment, self.seed = cache, config, augment, seed
        self.items = [(c, v) for c, case in enumerate(cache) for v in range(len(case["images"]))]
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.items)

    def sample(self, index: int, rng: np.random.Generator):
        case_index, view = self.items[index]
        case = self.cache[case_index]
        image = case["images"][view].astype(np.float32)
        points = case["points"][view].astype(np.float64)
        labels = case["labels"]
        height, width = image.shape
        if self.augment:
            image = intensity_augment(image, rng)
            if rng.random() < 0.5:  # mirror left-right: vertebra names do not depend on the side
                image = image[:, ::-1].copy()
                points = points.copy()
                points[:, 0] = width - 1 - points[:, 0]
        pixel_mm = float(case["pixel_mm"][view])
        heatmap = gaussian_heatmap(points[:, ::-1], (height, width), self.config.heatmap_sigma_mm / pixel_mm)
        # The identifier works on the image pooled by ``scale``: pooled pixel j is centred on pixel
        # scale * j + (scale - 1) / 2, so its targets are drawn on that coarser grid.
        scale = self.config.identifier_scale
        classes = identification_targets((points - (scale - 1) / 2) / scale, labels,
                                         (height // scale, width // scale), pixel_mm * scale, self.config.square_mm)
        return image, heatmap, classes

    def __getitem__(self, index: int):
        rng = np.random.default_rng([self.seed, self.epoch, index])
        image, heatmap, classes = self.sample(index, rng)
        return torch.from_numpy(image)[None], torch.from_numpy(heatmap)[None], torch.from_numpy(classes)


class ViewPairDataset(torch.utils.data.Dataset):
    """SimSiam positives: two different views of the same CT, independently augmented."""

    def __init__(self, cache: list[dict[str, np.ndarray]], seed: int = 0):
        self.cache, self.seed, self.epoch = cache, seed, 0

    def __len__(self) -> int:
        return len(self.cache) * 4

    def __getitem__(self, index: int):
        rng = np.random.default_rng([self.seed, self.epoch, index])
        images = self.cache[index % len(self.cache)]["images"]
        first, second = rng.choice(len(images), size=2, replace=len(images) < 2)
        pair = []
        for view in (first, second):
            image = intensity_augment(images[view].astype(np.float32), rng)
            if rng.random() < 0.5:
                image = image[:, ::-1].copy()
            pair.append(torch.from_numpy(image)[None])
        return pair[0], pair[1]

