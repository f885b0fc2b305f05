"""Every setting of the scnet method in one dataclass, stored inside the model file.

The paper's resolutions are 8 mm (spine), 2 mm (SC-Net) and 1 mm (segmentation), with 64 filters
per layer and 20k / 100k / 50k iterations on a GPU. On 2 CPU cores one training step of the paper's
SC-Net input (96 x 96 x 128 at 2 mm) took 6.4 s even with 8-32 filters, about 500 steps an hour, and
a 128 x 128 x 96 segmentation crop at 1 mm 4.9 s. So each network keeps the paper's extent in mm at
twice the paper's spacing, where a step costs an eighth:
* spine: 8 mm is kept (64 x 64 x 128 voxels, 512 x 512 x 1024 mm);
* SC-Net at 4 mm on 48 x 48 x 64 voxels (the paper's 192 x 192 x 256 mm); adjacent centroids (at
  least about 13 mm apart) still lie 3 or more voxels apart;
* segmentation at 2 mm on 64 x 80 x 48 voxels (the paper's 128 x 128 x 96 mm, with 32 mm more
  along A-P: centred on the body, a lumbar spinous process reaches about 80 mm back), 2 mm being the spacing of the synthetic training CTs (``spinelab synth --spacing 2 2 2``), so 1 mm would add no detail.
Widths: 8 to 32 channels over 5 levels (the paper's 64 everywhere would cost about 8 times more).
"""

from __future__ import annotations

from dataclasses import dataclass

from spinelab.errors import SpinelabError
from spinelab.methods.base import MethodSettings

LEVELS_MULTIPLE = 16  # 4 poolings


@dataclass
class SCNetConfig(MethodSettings):
    hu_scale: float = 2048.0  # CT values are HU / this, clipped to [-1, 1] (the paper's)
    # §2.1 spine localization
    spine_spacing_mm: float = 8.0
    spine_input: tuple[int, int, int] = (64, 64, 128)  # (R, A, S) voxels
    spine_channels: tuple[int, ...] = (8, 16, 16, 16, 16)
    spine_sigma_voxels: float = 3.0  # the paper's sigma_spine: 3 pixels
    spine_min_peak: float = 0.1  # a spine heatmap whose maximum stays below this holds no spine
    spine_foreground_weight: float = 5.0  # the centreline covers about 1 % of the input (see foreground_weight)
    # §2.2 vertebra localization
    spacing_mm: float = 4.0
    crop: tuple[int, int, int] = (48, 48, 64)  # SC-Net input (R, A, S) voxels
    channels: tuple[int, ...] = (8, 16, 32, 32, 32)  # local-appearance U-Net widths per level
    spatial_channels: int = 16  # width of the spatial-configuration 7x7x7 convolutions
    sigma_voxels: float = 1.5  # initial sigma_i of every class's target heatmap (6 mm; learned, eq. 1)
    min_sigma_voxels: float = 0.75  # sigma_i cannot shrink below this
    # alpha of eq. 1 per voxel^2. The paper's 100 goes with its heatmap scale; ours have peak 1, and one
    # class's weighted squared error over a crop falls from about 500 (no blob) to a few when fitted, so
    # alpha x sigma^2 = 2.25 at the start weighs like a fitted blob's error.
    sigma_alpha: float = 1.0
    # Squared errors are weighted 1 + this x target (as in di2in): with equal weights a short training
    # sits at the all-zero output, since a blob is about 1 in 10,000 of a crop's voxels.
    foreground_weight: float = 50.0
    window_overlap_mm: float = 96 * 2.0  # z windows overlap as much as the paper's 96 pixels at 2 mm
    peak_threshold: float = 0.3  # local maxima below this are no candidate (benchmarks/scnet_settings.py)
    candidates_per_class: int = 4  # the strongest local maxima of each heatmap that are candidates
    min_distance_mm: float = 12.5  # consecutive vertebrae at least this far apart (the paper's rule)
    max_distance_mm: float = 50.0  # and at most this far
    # §2.3 vertebra segmentation
    segment_spacing_mm: float = 2.0
    segment_crop: tuple[int, int, int] = (64, 80, 48)  # 128 x 160 x 96 mm: A-P room for the spinous process
    segment_channels: tuple[int, ...] = (8, 16, 32, 32, 32)
    segment_sigma_mm: float = 6.0  # the guiding heatmap channel around the vertebra's centroid

    def __post_init__(self):
        for name in ("spine_input", "spine_channels", "crop", "channels", "segment_crop", "segment_channels"):
            setattr(self, name, tuple(getattr(self, name)))
        for name in ("spine_input", "crop", "segment_crop"):
            if any(n % LEVELS_MULTIPLE for n in getattr(self, name)):
                raise SpinelabError(f"scnet {name} {getattr(self, name)} must be a multiple of {LEVELS_MULTIPLE} "
                                    f"on every axis (4 poolings)")
        if self.crop[2] * self.spacing_mm <= self.window_overlap_mm:
            raise SpinelabError(f"scnet: windows of {self.crop[2] * self.spacing_mm:g} mm cannot overlap by "
                                f"{self.window_overlap_mm:g} mm")
