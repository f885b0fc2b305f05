"""Inference of the scnet method (Payer et al.): CT -> spine x, y at 8 mm -> SC-Net heatmaps in z
windows centred on it at 4 mm, merged by maximum -> landmark sequence -> world centroids -> (with
``segment``, run by ``Method.predict`` on the centroids it keeps) one binary segmentation per
vertebra at 2 mm, merged into a VerSe label map on the CT's grid.

A centroid's confidence is its heatmap's response (peak 1 in training). No spine: the spine
heatmap is all but empty, or no heatmap has a maximum above ``peak_threshold``.
"""

from __future__ import annotations

import numpy as np
import torch

from spinelab.devices import autocast
from spinelab.inference import window
from spinelab.io.centroids import Centroids
from spinelab.io.volume import CTVolume
from spinelab.io.working import scaled_volume
from spinelab.methods.base import Method, Prediction, StageTimer
from spinelab.methods.scnet.config import SCNetConfig
from spinelab.methods.scnet.segmentation import merge_responses, response_on_grid
from spinelab.methods.scnet.sequence import heatmap_candidates, landmark_sequence
from spinelab.methods.scnet.train import MODEL_VERSION, landmark_network, segment_network, spine_network
from spinelab.targets import gaussian_heatmap
from spinelab.training import ModelFile
from spinelab.vertebrae import VERTEBRA_CLASSES

SEGMENT_BATCH = 4


def _run(network: torch.nn.Module, inputs: np.ndarray, device: str) -> np.ndarray:
    """``network`` on a batch (B, C, *spatial) of float32 inputs; float32 outputs on the CPU."""
    with torch.inference_mode(), autocast(device):
        return network(torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32)).to(device)).float().cpu().numpy()


