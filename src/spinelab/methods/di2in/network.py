"""DI2IN (Yang et al., Fig. 3): a 3D convolutional encoder-decoder with skip concatenations and
deep supervision, one Gaussian heatmap channel per vertebra class.

Encoder: per level two 3x3x3 convolutions with ReLU, then 2x2x2 max-pooling. Decoder: trilinear
upsampling, concatenation with the encoder's features of that scale, two 3x3x3 convolutions with
ReLU. The ``supervised_levels`` finest decoder levels each give a 1x1x1 branch of heatmaps upsampled
to the input size; the final output is a 1x1x1 convolution with ReLU of the concatenated branches.
GroupNorm (4 groups) follows each 3x3x3 convolution, which the paper does not have: it steadies a
short training from scratch, as in the integral network. Because GroupNorm's statistics cover the
whole input, inference runs on training-sized patches (``spinelab.inference.sliding_window``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spinelab.methods.di2in.config import DI2INConfig
from spinelab.vertebrae import VERTEBRA_CLASSES

GROUPS = 4


class Float32GroupNorm(nn.GroupNorm):
    """GroupNorm computed in float32 under bf16 autocast: on an all-air crop the bf16 variance of the 2 x 2 x 6
    deepest features cancels to about zero, and the first run's Adam state held infinite gradients by step 200."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return super().forward(x.float()).to(x.dtype)


def _block(cin: int, cout: int) -> nn.Sequential:
    layers = []
    for channels_in in (cin, cout):
        layers += [nn.Conv3d(channels_in, cout, 3, padding=1, bias=False), Float32GroupNorm(GROUPS, cout),
                   nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class DI2IN(nn.Module):
    """(B, 1, R, A, S) -> every branch's heatmaps, finest-level branch last, and the final output
    (B, classes, R, A, S); ``forward`` returns the final output alone at inference (eval mode)."""

    def __init__(self, config: DI2INConfig):
        super().__init__()
        channels, classes = config.channels, len(VERTEBRA_CLASSES)
        self.encoder = nn.ModuleList([_block(cin, cout) for cin, cout in zip((1, *channels[:-1]), channels)])
        self.decoder = nn.ModuleList([_block(channels[level + 1] + channels[level], channels[level])
                                      for level in range(len(channels) - 1)])
        self.supervised = list(range(config.supervised_levels))  # decoder levels 0 (finest) .. n-1
        self.branches = nn.ModuleList([nn.Conv3d(channels[level], classes, 1) for level in self.supervised])
        self.fuse = nn.Conv3d(classes * len(self.supervised), classes, 1)
        # Heatmaps start near zero and the fusion as the branches' mean: with the default initialization the
        # first outputs summed to about 1.5 million squared error per crop and the run diverged within 110 steps.
        for branch in self.branches:
            nn.init.normal_(branch.weight, std=1e-3)
            nn.init.zeros_(branch.bias)
        with torch.no_grad():
            self.fuse.weight.zero_()
            self.fuse.bias.zero_()
            for index in range(len(self.supervised)):
                self.fuse.weight[:, index * classes:(index + 1) * classes, 0, 0, 0] += torch.eye(classes) / len(
                    self.supervised)

    def branch_outputs(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        size = x.shape[2:]
        skips = []
        for level, block in enumerate(self.encoder):
            x = block(x if level == 0 else F.max_pool3d(x, 2))
            skips.append(x)
        branches = {}
        for level in reversed(range(len(self.decoder))):
            x = F.interpolate(x, size=skips[level].shape[2:], mode="trilinear", align_corners=False)
            x = self.decoder[level](torch.cat([x, skips[level]], dim=1))
            if level in self.supervised:
                heatmaps = self.branches[self.supervised.index(level)](x)
                branches[level] = heatmaps if level == 0 else F.interpolate(
                    heatmaps, size=size, mode="trilinear", align_corners=False)
        outputs = [branches[level] for level in reversed(self.supervised)]
        return outputs, F.relu(self.fuse(torch.cat(outputs, dim=1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[list[torch.Tensor], torch.Tensor]:
        outputs, final = self.branch_outputs(x)
        return (outputs, final) if self.training else final
