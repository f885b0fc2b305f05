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
from spinelab.inference.patches import pad_to, random_patch_slices

if TYPE_CHECKING:
    import torch

__all__ = ["pad_to", "random_patch_slices", "sliding_window"]


def sliding_window(
    network: torch.nn.Module,
    volume: np.ndarray,
    patch_size: Sequence[int],
    overlap: float = 0.25,
    device: str = "cpu",
    batch_size: int = 1,
    progress: bool = False,
) -> np.ndarray:
    """``network`` run patch-wise over ``volume``, Gaussian-blended: (C_out, *spatial) float32.

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
                sw_device=device, device="cpu", progress=progress)
    finally:
        network.train(was_training)
    return output[0].float().numpy()
