"""From a canonical CT to the K normalized DRRs the networks see, with their exact view geometry.

The detector keeps a fixed pixel size at the isocentre (``pixel_mm``), so a vertebra has the same
size in pixels in every scan and the networks need not learn scale; only volumes taller than the
detector covers get a larger pixel size. The detector is tall and narrow because the spine is.
"""

from __future__ import annotations

import numpy as np

from spinelab.bone import BoneStage
from spinelab.io.volume import CTVolume
from spinelab.methods.multiview.config import MultiViewConfig
from spinelab.methods.multiview.projection import SUPERIOR, ConeBeamView, circular_views, views_for_volume
from spinelab.methods.multiview.render import normalize_drr, render_drr_torch, render_views


def rendering_volume(ct: CTVolume, config: MultiViewConfig, bone: BoneStage | None = None) -> CTVolume:
    """Block-average to about ``volume_spacing`` mm and keep only bone for the DRRs.

    2 mm voxels cost a fraction of full resolution. Shifting HU so that only the part above
    ``bone_threshold_hu`` attenuates turns the DRR into a bone radiograph: soft tissue, fat and
    lungs vanish. Contrast agent above the cut (a venous bolus reaches 3071 HU) would stay, so with
    a ``bone`` stage only the voxels it calls bone attenuate.
    """
    volume = ct.block_averaged(config.volume_spacing)
    if bone is not None:  # what is not bone drops to the cut, so it does not attenuate
        volume = bone.without_contrast(volume, soft_tissue_hu=config.bone_threshold_hu,
                                       bright_hu=config.bone_threshold_hu)
    attenuating = np.maximum(volume.array.astype(np.float32) - config.bone_threshold_hu, 0.0)
    return volume.with_array(attenuating - 1000.0)


def make_views(volume: CTVolume, config: MultiViewConfig, k: int | None = None, start_angle: float = 0.0,
               center_shift=None) -> list[ConeBeamView]:
    """K views around the volume centre (plus ``center_shift`` mm), at ``pixel_mm`` unless the volume needs more."""
    shape = (config.detector_rows, config.detector_cols)
    k = config.views if k is None else k
    common = dict(k=k, source_to_isocenter=config.source_to_isocenter,
                  source_to_detector=config.source_to_detector, detector_shape=shape, start_angle=start_angle)
    fitted = views_for_volume(volume, content_radius_mm=config.content_radius_mm, **common)[0]
    magnification = config.source_to_detector / config.source_to_isocenter
    pixel_size = max(config.pixel_mm * magnification, fitted.pixel_size)
    center = fitted.isocenter + (0.0 if center_shift is None else np.asarray(center_shift, dtype=np.float64))
    return circular_views(center, SUPERIOR, pixel_size=pixel_size, **common)


def render_normalized(volume: CTVolume, views, device: str = "cpu") -> np.ndarray:
    """(K, H, W) float32 network inputs in [0, 1]; rendered with torch on a GPU, numba on the CPU."""
    if device == "cpu":
        images = render_views(volume, views)
    else:
        images = render_drr_torch(volume, views, device).cpu().numpy()
    return np.stack([normalize_drr(image) for image in images])
