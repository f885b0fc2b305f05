"""Standard vertebra labelling metrics: two identification rates, localization error, detection precision/recall.

Every vertebra present in the ground truth (GT) or the prediction gets one ``VertebraRecord``; all
summaries (per scan, per dataset, per region, per label) are counts and pooled errors over records,
so a dataset's rates are *total hits / total GT vertebrae*, never a mean of per-scan rates.

Definitions (``d`` = Euclidean distance in RAS+ mm, ``max_distance`` = 20 mm by default; every
test is a strict ``d < max_distance``):

* **VerSe identification rate** (Sekuboyina et al. 2021, as on verse2019.grand-challenge.org/Tasks:
  "a vertebra is correctly identified if the ground truth vertebral location is closest to the
  predicted vertebral location and this distance is less than 20 mm"). GT vertebra *i* is a hit when
  a prediction carries its label, the GT centroid nearest to that prediction is *i*, and their
  distance is below ``max_distance``. Rate = hits / number of GT vertebrae. Payer's reference code
  (``LandmarkStatistics.get_correct_id_per_instance``) uses the same test with ``<=``.
* **CSI2014 identification rate** (Glocker et al. 2013, the convention of the CSI 2014 spine data,
  read from the GT side): GT vertebra *i* is a hit when the prediction nearest to it, whatever its
  label, carries *i*'s label and lies within ``max_distance``. This is stricter than VerSe when a
  stray prediction sits closer to *i* than the correctly labelled one.
* **Localization error**: distance between the prediction and the GT centroid with the same label,
  for labels present in both; mean, population std (ddof=0), median and max.
* **Detection precision / recall**: label-blind, one-to-one. Predictions and GT centroids are
  paired by Hungarian assignment (``scipy.optimize.linear_sum_assignment``) on distance, pairs at
  ``max_distance`` or more being forbidden; precision = paired predictions / predictions, recall =
  paired GT / GT. It tells "found a vertebra there" apart from "named it right".

Regions follow ``spinelab.vertebrae.region`` (cervical, thoracic incl. T13, lumbar incl. L6,
sacral); a record belongs to the region of its label, so per-region precision counts predictions
by their predicted label.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from spinelab import vertebrae
from spinelab.io.centroids import Centroids

MAX_DISTANCE_MM = 20.0


@dataclass(frozen=True)
class VertebraRecord:
    """One vertebra label of one scan: where GT and prediction put it and which tests it passes.

    ``verse_hit``/``csi_hit``/``gt_detected`` concern the GT centroid (False when there is none);
    ``pred_detected`` and ``nearest_gt_label`` concern the prediction (``nearest_gt_label`` is the
    label of the GT centroid closest to it, which shows off-by-one labelling at a glance).
    """

    label: int
    gt: tuple[float, float, float] | None
    pred: tuple[float, float, float] | None
    error: float | None
    verse_hit: bool
    csi_hit: bool
    gt_detected: bool
    pred_detected: bool
    nearest_gt_label: int | None

    @property
    def name(self) -> str:
        return vertebrae.name(self.label)

    @property
    def region(self) -> str:
        return vertebrae.region(self.label)

    def to_dict(self) -> dict:
        return {
            "label": self.label, "name": self.name, "region": self.region,
            "gt": None if self.gt is None else list(self.gt),
            "pred": None if self.pred is None else list(self.pred),
            "error_mm": self.error, "verse_hit": self.verse_hit, "csi_hit": self.csi_hit,
            "gt_detected": self.gt_detected, "pred_detected": self.pred_detected,
            "nearest_gt": None if self.nearest_gt_label is None else vertebrae.name(self.nearest_gt_label),
        }


def _rate(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


@dataclass(frozen=True)
class Summary:
    """Counts and pooled errors over a set of records; rates are None when their denominator is 0."""

    n_gt: int
    n_pred: int
    verse_hits: int
    csi_hits: int
    gt_detected: int
    pred_detected: int
    errors: tuple[float, ...]

    @classmethod
    def of(cls, records) -> Summary:
        records = list(records)
        return cls(
            n_gt=sum(r.gt is not None for r in records),
            n_pred=sum(r.pred is not None for r in records),
            verse_hits=sum(r.verse_hit for r in records),
            csi_hits=sum(r.csi_hit for r in records),
            gt_detected=sum(r.gt_detected for r in records),
            pred_detected=sum(r.pred_detected for r in records),
            errors=tuple(r.error for r in records if r.error is not None),
        )

    @property
    def verse_id_rate(self) -> float | None:
        return _rate(self.verse_hits, self.n_gt)

    @property
    def csi_id_rate(self) -> float | None:
        return _rate(self.csi_hits, self.n_gt)

    @property
    def precision(self) -> float | None:
        return _rate(self.pred_detected, self.n_pred)

    @property
    def recall(self) -> float | None:
        return _rate(self.gt_detected, self.n_gt)

    def error_stats(self) -> dict[str, float | None]:
        if not self.errors:
            return {"mean": None, "std": None, "median": None, "max": None}
        errors = np.asarray(self.errors)
        return {"mean": float(errors.mean()), "std": float(errors.std()),
                "median": float(np.median(errors)), "max": float(errors.max())}

    def to_dict(self) -> dict:
        return {
            "n_gt": self.n_gt, "n_pred": self.n_pred,
            "verse_hits": self.verse_hits, "verse_id_rate": self.verse_id_rate,
            "csi_hits": self.csi_hits, "csi_id_rate": self.csi_id_rate,
            "n_errors": len(self.errors), "error_mm": self.error_stats(),
            "precision": self.precision, "recall": self.recall,
        }


_TABLE_HEADER = (f"{'':<10} {'GT':>5} {'pred':>5} {'id VerSe':>9} {'id CSI':>8} {'err mean':>9} "
                 f"{'median':>7} {'std':>6} {'max':>6} {'prec':>7} {'recall':>7}")


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _mm(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _table_row(title: str, summary: Summary) -> str:
    stats = summary.error_stats()
    return (f"{title:<10} {summary.n_gt:>5} {summary.n_pred:>5} {_percent(summary.verse_id_rate):>9} "
            f"{_percent(summary.csi_id_rate):>8} {_mm(stats['mean']):>9} {_mm(stats['median']):>7} "
            f"{_mm(stats['std']):>6} {_mm(stats['max']):>6} {_percent(summary.precision):>7} "
            f"{_percent(summary.recall):>7}")


class _RecordSummaries:
    """Overall, per-region and per-label summaries shared by scan and dataset results."""

    records: list[VertebraRecord]
    max_distance: float

    @property
    def overall(self) -> Summary:
        return Summary.of(self.records)

    def by_region(self) -> dict[str, Summary]:
        """Regions that have at least one GT or predicted vertebra, skull to tail."""
        return {region: Summary.of(r for r in self.records if r.region == region)
                for region in vertebrae.REGIONS if any(r.region == region for r in self.records)}

    def by_label(self) -> dict[int, Summary]:
        labels = vertebrae.sort_anatomically({r.label for r in self.records})
        return {label: Summary.of(r for r in self.records if r.label == label) for label in labels}

    def format_table(self, by_label: bool = False) -> str:
        """Fixed-width text table: one row per region (or per label) and an overall row, distances in mm."""
        groups = ({vertebrae.name(k): v for k, v in self.by_label().items()} if by_label else self.by_region())
        rows = [_TABLE_HEADER, *(_table_row(title, summary) for title, summary in groups.items()),
                _table_row("overall", self.overall)]
        note = (f"id VerSe / id CSI: identification rates (hit within {self.max_distance:g} mm); err: same-label "
                f"distance in mm; prec/recall: one-to-one detection within {self.max_distance:g} mm, any label")
        return "\n".join([*rows, note])


@dataclass
class ScanMetrics(_RecordSummaries):
    """Metrics of one scan: a record per vertebra label found in the GT or the prediction."""

    records: list[VertebraRecord]
    max_distance: float = MAX_DISTANCE_MM

    def to_dict(self) -> dict:
        return {
            "max_distance_mm": self.max_distance,
            "overall": self.overall.to_dict(),
            "regions": {region: s.to_dict() for region, s in self.by_region().items()},
            "vertebrae": [record.to_dict() for record in self.records],
        }


@dataclass
class DatasetMetrics(_RecordSummaries):
    """Metrics pooled over scans: rates are total hits over total GT vertebrae, errors pooled."""

    scans: dict[str, ScanMetrics]
    max_distance: float = MAX_DISTANCE_MM

    @property
    def records(self) -> list[VertebraRecord]:
        return [record for scan in self.scans.values() for record in scan.records]

    def to_dict(self) -> dict:
        return {
            "max_distance_mm": self.max_distance,
            "n_scans": len(self.scans),
            "overall": self.overall.to_dict(),
            "regions": {region: s.to_dict() for region, s in self.by_region().items()},
            "labels": {vertebrae.name(label): s.to_dict() for label, s in self.by_label().items()},
            "scans": {case: scan.to_dict() for case, scan in self.scans.items()},
        }


def _detections(distances: np.ndarray, max_distance: float) -> tuple[np.ndarray, np.ndarray]:
    """Prediction and GT indices paired one-to-one by minimum total distance, only pairs closer than the gate.

    Gated pairs cost more than any set of allowed pairs, so the assignment first maximizes the
    number of allowed pairs and then minimizes their total distance; gated pairs are then dropped.
    """
    if distances.size == 0:
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    forbidden = max_distance * (min(distances.shape) + 1)
    cost = np.where(distances < max_distance, distances, forbidden)
    rows, cols = linear_sum_assignment(cost)
    keep = distances[rows, cols] < max_distance
    return rows[keep], cols[keep]


def evaluate_scan(pred: Centroids, gt: Centroids, max_distance: float = MAX_DISTANCE_MM) -> ScanMetrics:
    """Score one scan's predicted centroids against its ground truth (both RAS+ mm); see the module doc."""
    pred_index = {int(label): i for i, label in enumerate(pred.labels)}
    gt_index = {int(label): i for i, label in enumerate(gt.labels)}
    distances = cdist(pred.world, gt.world)
    nearest_gt = distances.argmin(axis=1) if len(gt) else np.zeros(len(pred), np.intp)
    nearest_pred = distances.argmin(axis=0) if len(pred) else np.zeros(len(gt), np.intp)
    paired_pred, paired_gt = (set(indices.tolist()) for indices in _detections(distances, max_distance))

    records = []
    for label in vertebrae.sort_anatomically(pred_index.keys() | gt_index.keys()):
        p, g = pred_index.get(label), gt_index.get(label)
        error = float(distances[p, g]) if p is not None and g is not None else None
        verse_hit = error is not None and nearest_gt[p] == g and error < max_distance
        csi_hit = (g is not None and len(pred) > 0 and int(pred.labels[nearest_pred[g]]) == label
                   and distances[nearest_pred[g], g] < max_distance)
        records.append(VertebraRecord(
            label=label,
            gt=None if g is None else tuple(float(v) for v in gt.world[g]),
            pred=None if p is None else tuple(float(v) for v in pred.world[p]),
            error=error,
            verse_hit=bool(verse_hit),
            csi_hit=bool(csi_hit),
            gt_detected=g in paired_gt,
            pred_detected=p in paired_pred,
            nearest_gt_label=None if p is None or not len(gt) else int(gt.labels[nearest_gt[p]]),
        ))
    return ScanMetrics(records, max_distance)


