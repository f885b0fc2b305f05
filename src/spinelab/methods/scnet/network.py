"""The three networks of Payer et al. (§2.1-2.3), in 3D.

``UNet``: the paper's U-Net variant. Per level two 3x3x3 convolutions (zero padding, so the output
has the input's size) with leaky ReLU, average pooling down and linear (trilinear) upsampling,
concatenated with the encoder's features of that scale and two more convolutions. It is the spine
localizer, the local-appearance part of the SC-Net and the vertebra segmenter, with other widths.
GroupNorm follows each 3x3x3 convolution, which the paper does not have: without it the spine
U-Net's loss had not moved from the all-zero output's after 90 CPU steps. Its statistics cover the
whole input, and every input at inference has its training size (a fixed input, windows, crops).

``SCNet``: local appearance x spatial configuration. The local U-Net's heatmaps are average-pooled
to a quarter of the resolution, pass four 7x7x7 convolutions (leaky ReLU between, tanh last),
are upsampled linearly and multiply the local heatmaps, as in Payer et al.'s published network.
Our one change: the tanh's bias starts at 2, so the spatial factor starts near 1 and the product
first trains like the local part alone (with a factor near 0 the short CPU training moved nothing).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

SLOPE = 0.1  # leaky ReLU
GROUPS = 4
SPATIAL_KERNEL = 7


def _convs(cin: int, cout: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for channels_in in (cin, cout):
        layers += [nn.Conv3d(channels_in, cout, 3, padding=1), nn.GroupNorm(math.gcd(GROUPS, cout), cout),
                   nn.LeakyReLU(SLOPE, inplace=True)]
    return nn.Sequential(*layers)


class UNet(nn.Module):
    """(B, in_channels, *spatial) -> (B, out_channels, *spatial); each spatial size must be a multiple of
    2 ** (levels - 1)."""

    def __init__(self, in_channels: int, out_channels: int, channels: tuple[int, ...], head_std: float = 1e-3):
        super().__init__()
        self.down = nn.ModuleList([_convs(cin, cout) for cin, cout in zip((in_channels, *channels[:-1]), channels)])
        self.up = nn.ModuleList([_convs(channels[level + 1] + channels[level], channels[level])
                                 for level in range(len(channels) - 1)])
        self.head = nn.Conv3d(channels[0], out_channels, 1)
        nn.init.normal_(self.head.weight, std=head_std)  # heatmaps start near zero
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for level, block in enumerate(self.down):
            x = block(x if level == 0 else F.avg_pool3d(x, 2))
            skips.append(x)
        for level in reversed(range(len(self.up))):
            x = F.interpolate(x, size=skips[level].shape[2:], mode="trilinear", align_corners=False)
            x = self.up[level](torch.cat([x, skips[level]], dim=1))
        return self.head(x)


class SCNet(nn.Module):
    """(B, 1, R, A, S) -> (B, classes, R, A, S) heatmaps: local appearance x spatial configuration; it
    also holds the learned sigma_i of each class's target heatmap."""

    def __init__(self, classes: int, channels: tuple[int, ...], spatial_channels: int, sigma: float, factor: int = 4):
        super().__init__()
        self.local = UNet(1, classes, channels)
        self.sigma = nn.Parameter(torch.full((classes,), float(sigma)))  # sigma_i of eq. 1, in voxels
        self.factor = factor
        layers: list[nn.Module] = []
        widths = (classes, spatial_channels, spatial_channels, spatial_channels, classes)
        for index, (cin, cout) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(nn.Conv3d(cin, cout, SPATIAL_KERNEL, padding=SPATIAL_KERNEL // 2))
            layers.append(nn.LeakyReLU(SLOPE, inplace=True) if index < 3 else nn.Tanh())
        self.spatial = nn.Sequential(*layers)
        nn.init.normal_(self.spatial[-2].weight, std=1e-3)
        nn.init.constant_(self.spatial[-2].bias, 2.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        local = self.local(x)
        pooled = F.avg_pool3d(local, self.factor)
        if pooled.device.type == "cpu" and min(pooled.shape[2:]) < SPATIAL_KERNEL:
            # On CPUs that compute bf16 natively, torch 2.13's bf16 conv3d with a kernel larger than its input
            # corrupted the heap or hung (a 4 x 4 x 8 input, measured); so small an input costs nothing in float32.
            with torch.autocast("cpu", enabled=False):
                spatial = self.spatial(pooled.float())
        else:
            spatial = self.spatial(pooled)
        spatial = F.interpolate(spatial, size=local.shape[2:], mode="trilinear", align_corners=False)
        return local * spatial
