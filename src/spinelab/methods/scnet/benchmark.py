"""scnet benchmark rows of its own: the spine localization error (§2.1, the paper's PE_spine), the
vertebra segmentation (§2.3) against the generator's label maps of the held-out scans and against the
real CTs' label maps, and the time ``predict --segment`` takes on the 512 x 512 x 400 speed-test CT.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from spinelab.eval.metrics import DatasetMetrics
from spinelab.eval.segmentation import SegmentationMetrics, format_segmentation_table, score_label_maps
from spinelab.io.datasets import find_cases
from spinelab.methods.scnet.method import SCNetMethod

PAPER = ("Paper (VerSe 2019 test sets, real CTs at 1 mm): Dice 0.909 / 0.898, Hausdorff 6.35 / 7.34 mm; "
         "PE_spine 4.13 mm in cross-validation.")


@contextlib.contextmanager
def _segmenting(method: SCNetMethod):
    """``method.predict`` with segmentation on, inside the block only."""
    method.segment = True
    try:
        yield method
    finally:
        method.segment = False


def _score(metrics: SegmentationMetrics, case: str, prediction, ct, truth) -> None:
    """Add one scan's Dice and Hausdorff; no label map (no vertebra found) scores as an empty one."""
    label_map = prediction.label_map if prediction.label_map is not None else ct.with_array(np.zeros(ct.shape, np.uint8))
    metrics.vertebrae[case], metrics.false_positives[case] = score_label_maps(label_map, truth)


def benchmark_sections(method: SCNetMethod, data: str | Path, limit: int | None = None, variants=None,
                       progress: bool = True, real_cases: list | None = None,
                       real_pooled: DatasetMetrics | None = None) -> tuple[str, dict]:
    from spinelab.eval.benchmark import real_cases as load_real_cases
    from spinelab.eval.benchmark import speed_test_ct, time_stages

    heldout, spine_errors, seconds = SegmentationMetrics(), [], []
    for case in tqdm(find_cases(data)[:limit], desc="scnet segmentation", unit="scan", disable=not progress,
                     file=sys.stderr):
        ct, truth, mask = case.load()
        start = time.perf_counter()
        with _segmenting(method):
            prediction = method.predict(ct)
        seconds.append(time.perf_counter() - start)
        if "spine_xy_mm" in prediction.details and len(truth):
            spine_errors.append(float(np.linalg.norm(np.array(prediction.details["spine_xy_mm"])
                                                     - truth.world[:, :2].mean(axis=0))))
        if mask is not None:
            _score(heldout, case.case_id, prediction, ct, mask)
    real = SegmentationMetrics()
    for case in real_cases if real_cases is not None else load_real_cases():
        if case.vertebrae is None:
            continue
        with _segmenting(method):
            _score(real, case.name, method.predict(case.ct), case.ct, case.vertebrae)
    with _segmenting(method):
        speed = time_stages(method, speed_test_ct(), repeats=1)
    spine = (f"{np.mean(spine_errors):.2f} mm mean, {np.median(spine_errors):.2f} median, {np.max(spine_errors):.1f} max "
             f"over {len(spine_errors)} scans" if spine_errors else "no scan had a spine found")
    chest = {case: metrics for case, metrics in real.vertebrae.items() if case == "chest"}
    text = ["### scnet: spine localization and vertebra segmentation (Payer et al. §2.1, §2.3)", "", PAPER, "",
            f"Spine localization error (x, y of the spine heatmap's centre of mass against the mean x, y of the "
            f"reference centroids), held-out scans: {spine}.", "",
            f"Segmentation of the held-out synthetic scans against the generator's label maps ({len(heldout.vertebrae)} "
            f"scans; a vertebra the prediction lacks scores Dice 0 and no Hausdorff distance); `predict --segment` took "
            f"{np.median(seconds):.1f} s per scan (median):", "", format_segmentation_table(heldout), "",
            "Real CTs against their own label maps (the chest's are TotalSegmentator's, a model's, not a person's; "
            "tptbox's are VerSe's), every labelled vertebra, cut ones too:", "", format_segmentation_table(real), "",
            *[f"- {case}: " + ", ".join(f"{name} {dice:.2f}" for name, dice in _named(scores)) for case, scores in
              chest.items()], "",
            f"`predict --segment` on the 512 x 512 x 400 speed-test CT: {speed['total']:.1f} s in all ("
            + ", ".join(f"{stage} {value:.2f}" for stage, value in speed.items() if stage != "total") + ").", ""]
    raw = {"spine_error_mm": spine_errors, "heldout": heldout.to_dict(), "real": real.to_dict(),
           "segment_seconds_per_scan": float(np.median(seconds)) if seconds else None, "speed_with_segmentation": speed}
    return "\n".join(text), raw


def _named(scores: dict[int, tuple[float, float | None]]):
    from spinelab.vertebrae import NAMES, rank

    return [(NAMES[label], dice) for label, (dice, _) in sorted(scores.items(), key=lambda item: rank(item[0]))]
