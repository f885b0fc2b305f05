"""The residual multi-label classification and localization network of Qin et al. (Fig. 3-4).

* Shared encoder: a stride-2 3x3x3 stem (the stacked hourglass's, which the paper builds on), then 6
  residual bottleneck modules and 3 max-pools (1/2, 1/4, 1/8 and three at 1/16 of the input
  resolution); 4 skip-out 1x1x1 convolutions leave it at those scales.
* Localization: an hourglass decoder of 3 residual modules and 3 upsamplings, each skip-out added
  element-wise at its scale, then 2 convolutions giving one heatmap per class at half the input
  resolution (4 mm), whose integral regression is the class's centroid in input voxels. The stem
  makes the network about ten times cheaper than one at full resolution (a 2-crop training step took
  8-12 s on 2 cores at full resolution); integral regression resolves well below a heatmap voxel.
* Classification: from the deepest features, convolutions of 32 kernels 5x3x3 (5 along S-I) and
  1x1x1 and an in-plane max-pool; each S-I position becomes one step of a 3-layer Bi-LSTM; its final
  states go through one fully connected layer to one presence logit per class.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spinelab.methods.integral.config import IntegralConfig
from spinelab.nets.integral import integral_coordinates
from spinelab.vertebrae import VERTEBRA_CLASSES

GROUPS = 4  # GroupNorm groups, as in the paper
CLASSIFIER_CHANNELS = 32


def _conv(cin: int, cout: int, kernel) -> nn.Sequential:
    """Convolution, GroupNorm (4 groups) and ReLU: the paper's unit."""
    kernel = (kernel,) * 3 if isinstance(kernel, int) else tuple(kernel)
    return nn.Sequential(nn.Conv3d(cin, cout, kernel, padding=tuple(k // 2 for k in kernel), bias=False),
                         nn.GroupNorm(GROUPS, cout), nn.ReLU(inplace=True))


def _up(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="trilinear", align_corners=False)


class ResidualModule(nn.Module):
    """1x1x1 -> 3x3x3 -> 1x1x1 (half width inside) beside an identity or 1x1x1 projection skip."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        middle = max(cout // 2, GROUPS)
        self.branch = nn.Sequential(_conv(cin, middle, 1), _conv(middle, middle, 3), _conv(middle, cout, 1))
        self.skip = nn.Identity() if cin == cout else nn.Sequential(nn.Conv3d(cin, cout, 1, bias=False),
                                                                    nn.GroupNorm(GROUPS, cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.branch(x) + self.skip(x)


class PresenceClassifier(nn.Module):
    """Deepest features (B, C, R, A, S) -> presence logits (B, classes); Bi-LSTM over the S-I steps,
    or with ``bilstm=False`` (the paper's Table II baseline) one fully connected layer on all features."""

    def __init__(self, channels: int, crop: tuple[int, int, int], classes: int, bilstm: bool, hidden: int):
        super().__init__()
        self.features = nn.Sequential(_conv(channels, CLASSIFIER_CHANNELS, (3, 3, 5)),
                                      _conv(CLASSIFIER_CHANNELS, CLASSIFIER_CHANNELS, 1),
                                      nn.MaxPool3d((2, 2, 1)))
        plane = (crop[0] // 16 // 2) * (crop[1] // 16 // 2)  # in-plane positions after the 1/16 encoder and this pool
        steps = crop[2] // 16
        self.lstm = nn.LSTM(CLASSIFIER_CHANNELS * plane, hidden, num_layers=3, batch_first=True,
                            bidirectional=True) if bilstm else None
        self.fc = nn.Linear(2 * hidden if bilstm else CLASSIFIER_CHANNELS * plane * steps, classes)

    def forward(self, deepest: torch.Tensor) -> torch.Tensor:
        x = self.features(deepest)  # (B, 32, R', A', S')
        if self.lstm is None:
            return self.fc(x.flatten(1))
        sequence = x.permute(0, 4, 1, 2, 3).flatten(2)  # (B, S', 32 R' A'): one step per S-I position
        _, (final, _) = self.lstm(sequence)
        return self.fc(torch.cat([final[-2], final[-1]], dim=1))  # last layer, forward and backward


class IntegralNet(nn.Module):
    """Crop (B, 1, R, A, S) -> presence logits (B, K) and centroids (B, K, 3) in input voxels, K = 27
    classes in ``VERTEBRA_CLASSES`` order (C1-C7, T1-T12, T13, L1-L6, sacrum)."""

    def __init__(self, config: IntegralConfig):
        super().__init__()
        stem, full, half, quarter, deep = config.encoder_channels
        d8, d4, d2, d1 = config.decoder_channels
        classes = len(VERTEBRA_CLASSES)
        self.stem = nn.Sequential(nn.Conv3d(1, stem, 3, stride=2, padding=1, bias=False),
                                  nn.GroupNorm(GROUPS, stem), nn.ReLU(inplace=True))
        self.encode_full, self.encode_half = ResidualModule(stem, full), ResidualModule(full, half)
        self.encode_quarter = ResidualModule(half, quarter)
        self.encode_deep = nn.Sequential(ResidualModule(quarter, deep), ResidualModule(deep, deep),
                                         ResidualModule(deep, deep))
        self.skips = nn.ModuleList(nn.Conv3d(cin, cout, 1) for cin, cout in
                                   ((deep, d8), (quarter, d8), (half, d4), (full, d2)))
        self.decode = nn.ModuleList([ResidualModule(deep, d8), ResidualModule(d8, d4), ResidualModule(d4, d2)])
        self.head = nn.Sequential(_conv(d2, d1, 3), nn.Conv3d(d1, classes, 1))
        self.classifier = PresenceClassifier(deep, config.crop, classes, config.bilstm, config.lstm_hidden)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Features at 1/2, 1/4, 1/8 and 1/16 of the input resolution."""
        full = self.encode_full(self.stem(x))
        half = self.encode_half(F.max_pool3d(full, 2))
        quarter = self.encode_quarter(F.max_pool3d(half, 2))
        return [full, half, quarter, self.encode_deep(F.max_pool3d(quarter, 2))]

    def heatmaps(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Localization logits (B, K, R/2, A/2, S/2): the hourglass up from 1/16, adding each skip-out."""
        full, half, quarter, deep = features
        x = self.decode[0](deep) + self.skips[0](deep)
        x = self.decode[1](_up(x) + self.skips[1](quarter))
        x = self.decode[2](_up(x) + self.skips[2](half))
        return self.head(_up(x) + self.skips[3](full))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.encode(x)
        # Heatmap voxel i covers input voxels 2i and 2i + 1: its centre is input voxel 2i + 0.5.
        return self.classifier(features[-1]).float(), 2.0 * integral_coordinates(self.heatmaps(features)) + 0.5
