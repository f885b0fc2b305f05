"""The z-scored working volume and the cached training case of the methods that read raw CT values.

Following Qin et al. (and used the same way by ``di2in``): the canonical CT is resampled to an
isotropic spacing, HU are clipped below -1000 and the scan is z-score normalized. The mean and
standard deviation are taken over the patient's voxels (denser than -500 HU), not the whole box, so a
tight field of view and one full of air give bone the same values. A training case keeps that volume
cropped in-plane to the labelled spine and a margin, with each vertebra's class and voxel position.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spinelab.io.centroids import Centroids
from spinelab.io.volume import CTVolume
from spinelab.vertebrae import VERTEBRA_CLASSES, class_index

PATIENT_HU = -500.0


@dataclass
class WorkingVolume:
    volume: CTVolume  # canonical, at the working spacing, z-scored (float32)
    mean: float  # HU = value * std + mean
    std: float

    def value(self, hu: float) -> float:
        """The normalized value of ``hu``: air (-1000) pads crops that leave the volume."""
        return (hu - self.mean) / self.std


def zscored_volume(ct: CTVolume, spacing_mm: float) -> WorkingVolume:
    """The canonical CT at ``spacing_mm``, HU clipped below -1000 and z-scored over the patient's voxels."""
    resampled = ct.canonical().resampled(spacing_mm, order=1, cval=-1000.0)
    hu = np.maximum(resampled.array, -1000.0).astype(np.float32)
    patient = hu[hu > PATIENT_HU]
    if patient.size < 100:
        patient = hu
    mean, std = float(patient.mean()), max(float(patient.std()), 1.0)
    return WorkingVolume(resampled.with_array((hu - mean) / std), mean, std)


def scaled_volume(ct: CTVolume, spacing_mm: float, hu_scale: float) -> WorkingVolume:
    """The canonical CT at ``spacing_mm``, HU divided by ``hu_scale`` and clipped to [-1, 1] (Payer et al.'s
    normalization, with 2048)."""
    resampled = ct.canonical().resampled(spacing_mm, order=1, cval=-1000.0)
    return WorkingVolume(resampled.with_array(np.clip(resampled.array / hu_scale, -1.0, 1.0).astype(np.float32)),
                         0.0, hu_scale)


def spine_case(ct: CTVolume, centroids: Centroids, spacing_mm: float, margin_mm: float,
               label_map: CTVolume | None = None, hu_scale: float | None = None) -> dict[str, np.ndarray]:
    """Z-scored volume (float16; with ``hu_scale``, ``scaled_volume`` instead) cropped in-plane to the labelled
    spine and ``margin_mm``, with the air value, the class index (0-based, ``VERTEBRA_CLASSES`` order) and
    voxel position of every vertebra; with ``label_map`` (VerSe numbers on the CT's grid) also ``labels``,
    the map on the same voxels."""
    working = zscored_volume(ct, spacing_mm) if hu_scale is None else scaled_volume(ct, spacing_mm, hu_scale)
    volume = working.volume
    known = centroids.select(VERTEBRA_CLASSES)
    voxels = known.to_voxel(volume.affine)
    box = [slice(None)] * 3
    if len(known):
        margin = margin_mm / spacing_mm
        for axis in (0, 1):
            low = max(int(np.floor(voxels[:, axis].min() - margin)), 0)
            box[axis] = slice(low, int(np.ceil(voxels[:, axis].max() + margin)) + 1)
            voxels[:, axis] -= low
    case = {"image": volume.array[tuple(box)].astype(np.float16), "air": np.float32(working.value(-1000.0)),
            "classes": np.array([class_index(label) - 1 for label in known.labels], dtype=np.int64).reshape(-1),
            "points": voxels.reshape(-1, 3).astype(np.float32)}
    if label_map is not None:
        labels = label_map.resampled_onto(volume, order=0, cval=0).array
        case["labels"] = labels[tuple(box)].astype(np.uint8)
    return case
