"""Inference of the multi-view method: DRRs -> heatmaps and class maps -> rays -> labelled 3D centroids."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from spinelab.bone import BoneStage
from spinelab.decoders.chain import smooth_chain
from spinelab.devices import autocast
from spinelab.io.centroids import Centroids
from spinelab.io.volume import CTVolume
from spinelab.methods.base import Method, Prediction, StageTimer
from spinelab.methods.multiview.config import MultiViewConfig
from spinelab.methods.multiview.fusion import fuse_views
from spinelab.methods.multiview.peaks import find_peaks
from spinelab.methods.multiview.sequence_loss import probability_matrix
from spinelab.methods.multiview.views import make_views, render_normalized, rendering_volume
from spinelab.methods.multiview.voting import identify, merge_repeats, view_sequence_loss
from spinelab.nets import ResNetUNet
from spinelab.training import ModelFile
from spinelab.vertebrae import NUM_CLASSES, VERTEBRA_CLASSES, class_index


class MultiViewMethod(Method):
    name = "multiview"

    def __init__(self, localizer: ResNetUNet, identifier: ResNetUNet, config: MultiViewConfig,
                 device: str = "cpu", meta: dict | None = None, bone: BoneStage | None = None):
        self.localizer = localizer.to(device).eval()
        self.identifier = identifier.to(device).eval()
        self.config = config
        self.device = device
        self.meta = meta or {}
        self._bone_stage = bone

    @classmethod
    def from_model_file(cls, model: ModelFile, device: str) -> MultiViewMethod:
        config = MultiViewConfig.from_dict(model.config)
        networks = [model.load_into(key, ResNetUNet(channels, config.depth, config.width))
                    for key, channels in (("localizer", 1), ("identifier", NUM_CLASSES))]
        bone = BoneStage.load(device=device) if config.bone_stage else None
        return cls(*networks, config, device, model.meta, bone)

    @property
    def rendering_bone(self) -> BoneStage | None:
        """The bone stage the DRRs are rendered from, or None where the settings render every voxel."""
        return self.bone_stage() if self.config.bone_stage else None

    @torch.inference_mode()
    def run_networks(self, images: np.ndarray) -> tuple[np.ndarray, torch.Tensor]:
        """Heatmaps (K, H, W) and class probabilities (K, C, H, W) for normalized DRRs (K, H, W)."""
        batch = torch.from_numpy(images.astype(np.float32))[:, None].to(self.device)
        with autocast(self.device):
            heatmaps = self.localizer(batch)[:, 0].float()
            logits = self.identifier(F.avg_pool2d(batch, self.config.identifier_scale)).float()
        # Back to detector pixels (pooled pixel centres map back exactly with align_corners=False).
        probabilities = F.interpolate(logits.softmax(dim=1), size=batch.shape[-2:], mode="bilinear",
                                      align_corners=False)
        return heatmaps.cpu().numpy(), probabilities.cpu()

    def decode(self, heatmaps: np.ndarray, probabilities: torch.Tensor, views) -> tuple[Centroids, dict]:
        """Peaks per view, their class rows P, Sequence Losses, ray fusion and weighted voting."""
        config = self.config
        points, scores, matrices, losses = [], [], [], []
        for heatmap, view_probabilities, view in zip(heatmaps, probabilities, views):
            pixel_mm = view.pixel_mm_at_isocenter
            found, found_scores = find_peaks(heatmap, pixel_mm, config.peak_min_distance_mm, config.peak_threshold)
            matrix = probability_matrix(view_probabilities, found, config.square_mm / pixel_mm).numpy()
            matrix = matrix / np.clip(matrix.sum(axis=1, keepdims=True), 1e-6, None)  # background removed
            points.append(found)
            scores.append(found_scores)
            matrices.append(matrix)
            losses.append(view_sequence_loss(matrix, found) if config.weighted_voting and len(found) else 0.0)
        min_views = max(2, math.ceil(config.min_view_fraction * len(views)))
        fused = fuse_views(points, views, scores, tolerance_mm=config.fusion_tolerance_mm, min_views=min_views)
        if len(fused) > len(VERTEBRA_CLASSES):  # more candidates than a spine has: keep the best supported
            support = [(vertebra.support, float(sum(scores[v][d] for v, d in zip(vertebra.views, vertebra.detections))))
                       for vertebra in fused]
            keep = sorted(sorted(range(len(fused)), key=lambda i: support[i])[-len(VERTEBRA_CLASSES):])
            fused = [fused[i] for i in keep]
        fused = [v for v in fused if _detection_score(v, scores) >= config.min_detection_score]
        off_column = []  # tested before labelling, so a false candidate takes no label slot
        if config.column_deviation_mm is not None and fused:
            on_column = smooth_chain([v.point for v in fused], [_detection_score(v, scores) for v in fused],
                                     max_deviation_mm=config.column_deviation_mm)
            off_column = [f"candidate at ({x:.0f}, {y:.0f}, {z:.0f}) mm"
                          for (x, y, z), keep in zip((v.point for v in fused), on_column) if not keep]
            fused = [vertebra for vertebra, keep in zip(fused, on_column) if keep]
        labels, confidence = identify(fused, matrices, losses, config.missed_vertebra_penalty, config.spacing_labels)
        fused, labels, confidence = merge_repeats(fused, labels, confidence)
        centroids = Centroids(labels, [vertebra.point for vertebra in fused], confidence)
        details = {"peaks": points, "sequence_losses": losses, "support": [v.support for v in fused],
                   "support_fraction": [v.support / len(views) for v in fused],
                   "detection_score": [_detection_score(vertebra, scores) for vertebra in fused],
                   "labels": labels.tolist(), "label_confidence": confidence.tolist(),
                   "view_agreement": [_view_agreement(vertebra, matrices, label)
                                      for vertebra, label in zip(fused, labels)], "off_column": off_column}
        best_score = max(details["detection_score"], default=0.0)
        best_confidence = max(details["label_confidence"], default=0.0)
        spine = best_score >= config.spine_detection_score and best_confidence >= config.spine_label_confidence
        if not (fused and spine):
            details["no_spine"] = (f"no spine: best localizer score {best_score:.2f} (a spine needs "
                                   f"{config.spine_detection_score:g}), best label confidence {best_confidence:.2f} "
                                   f"(needs {config.spine_label_confidence:g})")
            return Centroids.empty(), details
        return centroids, details

    def predict_canonical(self, ct: CTVolume, timer: StageTimer) -> Prediction:
        with timer("resample"):
            volume = rendering_volume(ct, self.config, self.rendering_bone)
        with timer("drr"):
            views = make_views(volume, self.config)
            images = render_normalized(volume, views, self.device)
        with timer("networks"):
            heatmaps, probabilities = self.run_networks(images)
        with timer("fusion"):
            centroids, details = self.decode(heatmaps, probabilities, views)
        details.update(views=views, images=images, heatmaps=heatmaps)
        return Prediction(centroids, details=details)

    def review(self, prediction: Prediction) -> list[str]:
        """Vertebrae on whose label fewer than ``review_view_agreement`` of their views agree."""
        agreement = dict(zip(prediction.details.get("labels", []), prediction.details.get("view_agreement", [])))
        doubtful = [name for label, name in zip(prediction.centroids.labels, prediction.centroids.names())
                    if agreement.get(int(label), 1.0) < self.config.review_view_agreement]
        return [f"views disagree on the label: {' '.join(doubtful)}"] if doubtful else []


def _view_agreement(vertebra, matrices, label: int) -> float:
    """Share of the views that saw a vertebra whose own most likely class is the label it received."""
    column = class_index(label) - 1
    votes = [np.argmax(matrices[v][d]) == column for v, d in zip(vertebra.views, vertebra.detections)]
    return float(np.mean(votes))


def _detection_score(vertebra, scores) -> float:
    """Mean heatmap peak of the detections behind a fused vertebra: how sure the localizer was."""
    return float(np.mean([scores[v][d] for v, d in zip(vertebra.views, vertebra.detections)]))
