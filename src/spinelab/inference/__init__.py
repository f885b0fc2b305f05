"""Patch sampling for training and MONAI sliding-window inference over whole volumes.

torch and MONAI are imported inside ``sliding_window`` only: MONAI takes seconds to import, and
data-loading code that just samples patches should not pay for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from spinelab.devices import autocast
from spinelab.errors import SpinelabError
from spinelab.inference.patches import pad_to, random_patch_slices, window

if TYPE_CHECKING:
    import torch

__all__ = ["pad_to", "random_patch_slices", "sliding_window", "window"]


def sliding_window(
    network: torch.nn.Module,
    volume: np.ndarray,
    patch_size: Sequence[int],
    overlap: float = 0.25,
    device: str = "cpu",
    batch_size: int = 1,
    progress: bool = False,
    border: Sequence[int] | None = None,
    pad_value: float = 0.0,
) -> np.ndarray:
    """``network`` run patch-wise over ``volume``, Gaussian-blended: (C_out, *spatial) float32.

    With ``border`` (voxels per axis) the outer border of every patch output is discarded instead, as
    McCouat & Glocker do against edge artifacts: the volume is padded by ``border`` with ``pad_value``,
    patches step by ``patch - 2 * border`` and only their centres count (``overlap`` is then implied).

    ``volume`` is single-channel (spatial only) or channels-first (C_in, *spatial). The network must
    already sit on ``device``; patches are sent there and the output is stitched on the CPU, so a
    large volume does not have to fit in GPU memory. It runs in eval mode (its previous mode is
    restored), under ``torch.inference_mode`` and ``spinelab.devices.autocast``, and its patch outputs
    are cast back to float32 before blending. Volumes smaller than a patch are zero-padded by MONAI
    and cropped back.
    """
    import torch
    from monai.inferers import sliding_window_inference

    patch_size = tuple(int(n) for n in patch_size)
    spatial = len(patch_size)
    if volume.ndim == spatial:
        volume = volume[None]
    elif volume.ndim != spatial + 1:
        raise SpinelabError(
            f"sliding window: volume of shape {volume.shape} is neither {spatial}D nor channels-first {spatial}D")
    if not 0 <= overlap < 1:
        raise SpinelabError(f"sliding window: overlap must be in [0, 1), got {overlap}")
    weights, original = None, None
    if border is not None:
        border = np.broadcast_to(np.asarray(border, dtype=int), (spatial,))
        if ((np.array(patch_size) - 2 * border) < 1).any() or (border < 0).any():
            raise SpinelabError(f"sliding window: border {tuple(border)} leaves nothing of patch {patch_size}")
        overlap = float(min(2 * border / np.array(patch_size)))
        original = (slice(None), *(slice(int(b), int(b) + n) for b, n in zip(border, volume.shape[1:])))
        volume = np.pad(volume, [(0, 0)] + [(int(b), int(b)) for b in border], constant_values=pad_value)
        centre = np.full(patch_size, 1e-8, dtype=np.float32)  # not 0: every voxel keeps some weight
        centre[tuple(slice(int(b), n - int(b)) for b, n in zip(border, patch_size))] = 1.0
        weights = torch.from_numpy(centre)
    inputs = torch.from_numpy(np.ascontiguousarray(volume, dtype=np.float32))[None]
    def predict(patches: torch.Tensor) -> torch.Tensor:
        with autocast(device):
            return network(patches).float()

    was_training = network.training
    network.eval()
    try:
        with torch.inference_mode():
            output = sliding_window_inference(
                inputs, patch_size, batch_size, predict, overlap=overlap, mode="gaussian",
                sw_device=device, device="cpu", progress=progress, roi_weight_map=weights)
    finally:
        network.train(was_training)
    output = output[0].float().numpy()
    return output if original is None else output[original]
