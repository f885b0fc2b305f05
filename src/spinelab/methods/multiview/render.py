"""Digitally reconstructed radiographs: line integrals of X-ray attenuation through a CT.

Each pixel of a ``ConeBeamView`` receives ``integral mu(x) dl`` along the ray from the source to
the pixel centre, in world millimetres, so the value is the X-ray log attenuation
``-ln(I / I0)`` (monochromatic, no scatter). Attenuation comes from Hounsfield units with

    mu = MU_WATER * max(0, 1 + HU / 1000),   MU_WATER = 0.02 / mm,

the linear attenuation of water near a 60-70 keV effective beam energy (0.2 / cm); air (-1000 HU)
and anything below it contributes nothing. Values are sampled trilinearly in voxel space: each
ray is converted into voxel coordinates once with the inverse of the volume's affine, so volumes
stored in any orientation (LAS, PIR, oblique...) render identically. The volume occupies the box
spanned by its voxel centres; the ray's chord through that box is split into equal segments no
longer than ``step_mm`` and sampled at their midpoints.

Two implementations agree to float32 rounding: ``render_views`` (numba, parallel over pixels,
the CPU path) and ``render_drr_torch`` (``grid_sample`` on all ray samples at once, for GPUs).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from spinelab.errors import SpinelabError
from spinelab.io.volume import CTVolume
from spinelab.methods.multiview.projection import ConeBeamView

MU_WATER = 0.02  # linear attenuation of water, 1/mm


def hu_to_mu(hu) -> np.ndarray:
    """Linear attenuation (1/mm, float32) of Hounsfield units."""
    return np.maximum(MU_WATER * (1.0 + np.asarray(hu, dtype=np.float32) / np.float32(1000.0)), 0.0).astype(np.float32)


@njit(cache=True, fastmath=True)
def _clip_to_slab(start, delta, upper, t_near, t_far):
    """Clip the segment parameter range to ``0 <= start + t * delta <= upper`` along one axis."""
    if abs(delta) < 1e-12:
        if start < 0.0 or start > upper:
            return 1.0, 0.0
        return t_near, t_far
    ta = -start / delta
    tb = (upper - start) / delta
    if ta > tb:
        ta, tb = tb, ta
    return max(t_near, ta), min(t_far, tb)


@njit(cache=True, fastmath=True)
def _trilinear(mu, x, y, z):
    n0, n1, n2 = mu.shape
    i = min(int(x), n0 - 2)
    j = min(int(y), n1 - 2)
    k = min(int(z), n2 - 2)
    fx, fy, fz = x - i, y - j, z - k
    c00 = mu[i, j, k] * (1 - fz) + mu[i, j, k + 1] * fz
    c01 = mu[i, j + 1, k] * (1 - fz) + mu[i, j + 1, k + 1] * fz
    c10 = mu[i + 1, j, k] * (1 - fz) + mu[i + 1, j, k + 1] * fz
    c11 = mu[i + 1, j + 1, k] * (1 - fz) + mu[i + 1, j + 1, k + 1] * fz
    return (c00 * (1 - fy) + c01 * fy) * (1 - fx) + (c10 * (1 - fy) + c11 * fy) * fx


@njit(parallel=True, cache=True, fastmath=True)
def _march(mu, source_vox, corner_vox, du_vox, dv_vox, source_world, corner_world, du_world, dv_world,
           step_mm, out):
    """Ray-march every detector pixel; ``out`` (H, W) receives the line integrals."""
    height, width = out.shape
    upper0, upper1, upper2 = mu.shape[0] - 1.0, mu.shape[1] - 1.0, mu.shape[2] - 1.0
    for pixel in prange(height * width):
        row = pixel // width
        col = pixel - row * width
        # Segment source -> pixel centre, parametrized by t in [0, 1], in voxel and world units.
        d0 = corner_vox[0] + col * du_vox[0] + row * dv_vox[0] - source_vox[0]
        d1 = corner_vox[1] + col * du_vox[1] + row * dv_vox[1] - source_vox[1]
        d2 = corner_vox[2] + col * du_vox[2] + row * dv_vox[2] - source_vox[2]
        w0 = corner_world[0] + col * du_world[0] + row * dv_world[0] - source_world[0]
        w1 = corner_world[1] + col * du_world[1] + row * dv_world[1] - source_world[1]
        w2 = corner_world[2] + col * du_world[2] + row * dv_world[2] - source_world[2]
        length = math.sqrt(w0 * w0 + w1 * w1 + w2 * w2)
        t_near, t_far = _clip_to_slab(source_vox[0], d0, upper0, 0.0, 1.0)
        t_near, t_far = _clip_to_slab(source_vox[1], d1, upper1, t_near, t_far)
        t_near, t_far = _clip_to_slab(source_vox[2], d2, upper2, t_near, t_far)
        if t_far <= t_near:
            out[row, col] = 0.0
            continue
        samples = max(1, int(math.ceil((t_far - t_near) * length / step_mm)))
        dt = (t_far - t_near) / samples
        x = source_vox[0] + (t_near + 0.5 * dt) * d0
        y = source_vox[1] + (t_near + 0.5 * dt) * d1
        z = source_vox[2] + (t_near + 0.5 * dt) * d2
        total = 0.0
        for _ in range(samples):
            total += _trilinear(mu, x, y, z)
            x += dt * d0
            y += dt * d1
            z += dt * d2
        out[row, col] = total * dt * length


def _check_renderable(shape, name: str) -> None:
    if len(shape) != 3 or min(shape) < 2:
        raise SpinelabError(f"{name}: volume {tuple(shape)} is too small to render (need 2 voxels per axis)")


def _step(spacing: np.ndarray, step_mm: float | None) -> float:
    step = float(spacing.min()) if step_mm is None else float(step_mm)
    if not step > 0:
        raise SpinelabError(f"DRR step must be positive, got {step_mm}")
    return step


def _view_in_voxels(view: ConeBeamView, world_to_voxel: np.ndarray):
    """Source, first pixel centre and per-pixel steps of a view in voxel coordinates (and in world)."""
    linear, offset = world_to_voxel[:3, :3], world_to_voxel[:3, 3]
    corner_world = view.pixel_to_world([[0.0, 0.0]])[0]
    du_world, dv_world = view.pixel_size * view.u, view.pixel_size * view.v
    return (linear @ view.source + offset, linear @ corner_world + offset, linear @ du_world, linear @ dv_world,
            view.source, corner_world, du_world, dv_world)


def render_views(volume: CTVolume, views, step_mm: float | None = None) -> np.ndarray:
    """DRRs (K, H, W) float32 of a CT in Hounsfield units for K views sharing one detector shape.

    ``step_mm`` defaults to the smallest voxel spacing (one trilinear sample per voxel crossed).
    """
    views = list(views)
    _check_renderable(volume.shape, volume.name)
    shapes = {view.shape for view in views}
    if len(shapes) > 1:
        raise SpinelabError(f"views have different detector shapes {sorted(shapes)}; render them separately")
    step = _step(volume.spacing, step_mm)
    mu = np.ascontiguousarray(hu_to_mu(volume.array))
    world_to_voxel = np.linalg.inv(volume.affine)
    images = np.zeros((len(views), *views[0].shape) if views else (0, 0, 0), dtype=np.float32)
    for image, view in zip(images, views):
        _march(mu, *_view_in_voxels(view, world_to_voxel), step, image)
    return images


def render_drr(volume: CTVolume, view: ConeBeamView, step_mm: float | None = None) -> np.ndarray:
    """One DRR (H, W) float32: line integrals of attenuation (dimensionless, ``-ln I/I0``)."""
    return render_views(volume, [view], step_mm)[0]


def _ray_segments(view: ConeBeamView, world_to_voxel: np.ndarray, upper: np.ndarray, step: float):
    """Per-pixel chords through the voxel box, vectorized: the same clipping as ``_march``.

    Returns the source in voxels (3,), the source -> pixel vectors in voxels (P, 3), the ray
    lengths in mm (P,), the entry parameters (P,), the sample counts (P,) and steps in t (P,).
    """
    height, width = view.shape
    rows, cols = np.mgrid[0:height, 0:width]
    ends = view.pixel_to_world(np.stack([cols.ravel(), rows.ravel()], axis=1))
    source_vox = world_to_voxel[:3, :3] @ view.source + world_to_voxel[:3, 3]
    delta = ends @ world_to_voxel[:3, :3].T + world_to_voxel[:3, 3] - source_vox
    length = np.linalg.norm(ends - view.source, axis=1)
    parallel = np.abs(delta) < 1e-12
    with np.errstate(divide="ignore", invalid="ignore"):
        ta, tb = -source_vox / delta, (upper - source_vox) / delta
    outside = parallel & ((source_vox < 0) | (source_vox > upper))
    ta = np.where(parallel, np.where(outside, np.inf, -np.inf), ta)
    tb = np.where(parallel, np.where(outside, -np.inf, np.inf), tb)
    t_near = np.maximum(np.minimum(ta, tb).max(axis=1), 0.0)
    t_far = np.minimum(np.maximum(ta, tb).min(axis=1), 1.0)
    hit = t_far > t_near
    counts = np.where(hit, np.maximum(1, np.ceil((t_far - t_near) * length / step)), 0).astype(np.int64)
    dt = np.where(hit, (t_far - t_near) / np.maximum(counts, 1), 0.0)
    return source_vox, delta, length, t_near, counts, dt


def render_drr_torch(volume: CTVolume, views, device=None, step_mm: float | None = None,
                     max_samples: int = 1 << 23):
    """Torch/GPU DRRs (K, H, W) float32 with the same sampling as ``render_views``.

    All samples of a batch of rays are gathered with one trilinear ``grid_sample`` call; rays are
    batched so that at most ``max_samples`` points are in memory at once.
    """
    import torch
    import torch.nn.functional as F

    affine = volume.affine
    volume_hu = torch.as_tensor(np.ascontiguousarray(volume.array))
    device = torch.device(device) if device is not None else volume_hu.device
    _check_renderable(tuple(volume_hu.shape), "volume")
    step = _step(volume.spacing, step_mm)
    mu = (MU_WATER * (1.0 + volume_hu.to(device, torch.float32) / 1000.0)).clamp(min=0.0)[None, None]
    upper = np.array(volume_hu.shape, dtype=np.float64) - 1.0
    world_to_voxel = np.linalg.inv(affine)

    def as_tensor(values):
        return torch.as_tensor(values, dtype=torch.float32, device=device)

    to_grid = as_tensor(2.0 / upper)  # voxel index -> grid_sample's [-1, 1] (align_corners=True)
    images = []
    for view in views:
        source_vox, delta, length, t_near, counts, dt = _ray_segments(view, world_to_voxel, upper, step)
        most = max(int(counts.max()), 1)
        sample_index = torch.arange(most, device=device, dtype=torch.float32) + 0.5
        per_batch = max(1, max_samples // most)
        image = torch.zeros(len(counts), dtype=torch.float32, device=device)
        for start in range(0, len(counts), per_batch):
            part = slice(start, start + per_batch)
            t = as_tensor(t_near[part])[:, None] + sample_index * as_tensor(dt[part])[:, None]
            points = as_tensor(source_vox) + t[..., None] * as_tensor(delta[part])[:, None, :]
            grid = (points * to_grid - 1.0).flip(-1)  # grid_sample wants (x, y, z) = (axis 2, axis 1, axis 0)
            samples = F.grid_sample(mu, grid[None, :, :, None, :], mode="bilinear", padding_mode="zeros",
                                    align_corners=True)[0, 0, :, :, 0]
            valid = sample_index[None, :] < as_tensor(counts[part])[:, None]
            image[part] = (samples * valid).sum(dim=1) * as_tensor(dt[part] * length[part])
        images.append(image.reshape(view.shape))
    return torch.stack(images) if images else torch.zeros((0, 0, 0), device=device)


def normalize_drr(image: np.ndarray, low_percentile: float = 1.0, high_percentile: float = 99.5) -> np.ndarray:
    """Network input in [0, 1]: the DRR (already log attenuation) scaled between two percentiles.

    Line integrals are the logarithm of the X-ray intensity, so a linear map of them is the
    "log" scaling of a radiograph. Percentiles of the image itself (1 and 99.5 by default) make
    the result independent of patient size and scan length while a few very dense pixels
    (metal, contrast) saturate instead of compressing the bone contrast. Deterministic per image;
    a constant image maps to zeros.
    """
    image = np.asarray(image, dtype=np.float32)
    low, high = np.percentile(image, [low_percentile, high_percentile])
    if not high > low:
        return np.zeros_like(image)
    return np.clip((image - low) / (high - low), 0.0, 1.0).astype(np.float32)
