"""Scoring predicted vertebra centroids against ground truth with the field's standard metrics."""

from spinelab.eval.metrics import DatasetMetrics, ScanMetrics, Summary, VertebraRecord, evaluate_dataset, evaluate_scan

__all__ = ["DatasetMetrics", "ScanMetrics", "Summary", "VertebraRecord", "evaluate_dataset", "evaluate_scan"]
