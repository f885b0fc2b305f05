"""Networks shared by the methods: a ResNet-encoder U-Net for 2D maps and SimSiam pretraining."""

from spinelab.nets.simsiam import SimSiam, simsiam_loss
from spinelab.nets.unet import ResNetEncoder, ResNetUNet

__all__ = ["ResNetEncoder", "ResNetUNet", "SimSiam", "simsiam_loss"]
