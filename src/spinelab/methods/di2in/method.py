"""Inference of the di2in method: CT -> 4 mm z-scored volume -> DI2IN heatmaps over the whole volume
(training-sized patches, Gaussian-blended) -> message passing along the chain -> one peak per class
-> present classes -> sparsity refinement -> world centroids.

A class is present when its peak reaches ``presence_threshold`` (chosen on synthetic validation
scans). The peak's position is refined to sub-voxel accuracy by the mean of its 3 x 3 x 3
neighbourhood weighted by the response. Two classes whose peaks lie within ``separation_mm`` are one
vertebra: the stronger keeps it. Each centroid's confidence is the (passed) response at its final
position, so a coordinate the sparsity step moved or restored where the network saw nothing is
doubtful.
"""

from __future__ import annotations

import numpy as np

from spinelab.inference import pad_to, sliding_window
from spinelab.io.centroids import Centroids
from spinelab.io.volume import CTVolume
from spinelab.io.working import WorkingVolume, zscored_volume
from spinelab.methods.base import Method, Prediction, StageTimer
from spinelab.methods.di2in.config import DI2INConfig
from spinelab.methods.di2in.message_passing import Chain, pass_messages
from spinelab.methods.di2in.network import DI2IN
from spinelab.methods.di2in.sparsity import refine
from spinelab.methods.di2in.train import MODEL_VERSION
from spinelab.training import ModelFile
from spinelab.vertebrae import VERTEBRA_CLASSES

PATCH_OVERLAP = 0.25
PATIENT_HU = -500.0  # voxels denser than this are the patient
PATIENT_MARGIN = 2  # voxels of air kept around the patient's box


class DI2INMethod(Method):
    name = "di2in"
    model_version = MODEL_VERSION

    def __init__(self, network: DI2IN, config: DI2INConfig, chain: Chain, atoms: np.ndarray, device: str = "cpu"):
        self.network = network.to(device).eval()
        self.config, self.chain, self.atoms, self.device = config, chain, atoms, device

    @classmethod
    def from_model_file(cls, model: ModelFile, device: str) -> DI2INMethod:
        config = DI2INConfig.from_dict(model.config)
        network = model.load_into("network", DI2IN(config))
        atoms = model.networks["dictionary"]["atoms"].double().numpy()
        return cls(network, config, Chain.from_state(model.networks["chain"]), atoms, device)

    def heatmaps(self, ct: CTVolume, timer: StageTimer) -> tuple[WorkingVolume, np.ndarray]:
        """The working volume of a canonical CT and DI2IN's heatmaps on it, (classes, R, A, S): the
        network runs on the box holding the patient (air around it gets no response)."""
        with timer("resample"):
            working = zscored_volume(ct, self.config.spacing_mm)
        array = working.volume.array
        maps = np.zeros((len(VERTEBRA_CLASSES), *array.shape), dtype=np.float32)
        patient = np.argwhere(array > working.value(PATIENT_HU))
        if not len(patient):
            return working, maps
        box = tuple(slice(max(a - PATIENT_MARGIN, 0), b + PATIENT_MARGIN + 1)
                    for a, b in zip(patient.min(axis=0), patient.max(axis=0)))
        padded, original = pad_to(array[box], self.config.crop, working.value(-1000.0))
        with timer("network"):
            found = sliding_window(self.network, padded, self.config.crop, PATCH_OVERLAP, self.device, batch_size=4)
        maps[(slice(None), *box)] = np.maximum(found[(slice(None), *original)], 0.0)
        return working, maps

    def decode(self, working: WorkingVolume, maps: np.ndarray, message_passing: bool | None = None,
               sparsity: bool | None = None, threshold: float | None = None, timer: StageTimer | None = None
               ) -> Prediction:
        """Centroids from the network's heatmaps; the options default to the config's (the ablation rows
        switch the two later stages off)."""
        config, timer = self.config, timer or StageTimer()
        message_passing = config.message_passing if message_passing is None else message_passing
        sparsity = config.sparsity if sparsity is None else sparsity
        threshold = config.presence_threshold if threshold is None else threshold
        blob = config.sigma_mm / config.spacing_mm
        if message_passing:
            with timer("message passing"):
                maps = pass_messages(maps, self.chain, config.spacing_mm, config.alpha, config.passes, blob, threshold)
        volume, details = working.volume, {}
        peaks = [channel_peak(channel) for channel in maps]
        found = [(k, value, voxel) for k, (value, voxel) in enumerate(peaks) if value >= threshold]
        found = separate(found, config.separation_mm / config.spacing_mm)
        if not found:
            details["no_spine"] = "no spine: no heatmap reached the presence threshold"
            return Prediction(Centroids.empty(), details=details)
        classes = np.array([k for k, _, _ in found])
        world = volume.to_world(np.array([voxel for _, _, voxel in found]))
        if sparsity:
            with timer("sparsity"):
                classes, world, notes = refine(classes, world, self.atoms, config.sparsity_lambda,
                                               config.min_landmarks, config.replace_consistent)
            details.update(notes)
        voxels = np.clip(np.round(volume.to_voxel(world)).astype(int), 0, np.array(maps.shape[1:]) - 1)
        confidence = np.clip(maps[classes, voxels[:, 0], voxels[:, 1], voxels[:, 2]], 0.0, 1.0)
        labels = np.array([VERTEBRA_CLASSES[k] for k in classes])
        return Prediction(Centroids(labels, world, confidence).sorted(), details=details)

    def predict_canonical(self, ct: CTVolume, timer: StageTimer) -> Prediction:
        working, maps = self.heatmaps(ct, timer)
        return self.decode(working, maps, timer=timer)


def channel_peak(channel: np.ndarray) -> tuple[float, np.ndarray]:
    """The maximum of one heatmap and its position (voxels), refined by the response-weighted mean of
    the 3 x 3 x 3 neighbourhood."""
    index = np.array(np.unravel_index(int(np.argmax(channel)), channel.shape))
    low, high = np.maximum(index - 1, 0), np.minimum(index + 2, channel.shape)
    patch = channel[tuple(slice(a, b) for a, b in zip(low, high))]
    if patch.sum() <= 0:
        return float(channel.max()), index.astype(float)
    grids = np.meshgrid(*[np.arange(a, b) for a, b in zip(low, high)], indexing="ij")
    position = np.array([(grid * patch).sum() for grid in grids]) / patch.sum()
    return float(channel[tuple(index)]), position


def separate(found: list, distance: float) -> list:
    """Drop the weaker of two peaks closer than ``distance`` voxels: one vertebra cannot be two."""
    kept = []
    for peak in sorted(found, key=lambda p: -p[1]):
        if all(np.linalg.norm(peak[2] - other[2]) > distance for other in kept):
            kept.append(peak)
    return sorted(kept, key=lambda p: p[0])
