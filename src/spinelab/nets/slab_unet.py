"""2D U-Net for thin stacks of slices (channels) with large anisotropic kernels at its lowest level.

McCouat & Glocker identify vertebrae on sagittal slabs: a few neighbouring sagittal slices enter as
channels, and 5 x 20 kernels at the bottom of the U let each pixel see most of the spine's length
(the long, S-I axis is the second). Every convolution is followed by batch norm (momentum 0.1) and
ReLU, with 'same' padding, as in the paper.
"""

from __future__ import annotations

import torch
from torch import nn


def _block(inputs: int, outputs: int, kernel=(3, 3)) -> nn.Sequential:
    # 'same' padding that also suits even kernels: the extra pixel goes after (ZeroPad2d: left, right, top, bottom)
    pad = ((kernel[1] - 1) // 2, kernel[1] // 2, (kernel[0] - 1) // 2, kernel[0] // 2)
    layers = []
    for channels in (inputs, outputs):
        layers += [nn.ZeroPad2d(pad), nn.Conv2d(channels, outputs, kernel), nn.BatchNorm2d(outputs, momentum=0.1),
                   nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class SlabUNet(nn.Module):
    """(B, slices, H, W) -> (B, out_channels, H, W); H and W must be multiples of 2 ** (len(channels) - 1)."""

    def __init__(self, in_channels: int, out_channels: int = 1, channels=(16, 32, 64, 128), bottom_kernel=(5, 20)):
        super().__init__()
        self.multiple = 2 ** (len(channels) - 1)
        self.down = nn.ModuleList([_block(in_channels, channels[0])])
        self.down.extend(_block(a, b) for a, b in zip(channels[:-2], channels[1:-1]))
        self.bottom = _block(channels[-2], channels[-1], bottom_kernel)
        self.up = nn.ModuleList(nn.ConvTranspose2d(a, b, 2, stride=2) for a, b in
                                zip(channels[:0:-1], channels[-2::-1]))
        self.merge = nn.ModuleList(_block(2 * b, b) for b in channels[-2::-1])
        self.head = nn.Conv2d(channels[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = nn.functional.max_pool2d(x, 2)
        x = self.bottom(x)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips)):
            x = merge(torch.cat([up(x), skip], dim=1))
        return self.head(x)
