"""2D U-Net with a ResNet encoder (MONAI building blocks), sized by depth and a width factor.

There are no ImageNet weights here, so the encoder is pretrained by ourselves (SimSiam on DRRs)
and copied into the localization and identification U-Nets. ``width`` scales every ResNet stage:
ResNet-18 at width 0.5 is the CPU default (about 2.8 M encoder parameters), depth 50 at width 1
is the paper's configuration.
"""

from __future__ import annotations

import torch
from monai.networks.nets.flexible_unet import SegmentationHead, UNetDecoder
from monai.networks.nets.resnet import ResNet, ResNetFeatures, resnet_params
from torch import nn

STAGE_CHANNELS = (64, 64, 128, 256, 512)


class ResNetEncoder(ResNetFeatures):
    """ResNet returning the five feature maps a U-Net decoder needs (strides 2, 4, 8, 16, 32)."""

    def __init__(self, depth: int = 18, width: float = 0.5, in_channels: int = 1):
        block, layers, shortcut_type, bias_downsample, _ = resnet_params[f"resnet{depth}"]
        ResNet.__init__(
            self, block=block, layers=layers, block_inplanes=[64, 128, 256, 512], spatial_dims=2,
            n_input_channels=in_channels, conv1_t_stride=2, shortcut_type=shortcut_type,
            widen_factor=width, feed_forward=False, bias_downsample=bias_downsample)
        # Bottleneck stages output 4x their planes: read the real widths off the layers.
        self.channels = (self.conv1.out_channels,
                         *(_stage_out(getattr(self, f"layer{i}")) for i in range(1, 5)))


def _stage_out(stage: nn.Sequential) -> int:
    last = stage[-1]
    return (last.conv3 if hasattr(last, "conv3") else last.conv2).out_channels


class ResNetUNet(nn.Module):
    """U-Net: ResNet encoder, MONAI U-Net decoder, a 3x3 conv head at full resolution."""

    def __init__(self, out_channels: int, depth: int = 18, width: float = 0.5,
                 decoder_channels: tuple[int, ...] = (128, 64, 48, 32, 16), in_channels: int = 1):
        super().__init__()
        self.config = dict(out_channels=out_channels, depth=depth, width=width,
                           decoder_channels=tuple(decoder_channels), in_channels=in_channels)
        self.encoder = ResNetEncoder(depth, width, in_channels)
        self.decoder = UNetDecoder(
            spatial_dims=2, encoder_channels=(in_channels, *self.encoder.channels),
            decoder_channels=decoder_channels, act=("relu", {"inplace": True}), norm=("batch", {}),
            dropout=0.0, bias=False, upsample="nontrainable", pre_conv=None, interp_mode="nearest",
            align_corners=None, is_pad=True)
        self.head = SegmentationHead(spatial_dims=2, in_channels=decoder_channels[-1], out_channels=out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.decoder(self.encoder(x), 4))