def evaluate_dataset(pairs: dict[str, tuple[Centroids, Centroids]],
                     max_distance: float = MAX_DISTANCE_MM) -> DatasetMetrics:
    """Score every case of ``{case_id: (pred, gt)}`` and pool them (total hits / total GT vertebrae)."""
    return DatasetMetrics({case: evaluate_scan(pred, gt, max_distance) for case, (pred, gt) in pairs.items()},
                          max_distance)


def evaluate_decodings(scans, run_network, decode, runs: dict[str, dict], face_margin: float = 0.0,
                       column_deviation_mm: float | None = None,
                       progress: bool = True, desc: str = "decodings") -> dict[str, DatasetMetrics]:
    """Metrics per named option set of a method whose network runs once per scan and whose output can be
    decoded several ways (ablation rows, settings chosen on validation scans).

    ``scans``: (name, CT, truth) triples; ``run_network(canonical CT)`` -> the network's output;
    ``decode(output, **options)`` -> a ``Prediction``, kept as ``Method.predict`` keeps it (``methods.base.plausible``).
    """
    import sys

    from tqdm import tqdm

    from spinelab.methods.base import plausible

    pairs = {name: {} for name in runs}
    for name, ct, truth in tqdm(scans, desc=desc, unit="scan", disable=not progress, file=sys.stderr):
        canonical = ct.canonical()
        output = run_network(canonical)
        for run, options in runs.items():
            found = decode(output, **options)
            kept = plausible(found.centroids, canonical, found.details, face_margin, column_deviation_mm)
            pairs[run][name] = (kept, truth)
    return {run: evaluate_dataset(scan_pairs) for run, scan_pairs in pairs.items()}