class SCNetMethod(Method):
    name = "scnet"
    model_version = MODEL_VERSION
    can_segment = True

    def __init__(self, spine, landmarks, segmenter, config: SCNetConfig, device: str = "cpu"):
        self.spine, self.landmarks, self.segmenter = (net.to(device).eval() for net in (spine, landmarks, segmenter))
        self.config, self.device = config, device

    @classmethod
    def from_model_file(cls, model: ModelFile, device: str) -> SCNetMethod:
        config = SCNetConfig.from_dict(model.config)
        return cls(model.load_into("spine", spine_network(config)), model.load_into("landmarks", landmark_network(config)),
                   model.load_into("segmenter", segment_network(config)), config, device)

    def spine_position(self, ct: CTVolume) -> np.ndarray | None:
        """World (R, A) of the centre of mass of the spine heatmap (§2.1); None when it holds no spine."""
        working = scaled_volume(ct, self.config.spine_spacing_mm, self.config.hu_scale)
        size = np.array(self.config.spine_input)
        starts = np.array(working.volume.shape) // 2 - size // 2  # the volume centred in the input
        image = window(working.volume.array, starts, size, fill=working.value(-1000.0))
        heatmap = np.clip(_run(self.spine, image[None, None], self.device)[0, 0], 0.0, None)
        if heatmap.max() < self.config.spine_min_peak or heatmap.sum() <= 0:
            return None
        grids = np.meshgrid(*[np.arange(n) for n in size], indexing="ij")
        centre = np.array([(grid * heatmap).sum() for grid in grids]) / heatmap.sum() + starts
        return working.volume.to_world(centre[None])[0, :2]

    def heatmaps(self, ct: CTVolume, spine_xy: np.ndarray) -> tuple[np.ndarray, callable]:
        """The SC-Net's heatmaps (classes, R, A, S) over 4 mm windows centred on the spine, overlapping
        along S and merged by maximum, and the function taking their voxels to world mm."""
        config = self.config
        working = scaled_volume(ct, config.spacing_mm, self.config.hu_scale)
        volume, crop = working.volume, np.array(config.crop)
        centre = volume.to_voxel(np.array([[*spine_xy, volume.to_world([[0, 0, 0]])[0, 2]]]))[0]
        offset = np.array([*np.round(centre[:2] - crop[:2] / 2), 0]).astype(int)
        depth, step = volume.shape[2], crop[2] - int(round(config.window_overlap_mm / config.spacing_mm))
        z_starts = list(range(0, max(depth - crop[2], 0) + 1, step))
        if z_starts[-1] + crop[2] < depth:
            z_starts.append(depth - crop[2])
        crops = np.stack([window(volume.array, offset + [0, 0, z], crop, fill=working.value(-1000.0)) for z in z_starts])
        outputs = np.concatenate([_run(self.landmarks, crops[i:i + 2, None], self.device)
                                  for i in range(0, len(crops), 2)])
        merged = np.full((len(VERTEBRA_CLASSES), *crop[:2], max(depth, crop[2])), -np.inf, dtype=np.float32)
        for z, output in zip(z_starts, outputs):
            np.maximum(merged[..., z:z + crop[2]], output, out=merged[..., z:z + crop[2]])
        return merged, lambda voxels: volume.to_world(np.asarray(voxels) + offset)

    def segment_vertebrae(self, ct: CTVolume, centroids: Centroids) -> CTVolume:
        """The VerSe label map (on ``ct``'s grid) of one binary segmentation per centroid (§2.3)."""
        config = self.config
        working = scaled_volume(ct, config.segment_spacing_mm, self.config.hu_scale)
        volume, crop = working.volume, np.array(config.segment_crop)
        sigma = config.segment_sigma_mm / config.segment_spacing_mm
        centres = volume.to_voxel(centroids.world)
        starts = np.round(centres - crop / 2).astype(int)
        inputs = np.stack([np.stack([window(volume.array, start, crop, fill=working.value(-1000.0)),
                                     gaussian_heatmap((centre - start)[None], crop, sigma)])
                           for centre, start in zip(centres, starts)])
        logits = np.concatenate([_run(self.segmenter, inputs[i:i + SEGMENT_BATCH], self.device)
                                 for i in range(0, len(inputs), SEGMENT_BATCH)])[:, 0]
        pieces = []
        for label, start, logit in zip(centroids.labels, starts, logits):
            response = CTVolume(1.0 / (1.0 + np.exp(-logit)), volume.affine.copy(), ct.source)
            response.affine[:3, 3] = volume.to_world([start])[0]
            placed = response_on_grid(response, ct)
            if placed is not None:
                pieces.append((int(label), *placed))
        return ct.with_array(merge_responses(ct.shape, pieces))

    def localize(self, ct: CTVolume, timer: StageTimer | None = None) -> tuple[np.ndarray | None, np.ndarray | None, object]:
        """The networks' part of §2.1-2.2 on a canonical CT: the spine's x, y (None: no spine), the SC-Net's
        merged heatmaps and their voxel-to-world function."""
        timer = timer or StageTimer()
        with timer("spine localization"):
            spine_xy = self.spine_position(ct)
        if spine_xy is None:
            return None, None, None
        with timer("vertebra localization"):
            return (spine_xy, *self.heatmaps(ct, spine_xy))

    def decode(self, localized, threshold: float | None = None, per_class: int | None = None) -> Prediction:
        """Centroids from ``localize``'s output under the paper's sequence rules; ``threshold`` and ``per_class``
        default to the config's (the settings script tries others on the same heatmaps)."""
        spine_xy, maps, to_world = localized
        threshold = self.config.peak_threshold if threshold is None else threshold
        per_class = self.config.candidates_per_class if per_class is None else per_class
        details: dict = {}
        if spine_xy is None:
            details["no_spine"] = "no spine: the spine localization heatmap is empty"
            return Prediction(Centroids.empty(), details=details)
        details["spine_xy_mm"] = [round(float(v), 1) for v in spine_xy]
        candidates = heatmap_candidates(maps, to_world, threshold, per_class)
        chain = landmark_sequence(candidates, self.config.min_distance_mm, self.config.max_distance_mm)
        if not chain:
            details["no_spine"] = f"no spine: no heatmap maximum reached {threshold:g}"
            return Prediction(Centroids.empty(), details=details)
        details["candidates"] = len(candidates)
        centroids = Centroids(np.array([VERTEBRA_CLASSES[c.column] for c in chain]), np.array([c.world for c in chain]),
                              np.clip([c.value for c in chain], 0.0, 1.0))
        return Prediction(centroids, details=details)

    def predict_canonical(self, ct: CTVolume, timer: StageTimer) -> Prediction:
        localized = self.localize(ct, timer)
        with timer("sequence"):
            return self.decode(localized)
