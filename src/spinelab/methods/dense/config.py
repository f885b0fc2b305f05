"""Every setting of the dense method in one dataclass, stored inside the model file.

The paper works at 1 mm; on 2 CPU cores we work at 2 mm and halve the slab sizes in voxels, so
each slab covers the paper's millimetres: 4 sagittal slices x 40 (A-P) x 160 (S-I) pixels (8 mm x 80 mm
x 320 mm). Detection patches are 48 x 48 x 64 voxels (96 x 96 x 128 mm, more context than the paper's
64 x 64 x 80 mm), the same size in training and at inference, where an 8 x 8 x 10 border of each
patch output is discarded. A first model trained on 32 x 32 x 40 patches called 20 % of a held-out
volume vertebral body (Dice 0.27), and 0.18 when run on larger inference patches: a network that only
ever saw small patches leans on their zero-padded faces.
"""

from __future__ import annotations

from dataclasses import dataclass

from spinelab.errors import SpinelabError
from spinelab.methods.base import MethodSettings


@dataclass
class DenseConfig(MethodSettings):
    spacing_mm: float = 2.0  # the CT is resampled to this isotropic spacing
    hu_window: tuple[float, float] = (-300.0, 1700.0)  # HU mapped to [0, 1], clipped outside
    detection_patch: tuple[int, int, int] = (48, 48, 64)  # training and inference
    detection_border: tuple[int, int, int] = (8, 8, 10)  # discarded from each patch output at inference
    detection_channels: tuple[int, ...] = (16, 32, 64, 128)  # 3D U-Net widths, three stride-2 stages
    background_weight: float = 0.1  # weighted cross-entropy: background 0.1, vertebral body 0.9
    detection_threshold: float = 0.5  # a voxel is vertebral body where its probability reaches this
    # The dense labels of a spine form one tube, so a connected piece of the body mask is kept only
    # when it has at least this share of the largest piece's voxels (0 keeps every piece).
    component_share: float = 0.0
    slab: tuple[int, int, int] = (4, 40, 160)  # sagittal slices (channels) x A-P x S-I pixels
    identification_channels: tuple[int, ...] = (16, 32, 64, 128)
    bottom_kernel: tuple[int, int] = (5, 20)  # large anisotropic kernels at the lowest level
    elastic_sigma: float = 0.7  # pixels: random displacements on a 3 x 3 grid (the paper's elasticdeform)
    min_voxels_mm3: float = 3000.0  # a label needs max(this, 0.4 R^3) mm^3 of voxels (the paper's 3000 voxels at 1 mm)
    disc_radius_scale: float = 1.0  # dense labels: disc radius as a share of the level's half body depth
    # a T13 or L6 closer to another vertebra than this x their mean body height is the band the
    # regression crosses between T12 and L1 (L5 and the sacrum), not a vertebra (0: kept, as in the paper)
    transitional_separation: float = 0.0

    def __post_init__(self):
        for name in ("detection_patch", "detection_border", "slab", "bottom_kernel", "detection_channels",
                     "identification_channels", "hu_window"):
            setattr(self, name, tuple(getattr(self, name)))
        if any(p - 2 * b < 1 for p, b in zip(self.detection_patch, self.detection_border)):
            raise SpinelabError(f"detection border {self.detection_border} leaves nothing of patch {self.detection_patch}")
        multiple = 2 ** (len(self.detection_channels) - 1)
        if any(n % multiple for n in self.detection_patch):
            raise SpinelabError(f"detection patch {self.detection_patch} must be a multiple of {multiple} on every axis")
        multiple = 2 ** (len(self.identification_channels) - 1)
        if self.slab[1] % multiple or self.slab[2] % multiple:
            raise SpinelabError(f"identification slab {self.slab[1:]} must be a multiple of {multiple} in-plane")
