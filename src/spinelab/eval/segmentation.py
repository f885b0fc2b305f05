"""Per-vertebra segmentation metrics of label maps: Dice and Hausdorff distance (VerSe's two).

Both maps are VerSe-numbered (``spinelab.io.labelmap``); the prediction is put on the ground truth's
grid (nearest label) first, so maps of any orientation or spacing compare in world space. Each
ground-truth vertebra is scored: a vertebra the prediction lacks has Dice 0 and no Hausdorff
distance (VerSe leaves it out of the mean too). Predicted vertebrae absent from the ground truth
are counted as false positives. Hausdorff distances are in mm (MONAI's, on the voxel spacing) over
the box holding both masks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spinelab import vertebrae
from spinelab.errors import SpinelabError
from spinelab.io.volume import CTVolume

VERTEBRA_LABELS = frozenset(vertebrae.NAMES)


@dataclass
class SegmentationMetrics:
    """Per case and vertebra: {case: {label: (dice, hausdorff mm or None)}}, and predicted labels not in GT."""

    vertebrae: dict[str, dict[int, tuple[float, float | None]]] = field(default_factory=dict)
    false_positives: dict[str, list[int]] = field(default_factory=dict)

    def summary(self, labels=None) -> dict:
        scores = [score for case in self.vertebrae.values() for label, score in case.items()
                  if labels is None or label in labels]
        dice = [d for d, _ in scores]
        distances = [h for _, h in scores if h is not None]
        return {"vertebrae": len(scores), "dice": float(np.mean(dice)) if dice else None,
                "hausdorff_mm": float(np.mean(distances)) if distances else None,
                "false_positives": sum(len(v) for v in self.false_positives.values())}

    def by_region(self) -> dict[str, dict]:
        return {region: self.summary({label for label in VERTEBRA_LABELS if vertebrae.region(label) == region})
                for region in vertebrae.REGIONS}

    def to_dict(self) -> dict:
        return {"overall": self.summary(), "regions": self.by_region(),
                "cases": {case: {vertebrae.NAMES[label]: {"dice": d, "hausdorff_mm": h} for label, (d, h) in scores.items()}
                          for case, scores in self.vertebrae.items()},
                "false_positives": {case: [vertebrae.NAMES[label] for label in labels]
                                    for case, labels in self.false_positives.items() if labels}}


def _hausdorff_mm(pred: np.ndarray, gt: np.ndarray, spacing: np.ndarray) -> float:
    from monai.metrics import compute_hausdorff_distance

    both = np.argwhere(pred | gt)
    box = tuple(slice(max(a - 1, 0), b + 2) for a, b in zip(both.min(axis=0), both.max(axis=0)))
    distance = compute_hausdorff_distance(pred[box][None, None], gt[box][None, None], include_background=True,
                                          spacing=[float(s) for s in spacing])
    return float(distance.reshape(-1)[0])


def score_label_maps(pred: CTVolume, gt: CTVolume) -> tuple[dict[int, tuple[float, float | None]], list[int]]:
    """{GT vertebra label: (Dice, Hausdorff mm or None)} and the predicted vertebra labels absent from GT."""
    predicted = pred.resampled_onto(gt, order=0, cval=0).array
    truth = np.asarray(gt.array)
    gt_labels = sorted(set(np.unique(truth).tolist()) & VERTEBRA_LABELS)
    pred_labels = sorted(set(np.unique(predicted).tolist()) & VERTEBRA_LABELS)
    scores = {}
    for label in gt_labels:
        mine, theirs = predicted == label, truth == label
        overlap = 2.0 * float((mine & theirs).sum()) / float(mine.sum() + theirs.sum())
        scores[int(label)] = (overlap, _hausdorff_mm(mine, theirs, gt.spacing) if mine.any() else None)
    return scores, [int(label) for label in pred_labels if label not in gt_labels]


def format_segmentation_table(metrics: SegmentationMetrics) -> str:
    def row(title: str, summary: dict) -> str:
        dice = "-" if summary["dice"] is None else f"{summary['dice']:.3f}"
        distance = "-" if summary["hausdorff_mm"] is None else f"{summary['hausdorff_mm']:.1f}"
        return f"| {title} | {summary['vertebrae']} | {dice} | {distance} |"

    lines = ["| region | GT vertebrae | Dice | Hausdorff (mm) |", "|---|---|---|---|"]
    lines += [row(region, summary) for region, summary in metrics.by_region().items() if summary["vertebrae"]]
    lines.append(row("all", metrics.summary()))
    return "\n".join(lines)


MASK_SUFFIX = "_seg-vert_msk"  # VerSe's and ``spinelab predict --segment``'s label map name


def label_map_files(folder: Path) -> dict[str, Path]:
    """{case id: label map} directly in ``folder`` (``<case>_seg-vert_msk.nii.gz`` or any ``<case>`` image),
    or, for a VerSe/CSI2014 dataset root, its cases' masks."""
    from spinelab.io.datasets import find_cases
    from spinelab.io.images import IMAGE_SUFFIXES

    found = {}
    for path in sorted(p for p in folder.iterdir() if p.is_file() and p.name.lower().endswith(IMAGE_SUFFIXES)):
        stem = path.name[: -len(next(s for s in IMAGE_SUFFIXES if path.name.lower().endswith(s)))]
        found.setdefault(stem.removesuffix(MASK_SUFFIX), path)
    if found:
        return found
    try:
        return {case.case_id: case.mask_path for case in find_cases(folder) if case.mask_path is not None}
    except SpinelabError:
        return {}


def evaluate_label_maps(pred: str | Path, gt: str | Path) -> tuple[SegmentationMetrics, list[Path], list[Path]]:
    """Score PRED label maps against GT (two files, or two folders paired by case id); also the unmatched files."""
    from spinelab.io.images import read_label_map

    pred, gt = Path(pred), Path(gt)
    if pred.is_file() and gt.is_file():
        pairs, unmatched_pred, unmatched_gt = {gt.name: (pred, gt)}, [], []
    elif pred.is_dir() and gt.is_dir():
        predictions, truths = label_map_files(pred), label_map_files(gt)
        pairs = {case: (predictions[case], truths[case]) for case in sorted(predictions.keys() & truths.keys())}
        if not pairs:
            raise SpinelabError(f"no case matches between the label maps in {pred} ({len(predictions)}) and {gt} "
                                f"({len(truths)}); files pair by name without '{MASK_SUFFIX}' and the extension")
        unmatched_pred = [predictions[case] for case in sorted(predictions.keys() - truths.keys())]
        unmatched_gt = [truths[case] for case in sorted(truths.keys() - predictions.keys())]
    else:
        raise SpinelabError(f"PRED and GT must be two label map files or two folders ({pred}, {gt})")
    metrics = SegmentationMetrics()
    for case, (pred_path, gt_path) in pairs.items():
        metrics.vertebrae[case], metrics.false_positives[case] = score_label_maps(read_label_map(pred_path),
                                                                                  read_label_map(gt_path))
    return metrics, unmatched_pred, unmatched_gt
