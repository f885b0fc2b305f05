"""Random training patches inside a 3D volume, biased towards the foreground, padding to a patch, and
windows that may leave the volume."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from spinelab.errors import SpinelabError


def random_patch_slices(
    shape: Sequence[int],
    patch_size: Sequence[int],
    rng: np.random.Generator,
    foreground: np.ndarray | None = None,
    foreground_fraction: float = 0.8,
) -> tuple[slice, ...]:
    """Slices of a ``patch_size`` patch lying wholly inside a volume of ``shape``.

    With probability ``foreground_fraction`` the patch is centred on a random voxel of the boolean
    ``foreground`` (shifted to stay inside), so sparse targets such as vertebrae are seen often enough;
    otherwise, or when there is no foreground, it is placed uniformly. Pad smaller volumes with
    ``pad_to`` first.
    """
    shape = np.asarray(shape, dtype=int)
    patch = np.asarray(patch_size, dtype=int)
    if shape.shape != patch.shape:
        raise SpinelabError(f"patch size {tuple(patch)} and volume shape {tuple(shape)} differ in dimensions")
    if (patch > shape).any():
        raise SpinelabError(f"volume {tuple(shape)} is smaller than the patch {tuple(patch)}; pad it with pad_to first")
    if not 0 <= foreground_fraction <= 1:
        raise SpinelabError(f"foreground_fraction must be in [0, 1], got {foreground_fraction}")
    if foreground is not None and foreground.shape != tuple(shape):
        raise SpinelabError(f"foreground mask {foreground.shape} does not match the volume {tuple(shape)}")
    highest_start = shape - patch
    starts = None
    if foreground is not None and rng.random() < foreground_fraction:
        candidates = np.flatnonzero(foreground)
        if candidates.size:
            centre = np.array(np.unravel_index(rng.choice(candidates), foreground.shape))
            starts = np.clip(centre - patch // 2, 0, highest_start)
    if starts is None:
        starts = rng.integers(0, highest_start + 1)
    return tuple(slice(int(start), int(start + size)) for start, size in zip(starts, patch))


def pad_to(array: np.ndarray, patch_size: Sequence[int], value: float = 0) -> tuple[np.ndarray, tuple[slice, ...]]:
    """``array`` padded with ``value`` at the END of its last ``len(patch_size)`` axes to at least ``patch_size``.

    Padding at the end keeps voxel (0, 0, 0) where it was, so the affine stays valid for the padded
    array. Leading axes (channels) are left alone. Returns the padded array and the slices
    (over all axes) that recover the original region.
    """
    spatial = len(patch_size)
    if array.ndim < spatial:
        raise SpinelabError(f"array of shape {array.shape} has fewer axes than the patch {tuple(patch_size)}")
    lead = array.ndim - spatial
    missing = [max(int(size) - n, 0) for n, size in zip(array.shape[lead:], patch_size)]
    original = tuple(slice(0, n) for n in array.shape)
    if not any(missing):
        return array, original
    padded = np.pad(array, [(0, 0)] * lead + [(0, m) for m in missing], mode="constant", constant_values=value)
    return padded, original


def window(array: np.ndarray, starts: Sequence[int], size: Sequence[int], fill: float = 0) -> np.ndarray:
    """``array[starts : starts + size]`` on every axis, ``fill`` where the window leaves the array."""
    out = np.full(tuple(int(n) for n in size), fill, dtype=array.dtype)
    source, target = [], []
    for start, length, n in zip(starts, size, array.shape):
        start, length = int(start), int(length)
        low, high = max(start, 0), min(start + length, n)
        if high <= low:
            return out
        source.append(slice(low, high))
        target.append(slice(low - start, high - start))
    out[tuple(target)] = array[tuple(source)]
    return out
