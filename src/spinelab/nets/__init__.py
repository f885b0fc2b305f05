"""Networks shared by the methods: a ResNet-encoder U-Net for 2D maps and a slab U-Net for stacks of slices."""

from spinelab.nets.slab_unet import SlabUNet
from spinelab.nets.unet import ResNetEncoder, ResNetUNet

__all__ = ["ResNetEncoder", "ResNetUNet", "SlabUNet"]
