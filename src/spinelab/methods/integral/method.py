"""Inference of the integral method: CT -> 2 mm z-scored volume -> overlapping crops over the patient
-> per crop and class a presence probability and an integral-regression centroid -> the coordinates
of each class clustered across crops -> world centroids.

Crops are placed in two passes: a search whose crop centres partition the patient's box, then crops
along the spine the search found, centred on it in-plane and stepping by half a centre along S-I (the
paper's crops along the spine). A crop's coordinate counts only inside the crop's centre
(``config.border`` voxels in from each face, where the vertebra may be cut).
Instead of the paper's K-means (whose K it does not give) each class keeps its densest cluster: the
crops' coordinates within ``cluster_radius_mm`` of the most probable one, weighted by presence. Two
classes left within ``separation_mm`` of each other are one vertebra: the heavier cluster keeps it. With
``config.decoder`` the clusters are relabelled as one consecutive run by the shared decoder.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from spinelab.decoders import consecutive_labels
from spinelab.devices import autocast
from spinelab.inference import window
from spinelab.io.centroids import Centroids
from spinelab.io.volume import CTVolume
from spinelab.io.working import WorkingVolume, zscored_volume
from spinelab.methods.base import Method, Prediction, StageTimer
from spinelab.methods.integral.config import IntegralConfig
from spinelab.methods.integral.network import IntegralNet
from spinelab.methods.integral.train import MODEL_VERSION
from spinelab.training import ModelFile
from spinelab.vertebrae import VERTEBRA_CLASSES

CROPS_PER_BATCH = 4
#: Presence a search crop's vote needs to place crops along the spine (fixed, so that choosing
#: ``presence_threshold`` on validation does not move the crops the votes come from).
SPINE_PRESENCE = 0.5
#: HU above which a voxel belongs to the patient (denser than fat); crops cover the box holding them.
BODY_HU = -100.0


@dataclass
class CropVotes:
    """What every crop said: presence probability (N, K), world centroid (N, K, 3), and whether that
    centroid lies in the crop's centre (N, K)."""

    probability: np.ndarray
    world: np.ndarray
    central: np.ndarray


