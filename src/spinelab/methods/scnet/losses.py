"""The scnet losses: L2 on heatmaps (§2.1), eq. 1 with learned sigma_i (§2.2), sigmoid cross-entropy (§2.3)."""

from __future__ import annotations

import torch


def heatmap_l2(output: torch.Tensor, target: torch.Tensor, foreground_weight: float) -> torch.Tensor:
    """Squared error summed over voxels and channels, per item, each voxel weighted 1 + ``foreground_weight``
    x its target (0 gives the paper's plain L2)."""
    weight = 1.0 + foreground_weight * target.detach()
    return (weight * (output.float() - target) ** 2).sum() / len(output)


def target_heatmaps(positions: torch.Tensor, sigma: torch.Tensor, shape) -> torch.Tensor:
    """(B, K, *shape) Gaussians of peak 1 at ``positions`` (B, K, 3) voxels with per-class ``sigma`` (K,);
    zero where a position is NaN (the class is absent). Built as the outer product of three 1D profiles."""
    present = torch.isfinite(positions).all(dim=-1)
    centres = torch.nan_to_num(positions)
    profiles = []
    for axis, n in enumerate(shape):
        grid = torch.arange(n, dtype=positions.dtype, device=positions.device)
        offsets = grid - centres[..., axis, None]  # (B, K, n)
        profiles.append(torch.exp(-0.5 * (offsets / sigma[None, :, None]) ** 2))
    heatmaps = profiles[0][..., :, None, None] * profiles[1][..., None, :, None] * profiles[2][..., None, None, :]
    return heatmaps * present[..., None, None, None]


def landmark_loss(output: torch.Tensor, positions: torch.Tensor, sigma: torch.Tensor, alpha: float,
                  foreground_weight: float, min_sigma: float) -> torch.Tensor:
    """Eq. 1: the (weighted) L2 between the heatmaps and Gaussians of the learned sigma_i (clamped at
    ``min_sigma``), plus alpha x the squared norm of sigma."""
    sigma = sigma.float().clamp(min=min_sigma)
    target = target_heatmaps(positions.float(), sigma, output.shape[2:])
    return heatmap_l2(output, target, foreground_weight) + alpha * (sigma ** 2).sum()


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), target)
