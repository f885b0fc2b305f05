"""Networks shared by the methods: a ResNet-encoder U-Net for 2D maps."""

from spinelab.nets.unet import ResNetEncoder, ResNetUNet

__all__ = ["ResNetEncoder", "ResNetUNet"]
