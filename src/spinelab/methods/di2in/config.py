"""Every setting of the di2in method in one dataclass, stored inside the model file.

The paper gives no working resolution. Ours is 4 mm isotropic: a 512 x 512 x 400 CT becomes about
90 x 90 x 100 voxels, and adjacent centroids (at least ~13 mm apart) still fall 3 or more voxels
apart. Training crops (and inference patches) of 32 x 32 x 96 voxels (128 x 128 x 384 mm) hold the
vertebral bodies with their pedicles and about ten vertebrae of context along S-I; a training step of
4 such crops took 1.1 s against 3.2 s at 48 x 48 x 96 on the 2-core machine that chose the size (1.5 s
on the AVX2-only machine that trained the packaged model, in float32). Widths: 8 channels at full
resolution, 96 deepest.
"""

from __future__ import annotations

from dataclasses import dataclass

from spinelab.errors import SpinelabError
from spinelab.methods.base import MethodSettings


@dataclass
class DI2INConfig(MethodSettings):
    spacing_mm: float = 4.0  # the CT is resampled to this isotropic spacing
    crop: tuple[int, int, int] = (32, 32, 96)  # training crop and inference patch (R, A, S) voxels
    channels: tuple[int, ...] = (8, 16, 32, 64, 96)  # encoder widths at 1, 1/2, 1/4, 1/8, 1/16
    supervised_levels: int = 3  # deep-supervision branches from the decoder's finest levels (1/4, 1/2, 1)
    sigma_mm: float = 6.0  # standard deviation of each target Gaussian (peak 1)
    # The paper's plain L2 weighs each voxel alike; a blob is about 1 in 17,000 of a crop's voxel-channels
    # and with equal weights the network sat at the all-zero output for 200 steps (peaks 0.00-0.04). Each
    # voxel's squared error is weighted 1 + this x its target.
    foreground_weight: float = 100.0
    # Message passing (eq. 1-2): ``passes`` iterations with discount ``alpha``; each neighbour's
    # kernel is the Gaussian of the ground-truth offsets between the two vertebrae.
    alpha: float = 0.5
    passes: int = 5
    presence_threshold: float = 0.5  # a class is present when its (passed) response peak reaches this
    separation_mm: float = 10.0  # two classes' peaks closer than this are one vertebra (the stronger keeps it)
    # Sparsity refinement (Algorithm 1): lambda of the l1 term (scikit-learn's Lasso ``alpha``: the
    # squared error is averaged over the fitted landmarks) and at least ``min_landmarks`` in the subset.
    sparsity_lambda: float = 1.0
    min_landmarks: int = 4
    replace_consistent: bool = True  # the paper's: every landmark is reconstructed (False: only the outliers)
    message_passing: bool = True
    sparsity: bool = True

    def __post_init__(self):
        for name in ("crop", "channels"):
            setattr(self, name, tuple(getattr(self, name)))
        levels = len(self.channels)
        if levels < 2 or any(n % 2 ** (levels - 1) for n in self.crop):
            raise SpinelabError(f"di2in crop {self.crop} must be a multiple of {2 ** (levels - 1)} on every axis "
                                f"({levels - 1} max-pools)")
        if not 1 <= self.supervised_levels <= levels:
            raise SpinelabError(f"di2in supervised_levels must be 1..{levels}, got {self.supervised_levels}")
        if not 0 < self.alpha < 1:
            raise SpinelabError(f"di2in alpha must lie in (0, 1) (the paper's discount), got {self.alpha}")
