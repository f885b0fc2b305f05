"""Every setting of the integral method in one dataclass, stored inside the model file.

The paper's crop is 104 (S-I) x 80 (A-P) x 80 (L-R) voxels at 2 mm. Ours is 112 x 80 x 80, in
spinelab's canonical (R, A, S) axis order (80, 80, 112): the stride-2 stem and 3 max-pools need a
multiple of 16. Widths are chosen for 2 CPU cores: 16-32 channels at half resolution, 128 deepest.
"""

from __future__ import annotations

from dataclasses import dataclass

from spinelab.errors import SpinelabError
from spinelab.methods.base import MethodSettings


@dataclass
class IntegralConfig(MethodSettings):
    spacing_mm: float = 2.0  # the CT is resampled to this isotropic spacing (the paper's)
    crop: tuple[int, int, int] = (80, 80, 112)  # (R, A, S) voxels
    encoder_channels: tuple[int, ...] = (16, 32, 64, 96, 128)  # stem, then one width per scale (1/2 ... 1/16)
    decoder_channels: tuple[int, int, int, int] = (64, 48, 32, 32)  # localization at 1/16, 1/8, 1/4, 1/2
    bilstm: bool = True  # the classification branch's three Bi-LSTM layers (False: flatten + FC, Table II)
    lstm_hidden: int = 128
    balance: float = 3.0  # B of eq. 1: the weight of the present classes in the BCE (2-4 in the paper)
    coordinate_weight: float = 0.4  # lambda of eq. 2
    # Inference: crops step by ``crop - 2 * border`` and a crop's coordinate counts only when it lies
    # in the crop's centre (the border around it may cut the vertebra).
    border: tuple[int, int, int] = (8, 8, 12)
    presence_threshold: float = 0.5  # a crop reports a class whose presence probability reaches this
    cluster_radius_mm: float = 8.0  # a class's crop coordinates within this of each other form one cluster
    separation_mm: float = 8.0  # two classes' clusters closer than this are one vertebra (the heavier keeps it)
    decoder: bool = False  # relabel the clusters with the shared consecutive-label decoder

    def __post_init__(self):
        for name in ("crop", "encoder_channels", "decoder_channels", "border"):
            setattr(self, name, tuple(getattr(self, name)))
        if len(self.encoder_channels) != 5 or len(self.decoder_channels) != 4:
            raise SpinelabError("integral: encoder_channels needs 5 widths (stem + 4 scales), decoder_channels 4")
        if any(n % 16 or n < 32 for n in self.crop):
            raise SpinelabError(f"integral crop {self.crop} must be a multiple of 16, at least 32, on every axis "
                                "(a stride-2 stem, 3 max-pools and the classifier's in-plane pool)")
        if any(c - 2 * b < 8 for c, b in zip(self.crop, self.border)):
            raise SpinelabError(f"integral border {self.border} leaves too little of crop {self.crop}")
