"""Integral regression (Sun et al. 2018, eq. 5-6 of Qin et al.): the expected coordinate of a
softmax-normalized heatmap. Unlike an argmax it is differentiable, so a coordinate loss trains the
heatmap end to end, and it resolves positions finer than a voxel."""

from __future__ import annotations

import torch


def integral_coordinates(heatmaps: torch.Tensor) -> torch.Tensor:
    """(B, K, *spatial) heatmap logits -> (B, K, ndim) expected voxel indices under softmax over space.

    The softmax runs in float32 whatever the autocast, since a bf16 sum over a million voxels
    loses the sub-voxel part of the answer."""
    batch, channels, *spatial = heatmaps.shape
    probability = heatmaps.float().reshape(batch, channels, -1).softmax(dim=-1).reshape(batch, channels, *spatial)
    coordinates = []
    for axis, size in enumerate(spatial):
        others = tuple(2 + a for a in range(len(spatial)) if a != axis)
        marginal = probability.sum(dim=others)  # (B, K, size)
        coordinates.append((marginal * torch.arange(size, device=heatmaps.device, dtype=torch.float32)).sum(-1))
    return torch.stack(coordinates, dim=-1)
