"""Intensity augmentation shared by the methods, 2D or 3D: windowed images in [0, 1] or z-scored CT."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def intensity_augment(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Blur, contrast/gamma jitter and noise, so real scanner statistics need not match synthetic ones."""
    if rng.random() < 0.5:  # synthetic bone edges are sharper than a real scanner's
        image = ndimage.gaussian_filter(image, rng.uniform(0.3, 1.5))
    gamma = np.exp(rng.normal(0.0, 0.25))
    image = np.clip(image, 0.0, 1.0) ** gamma
    image = image * rng.uniform(0.85, 1.15) + rng.uniform(-0.08, 0.08)
    image = image + rng.normal(0.0, rng.uniform(0.0, 0.03), image.shape)
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def zscore_augment(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Blur, contrast and brightness jitter and noise on a z-scored crop (synthetic edges are sharper
    and synthetic noise plainer than a real scanner's)."""
    if rng.random() < 0.5:
        image = ndimage.gaussian_filter(image, rng.uniform(0.3, 1.2))
    image = image * rng.uniform(0.85, 1.15) + rng.uniform(-0.15, 0.15)
    return (image + rng.normal(0.0, rng.uniform(0.0, 0.1), image.shape)).astype(np.float32)
