"""From painted anatomy to a CT image: partial volume, slice profile, metal streaks, blur, noise,
calibration, implants at the int16 ceiling and the reconstruction circle."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from spinelab.synth import kernels
from spinelab.synth.anatomy import Patient
from spinelab.synth.canvas import Canvas
from spinelab.synth.variants import METAL_HU, Grid, Plan

LOWEST_HU = -1024.0
#: Spread of the marrow's trabecular texture (HU, about two standard deviations).
TRABECULAR_HU = 200.0
_STREAK_ANGLES = 24


def _average_slices(array: np.ndarray, grid: Grid) -> np.ndarray:
    """Mean over each output voxel's sub-slices along the slice axis: a box slice profile."""
    if grid.subsamples == 1:
        return array
    shape = list(array.shape)
    shape[grid.slice_axis: grid.slice_axis + 1] = [grid.shape[grid.slice_axis], grid.subsamples]
    return array.reshape(shape).mean(axis=grid.slice_axis + 1, dtype=np.float32)


def _middle_slices(array: np.ndarray, grid: Grid) -> np.ndarray:
    """The sub-slice at each output voxel's centre (for label maps, which must not be averaged)."""
    index = [slice(None)] * 3
    index[grid.slice_axis] = slice(grid.subsamples // 2, None, grid.subsamples)
    return array[tuple(index)]


def _blur_and_noise(image: np.ndarray, spacing: np.ndarray, plan: Plan, rng: np.random.Generator) -> np.ndarray:
    """Gaussian point spread in-plane (and a touch along the slices) applied to image plus white noise,
    so the noise is correlated like reconstructed CT noise; its level after blurring is ``plan.noise_hu``."""
    sigma = np.full(3, plan.blur_mm) / spacing
    sigma[plan.slice_axis] *= 0.5
    impulse = np.zeros((9, 9, 9), dtype=np.float64)
    impulse[4, 4, 4] = 1.0
    kernel = ndimage.gaussian_filter(impulse, sigma, mode="constant")
    noise_gain = float(np.sqrt((kernel ** 2).sum()))
    noise = rng.standard_normal(image.shape, dtype=np.float32)
    image += noise * np.float32(plan.noise_hu / noise_gain)
    return ndimage.gaussian_filter(image, sigma, output=np.float32, mode="nearest", truncate=3.0)


def outside_reconstruction(grid: Grid, plan: Plan) -> np.ndarray | None:
    """(nx, ny) mask of what lies outside an axial scan's reconstructed disc, where scanners write
    their padding value; None when this scan has no such circle."""
    if plan.padding is None or grid.slice_axis != 2:
        return None
    nx, ny = grid.shape[:2]
    x = (np.arange(nx) - (nx - 1) / 2) * grid.spacing[0]
    y = (np.arange(ny) - (ny - 1) / 2) * grid.spacing[1]
    radius = min(nx * grid.spacing[0], ny * grid.spacing[1]) / 2
    return x[:, None] ** 2 + y[None, :] ** 2 > radius ** 2


def render(canvas: Canvas, grid: Grid, patient: Patient, plan: Plan, rng: np.random.Generator,
           seed: int) -> np.ndarray:
    """int16 HU on the output grid (canonical R, A, S axes)."""
    kernels.compose(canvas.soft, canvas.sdf, canvas.material, canvas.origin, canvas.spacing, patient.cortical,
                    patient.cancellous, patient.cortex, canvas.voxel, int(seed % 2**31), TRABECULAR_HU)
    image = _average_slices(canvas.soft, grid)
    for name, cover in canvas.covers.items():  # dense non-metal fills are blurred like tissue
        if name != "metal":
            image += (np.float32(canvas.cover_hu[name]) - image) * np.minimum(_average_slices(cover, grid) * 1.5, 1.0)
    metal = None if canvas.metal is None else _average_slices(canvas.metal, grid)
    if metal is not None:
        angles = np.sort(rng.uniform(0, np.pi, _STREAK_ANGLES))
        kernels.metal_streaks(image, metal, grid.spacing, angles, float(rng.uniform(2.0, 5.0)))
    image = _blur_and_noise(np.ascontiguousarray(image), grid.spacing, plan, rng)
    slope, offset = plan.calibration
    image = image * np.float32(slope) + np.float32(offset)
    np.maximum(image, LOWEST_HU, out=image)
    if metal is not None:
        image += (METAL_HU - image) * np.minimum(metal * 1.5, 1.0)
    outside = outside_reconstruction(grid, plan)
    if outside is not None:
        image[outside, :] = plan.padding
    return np.clip(np.rint(image), -32768, METAL_HU).astype(np.int16)


def label_map(canvas: Canvas, grid: Grid, visible: set[int]) -> np.ndarray:
    """VerSe labels of the visible vertebrae on the output grid (uint8)."""
    owner = _middle_slices(canvas.owner, grid)
    inside = _middle_slices(canvas.sdf, grid) < 0
    labels = np.where(inside & np.isin(owner, sorted(visible)), owner, 0)
    return labels.astype(np.uint8)


def tissue_map(canvas: Canvas, grid: Grid, plan: Plan) -> np.ndarray:
    """Tissue class of each output voxel (``kernels.TISSUE_NAMES``): bone and metal over soft tissues."""
    classes = _middle_slices(canvas.classes, grid).copy()
    classes[_middle_slices(canvas.sdf, grid) < 0] = kernels.BONE
    if canvas.metal is not None:
        classes[_middle_slices(canvas.metal, grid) >= 0.5] = kernels.METAL
    outside = outside_reconstruction(grid, plan)
    if outside is not None:
        classes[outside, :] = kernels.OUTSIDE
    return classes