def tile_starts(low: int, high: int, crop: int, border: int, step: int) -> list[int]:
    """Starts of crops whose centres (``border`` in from each end) cover [low, high), ``step`` apart.
    A span no longer than a centre gets one crop centred on it."""
    centre = crop - 2 * border
    if high - low <= centre:
        return [(low + high) // 2 - crop // 2]
    return list(range(low - border, high - border - centre + step, step))


def concatenate(*parts: CropVotes) -> CropVotes:
    return CropVotes(*(np.concatenate([getattr(part, name) for part in parts])
                       for name in ("probability", "world", "central")))


class IntegralMethod(Method):
    name = "integral"
    model_version = MODEL_VERSION

    def __init__(self, network: IntegralNet, config: IntegralConfig, device: str = "cpu"):
        self.network = network.to(device).eval()
        self.config, self.device = config, device

    @classmethod
    def from_model_file(cls, model: ModelFile, device: str) -> IntegralMethod:
        config = IntegralConfig.from_dict(model.config)
        return cls(model.load_into("network", IntegralNet(config)), config, device)

    @torch.inference_mode()
    def crop_votes(self, ct: CTVolume, timer: StageTimer) -> CropVotes:
        """Run the network on the search crops over the patient's box of a canonical CT, then on crops
        along the spine they found."""
        config = self.config
        with timer("resample"):
            working = zscored_volume(ct, config.spacing_mm)
        patient = working.volume.array > working.value(BODY_HU)
        spans = [np.flatnonzero(patient.any(axis=tuple(a for a in range(3) if a != axis))) for axis in range(3)]
        if not len(spans[0]):
            classes = len(VERTEBRA_CLASSES)
            return CropVotes(np.zeros((0, classes)), np.zeros((0, classes, 3)), np.zeros((0, classes), dtype=bool))
        centres = np.array(config.crop) - 2 * np.array(config.border)
        grids = [tile_starts(span[0], span[-1] + 1, crop, border, centre)
                 for span, crop, border, centre in zip(spans, config.crop, config.border, centres)]
        with timer("search"):
            search = self.run_crops(working, np.array(np.meshgrid(*grids, indexing="ij")).reshape(3, -1).T)
        starts = self.spine_starts(search, working.volume)
        if not len(starts):
            return search
        with timer("along spine"):
            return concatenate(search, self.run_crops(working, starts))

    def run_crops(self, working: WorkingVolume, starts: np.ndarray) -> CropVotes:
        """The network's votes for crops at voxel ``starts`` (N, 3) of the working volume."""
        config, volume = self.config, working.volume
        air = working.value(-1000.0)
        probability, voxels = [], []
        for first in range(0, len(starts), CROPS_PER_BATCH):
            chunk = starts[first:first + CROPS_PER_BATCH]
            crops = np.stack([window(volume.array, s, config.crop, fill=air) for s in chunk])[:, None]
            with autocast(self.device):
                logits, coordinates = self.network(torch.from_numpy(crops).to(self.device))
            probability.append(torch.sigmoid(logits).cpu().numpy())
            voxels.append(coordinates.cpu().numpy() + chunk[:, None, :])
        probability, voxels = np.concatenate(probability), np.concatenate(voxels)
        border = np.array(config.border)
        local = voxels - starts[:, None, :]
        central = ((local >= border) & (local < np.array(config.crop) - border)).all(axis=-1)
        return CropVotes(probability, volume.to_world(voxels), central)

    def spine_starts(self, search: CropVotes, volume: CTVolume) -> np.ndarray:
        """Crops along the spine the search found: S-I starts half a centre apart over its votes, each
        centred in-plane on the presence-weighted mean of the votes nearest in S-I."""
        config = self.config
        found = search.central & (search.probability >= SPINE_PRESENCE)
        if not found.any():
            return np.zeros((0, 3), dtype=int)
        voxels = volume.to_voxel(search.world[found])
        weights = search.probability[found]
        crop, border = np.array(config.crop), np.array(config.border)
        centre_s = crop[2] - 2 * border[2]
        starts = []
        for start in tile_starts(int(voxels[:, 2].min()), int(voxels[:, 2].max()) + 1, crop[2], border[2],
                                 max(centre_s // 2, 1)):
            distance = np.abs(voxels[:, 2] - (start + crop[2] / 2))
            near = distance <= max(distance.min(), centre_s / 2)
            plane = (voxels[near, :2] * weights[near, None]).sum(axis=0) / weights[near].sum()
            starts.append([*np.round(plane - crop[:2] / 2).astype(int), start])
        return np.array(starts, dtype=int)

    def centroids(self, votes: CropVotes, threshold: float | None = None, decoder: bool | None = None,
                  separation: float | None = None, presence: bool = True) -> Prediction:
        """Cluster the votes into one centroid per class. ``threshold``, ``decoder`` and ``separation``
        default to the config's; ``presence=False`` ignores the classification branch (every central
        coordinate votes with weight 1), the paper's localization network alone (Table III)."""
        config = self.config
        threshold = config.presence_threshold if threshold is None else threshold
        decoder = config.decoder if decoder is None else decoder
        separation = config.separation_mm if separation is None else separation
        weight = votes.probability if presence else np.ones_like(votes.probability)
        keep = votes.central & (votes.probability >= threshold if presence else True)
        clusters = []  # (class, mass, world, confidence)
        for k in range(len(VERTEBRA_CLASSES)):
            chosen = np.flatnonzero(keep[:, k])
            if len(chosen):
                clusters.append((k, *densest_cluster(votes.world[chosen, k], weight[chosen, k],
                                                     config.cluster_radius_mm)))
        clusters = separate_vertebrae(clusters, separation)
        details = {"crops": int(len(votes.probability))}
        if not clusters:
            details["no_spine"] = "no spine: no crop found a vertebra"
            return Prediction(Centroids.empty(), details=details)
        clusters.sort(key=lambda cluster: -cluster[2][2])  # superior (high S) first
        labels = np.array([VERTEBRA_CLASSES[k] for k, *_ in clusters])
        if decoder:
            scores = class_scores(clusters, votes, weight, keep, config.cluster_radius_mm)
            labels = consecutive_labels(scores)
        world = np.array([position for _, _, position, _ in clusters])
        confidence = np.array([c for *_, c in clusters])
        return Prediction(Centroids(labels, world, confidence).sorted(), details=details)

    def predict_canonical(self, ct: CTVolume, timer: StageTimer) -> Prediction:
        votes = self.crop_votes(ct, timer)
        with timer("clustering"):
            return self.centroids(votes)


def densest_cluster(points: np.ndarray, weights: np.ndarray, radius: float) -> tuple[float, np.ndarray, float]:
    """The weight, weighted mean and confidence of the heaviest group of ``points`` within ``radius`` of
    one of them. Confidence: the group's mean weight times its share of all the weight (a class that
    other crops put elsewhere is less sure)."""
    distances = np.linalg.norm(points[:, None] - points[None], axis=-1)
    near = distances <= radius
    masses = near.astype(float) @ weights
    members = near[int(np.argmax(masses))]
    mass = float(weights[members].sum())
    position = (points[members] * weights[members, None]).sum(axis=0) / mass
    confidence = float(weights[members].mean()) * mass / float(weights.sum())
    return mass, position, confidence


def separate_vertebrae(clusters: list, distance: float) -> list:
    """Drop the lighter of two class clusters closer than ``distance``: one vertebra cannot be two."""
    kept = []
    for cluster in sorted(clusters, key=lambda c: -c[1]):
        if all(np.linalg.norm(cluster[2] - other[2]) > distance for other in kept):
            kept.append(cluster)
    return kept


def class_scores(clusters: list, votes: CropVotes, weight: np.ndarray, keep: np.ndarray, radius: float) -> np.ndarray:
    """Rows (detections) x classes: the share of each class's kept vote weight within ``radius`` of the
    detection, the scores the consecutive-label decoder weighs."""
    scores = np.zeros((len(clusters), len(VERTEBRA_CLASSES)))
    for row, (_, _, position, _) in enumerate(clusters):
        near = keep & (np.linalg.norm(votes.world - position, axis=-1) <= radius)
        scores[row] = (weight * near).sum(axis=0)
    return scores / max(scores.max(), 1e-9)
