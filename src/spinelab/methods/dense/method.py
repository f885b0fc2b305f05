"""Inference of the dense method: CT -> 2 mm volume -> vertebral-body mask (3D, patch-wise) x
continuous vertebra numbers (2D, whole sagittal slices) -> one median centroid per label."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from spinelab.devices import autocast
from spinelab.inference import sliding_window
from spinelab.io.volume import CTVolume
from spinelab.methods.base import Method, Prediction, StageTimer
from spinelab.methods.dense.config import DenseConfig
from spinelab.methods.dense.data import working_volume
from spinelab.methods.dense.labels import dense_to_sparse, distinct_transitional
from spinelab.methods.dense.train import MODEL_VERSION, detection_network, identification_network
from spinelab.training import ModelFile

SLICES_PER_BATCH = 16
#: HU above which a voxel belongs to the patient (denser than fat) when the detection box is drawn.
BODY_HU = -100.0


@dataclass
class DenseMaps:
    volume: CTVolume  # the working volume (canonical, config spacing, HU windowed to [0, 1])
    probability: np.ndarray  # vertebral-body probability per voxel
    body: np.ndarray  # the body mask the numbers were computed for (slices holding any of it)
    numbers: np.ndarray  # regressed continuous vertebra number per voxel (0 where not computed)


class DenseMethod(Method):
    name = "dense"
    model_version = MODEL_VERSION

    def __init__(self, detection: torch.nn.Module, identification: torch.nn.Module, config: DenseConfig,
                 device: str = "cpu"):
        self.detection = detection.to(device).eval()
        self.identification = identification.to(device).eval()
        self.config, self.device = config, device

    @classmethod
    def from_model_file(cls, model: ModelFile, device: str) -> DenseMethod:
        config = DenseConfig.from_dict(model.config)
        return cls(model.load_into("detection", detection_network(config)),
                   model.load_into("identification", identification_network(config)), config, device)

    def body_probability(self, volume: np.ndarray) -> np.ndarray:
        """Vertebral-body probability per voxel, patch-wise with each patch's outer border discarded.

        Only the box holding the patient (anything denser than fat) is run: the air around a body
        cannot hold a vertebra and would cost most of the patches."""
        probability = np.zeros(volume.shape, dtype=np.float32)
        low, high = self.config.hu_window
        patient = volume > (BODY_HU - low) / (high - low)
        spans = [np.flatnonzero(patient.any(axis=tuple(a for a in range(3) if a != axis))) for axis in range(3)]
        if not len(spans[0]):
            return probability
        box = tuple(slice(span[0], span[-1] + 1) for span in spans)
        logits = sliding_window(self.detection, volume[box], self.config.detection_patch, device=self.device,
                                batch_size=4, border=self.config.detection_border)
        probability[box] = torch.from_numpy(logits).softmax(dim=0)[1].numpy()
        return probability

    @torch.inference_mode()
    def vertebra_numbers(self, volume: np.ndarray, body: np.ndarray) -> np.ndarray:
        """The regressed vertebra number of every voxel in sagittal slices that hold body voxels; the
        network runs fully convolutionally on whole slices padded to its multiple."""
        slices = self.config.slab[0]
        multiple = self.identification.multiple
        numbers = np.zeros(volume.shape, dtype=np.float32)
        rows, cols = volume.shape[1:]
        padded = np.pad(volume, ((slices // 2, slices - slices // 2), (0, -rows % multiple), (0, -cols % multiple)))
        wanted = np.flatnonzero(body.any(axis=(1, 2)))
        for start in range(0, len(wanted), SLICES_PER_BATCH):
            chunk = wanted[start:start + SLICES_PER_BATCH]
            slabs = torch.from_numpy(np.stack([padded[x:x + slices] for x in chunk])).to(self.device)
            with autocast(self.device):
                output = self.identification(slabs).float()
            numbers[chunk] = output[:, 0, :rows, :cols].cpu().numpy()
        return numbers

    def dense_maps(self, ct: CTVolume, timer: StageTimer, threshold: float | None = None,
                   component_share: float | None = None) -> DenseMaps:
        """The working volume, body probability, body mask and regressed numbers of a canonical CT. The
        mask uses ``threshold`` and ``component_share`` (default: the config's) and the numbers are
        computed on the slices it holds, so stricter masks can be applied to the same maps."""
        config = self.config
        with timer("resample"):
            volume = working_volume(ct, config)
        with timer("detection"):
            probability = self.body_probability(volume.array)
            body = spine_pieces(probability >= (config.detection_threshold if threshold is None else threshold),
                                config.component_share if component_share is None else component_share)
        with timer("identification"):
            numbers = self.vertebra_numbers(volume.array, body)
        return DenseMaps(volume, probability, body, numbers)

    def centroids(self, maps: DenseMaps, body: np.ndarray) -> Prediction:
        """Body mask x rounded numbers -> one median centroid per label (world mm)."""
        config = self.config
        centroids, details = dense_to_sparse(body, maps.numbers, maps.volume.affine, config.spacing_mm,
                                             config.min_voxels_mm3, config.disc_radius_scale)
        centroids, details["transitional_dropped"] = distinct_transitional(centroids, config.transitional_separation)
        details.update(body_voxels=int(body.sum()))
        if not len(centroids):
            details["no_spine"] = ("no spine: no vertebra label reached its voxel count"
                                   if body.any() else "no spine: the detection network found no vertebral body")
        return Prediction(centroids, details=details)

    def predict_canonical(self, ct: CTVolume, timer: StageTimer) -> Prediction:
        maps = self.dense_maps(ct, timer)
        with timer("centroids"):
            return self.centroids(maps, maps.body)


def spine_pieces(body: np.ndarray, share: float) -> np.ndarray:
    """``body`` without the connected pieces (26-connectivity) smaller than ``share`` x the largest."""
    if share <= 0 or not body.any():
        return body
    pieces, _ = ndimage.label(body, structure=np.ones((3, 3, 3)))
    sizes = np.bincount(pieces.ravel())
    sizes[0] = 0
    return (sizes >= share * sizes.max())[pieces]
