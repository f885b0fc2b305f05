"""Training data of the multi-view method: DRRs rendered once per case into a cache, targets on the fly.

Rendering dominates the cost of a sample, so each training case is rendered from
``views_per_case`` angles (random start angle and isocentre jitter) once and stored as float16 in
``cache_dir/<case>.npz`` with the projected centroids; targets and augmentation are computed per
batch. An interrupted cache build resumes where it stopped.
"""

from __future__ import annotations

import sys
import zlib
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from tqdm import tqdm

from spinelab.drr import VERTEBRA_CLASSES, heatmap_targets, identification_targets
from spinelab.errors import SpinelabError
from spinelab.io.centroids import Centroids
from spinelab.io.datasets import find_cases
from spinelab.io.volume import CTVolume
from spinelab.methods.multiview.config import MultiViewConfig
from spinelab.methods.multiview.views import make_views, render_normalized, rendering_volume


def render_training_case(ct: CTVolume, centroids: Centroids, config: MultiViewConfig, views_per_case: int,
                         rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Normalized DRRs (K, H, W) float16, projected centroids (K, N, 2), their labels (N) and pixel mm (K)."""
    centroids = centroids.select(VERTEBRA_CLASSES)
    volume = rendering_volume(ct.canonical(), config)
    shift = rng.normal(0.0, config.isocenter_jitter_mm, 3) if config.isocenter_jitter_mm > 0 else None
    views = make_views(volume, config, k=views_per_case, start_angle=rng.uniform(0.0, 360.0), center_shift=shift)
    images = render_normalized(volume, views)
    points = np.stack([view.project(centroids.world) for view in views]) if len(centroids) else \
        np.zeros((len(views), 0, 2))
    return {"images": images.astype(np.float16), "points": points.astype(np.float32),
            "labels": centroids.labels.astype(np.int16),
            "pixel_mm": np.array([view.pixel_mm_at_isocenter for view in views], dtype=np.float32)}


def build_cache(dataset: str | Path, cache_dir: str | Path, config: MultiViewConfig, views_per_case: int = 10,
                seed: int = 0, progress: bool = True) -> list[Path]:
    """Render every case of a VerSe/CSI2014-layout dataset into ``cache_dir`` (skipping cached ones)."""
    cases = find_cases(dataset)
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for case in tqdm(cases, desc="render DRRs", unit="case", disable=not progress, file=sys.stderr):
        path = cache_dir / f"{case.case_id}.npz"
        if not path.exists():
            ct, centroids, _ = case.load()
            # A per-case seed keeps the cache identical however often the build is resumed.
            rng = np.random.default_rng([seed, zlib.crc32(case.case_id.encode())])
            sample = render_training_case(ct, centroids, config, views_per_case, rng)
            tmp = path.with_suffix(".part.npz")
            np.savez(tmp, **sample)
            tmp.replace(path)
        paths.append(path)
    return paths


def load_cache(cache_dir: str | Path) -> list[dict[str, np.ndarray]]:
    paths = sorted(Path(cache_dir).glob("*.npz"))
    paths = [p for p in paths if not p.name.endswith(".part.npz")]
    if not paths:
        raise SpinelabError(f"{cache_dir}: no rendered DRRs found (run the cache build first)")
    return [dict(np.load(path)) for path in paths]


def augment_image(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Blur, contrast/gamma jitter and noise in [0, 1], so real DRR statistics need not match exactly."""
    if rng.random() < 0.5:  # synthetic bone edges are sharper than a real scanner's
        image = ndimage.gaussian_filter(image, rng.uniform(0.3, 1.5))
    gamma = np.exp(rng.normal(0.0, 0.25))
    image = np.clip(image, 0.0, 1.0) ** gamma
    image = image * rng.uniform(0.85, 1.15) + rng.uniform(-0.08, 0.08)
    image = image + rng.normal(0.0, rng.uniform(0.0, 0.03), image.shape)
    return np.clip(image, 0.0, 1.0).astype(np.float32)


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
            image = augment_image(image, rng)
            if rng.random() < 0.5:  # mirror left-right: vertebra names do not depend on the side
                image = image[:, ::-1].copy()
                points = points.copy()
                points[:, 0] = width - 1 - points[:, 0]
        pixel_mm = float(case["pixel_mm"][view])
        heatmap = heatmap_targets(points, (height, width), self.config.heatmap_sigma_mm / pixel_mm)
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
            image = augment_image(images[view].astype(np.float32), rng)
            if rng.random() < 0.5:
                image = image[:, ::-1].copy()
            pair.append(torch.from_numpy(image)[None])
        return pair[0], pair[1]

