"""Choose, for the packaged dense, integral, di2in and scnet models, settings that need no retraining:
whether the bone stage takes contrast agent out of the CT first, the face margin and the label
confidence below which a vertebra needs review. Synthetic validation scans only.

0. ``suppress_contrast``: the network sees the CT with every voxel above 150 HU that the bone stage
   (``spinelab.bone``) does not call bone set to soft tissue. The higher VerSe id-rate wins (ties:
   off), with no face margin and the method's own column test.
1. ``face_margin``: VerSe annotates whole vertebrae, so a vertebra the field of view cuts has no
   reference centroid, and a method that reports it adds a prediction with nothing to match (on a
   crop: more predictions than vertebrae in view). ``methods.base.within_volume`` drops a centroid
   whose typical body would reach past a face by more than the margin allows (in half body sizes of
   its level). The best F1 of precision and recall wins (ties: the smaller margin), the rule
   multiview's margin is chosen by in benchmarks/model_settings.py.
2. ``review_confidence``: each method's confidences have their own scale, and the one threshold
   chosen for multiview's (benchmarks/review_thresholds.py, beside its view-agreement flag) flagged
   nearly every scan of the other four. A reported vertebra is wrong when it is not a VerSe hit; the
   threshold whose flags best find the wrong ones (F1 of flagged against wrong; ties: the lower
   threshold, fewer flags) wins.

Each method predicts once per scan and contrast setting with no margin and no column test; each
margin, then the method's own column test, is applied to those centroids as ``Method.predict``
applies them, and the review threshold is chosen on the centroids the chosen margin keeps. Writes
docs/SHARED_SETTINGS.md; ``--write`` records the three settings in the model files (weights and
writer unchanged, the change noted in their meta). No real CT is used.

Run: ``python benchmarks/shared_settings.py VALIDATION_DIR [--methods dense,integral,di2in,scnet] [--write]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from model_settings import MARGINS, f1
from tqdm import tqdm

from spinelab.eval.metrics import evaluate_dataset, evaluate_scan
from spinelab.eval.report import metrics_table, write_model_report
from spinelab.io.datasets import find_cases
from spinelab.methods import MODELS_DIR, load_method
from spinelab.methods.base import plausible
from spinelab.training.model_file import update_model_config

ROOT = Path(__file__).resolve().parents[1]
CONFIDENCES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def margin_runs(name: str, folder: str) -> dict[bool, dict[float, dict]]:
    """Per contrast setting and margin, (kept centroids, reference) per scan of ``folder``, from one
    prediction per scan and contrast setting."""
    method = load_method(name)
    bound = method.config.column_deviation_mm
    method.config.column_deviation_mm, method.config.face_margin = None, 0.0
    pairs = {suppress: {margin: {} for margin in MARGINS} for suppress in (False, True)}
    for case in tqdm(find_cases(folder), desc=f"{name} validation", unit="scan", file=sys.stderr):
        ct, truth, _ = case.load()
        canonical = ct.canonical()
        for suppress in (False, True):
            method.config.suppress_contrast = suppress
            found = method.predict(ct).centroids
            for margin in MARGINS:
                pairs[suppress][margin][case.case_id] = (plausible(found, canonical, {}, margin, bound), truth)
    return pairs


def flag_rows(pairs: dict) -> tuple[int, dict[float, tuple[int, int, int, float]]]:
    """The vertebrae reported, and per threshold: how many are flagged, the wrong among them (not a
    VerSe hit), the wrong in all, and the F1 of flags against wrong. A vertebra without a confidence is
    never flagged for it (``spinelab.review``)."""
    confidence, wrong = [], []
    for found, truth in pairs.values():
        records = {r.label: r for r in evaluate_scan(found, truth).records}
        confidence += [np.inf] * len(found) if found.confidence is None else found.confidence.tolist()
        wrong += [not records[int(label)].verse_hit for label in found.labels]
    confidence, wrong = np.array(confidence), np.array(wrong, bool)
    rows = {}
    for threshold in CONFIDENCES:
        flagged = confidence < threshold
        hits = int((flagged & wrong).sum())
        rows[threshold] = (int(flagged.sum()), hits, int(wrong.sum()),
                           round(2 * hits / max(int(flagged.sum()) + int(wrong.sum()), 1), 4))
    return len(confidence), rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("validation", help="synthetic validation set (VerSe layout)")
    parser.add_argument("--methods", default="dense,integral,di2in,scnet")
    parser.add_argument("--write", action="store_true", help="record the choices in the packaged model files")
    args = parser.parse_args()
    text = ["# Contrast, face margin and review confidence of the packaged models", "",
            "Written by `python benchmarks/shared_settings.py`: each packaged model on the synthetic validation set "
            f"`{args.validation}` ({len(find_cases(args.validation))} scans). With contrast suppressed the network "
            "sees the CT with every voxel above 150 HU that the bone stage does not call bone set to soft tissue "
            "(chosen by the VerSe id-rate with no face margin, ties: not suppressed). The face margin is how many half body "
            "sizes a centroid must lie inside the volume's faces (chosen by the best F1 of precision and recall, ties: "
            "the smaller margin). A vertebra whose label confidence is below the review confidence is flagged for "
            "review (chosen by the best F1 of flagged against wrong vertebrae, a wrong one being any that is not a "
            "VerSe hit; ties: the lower threshold). multiview renders its DRRs from the bone stage's voxels and chooses its "
            "face margin and review confidence in scripts of its own (docs/MODEL_SETTINGS.md, docs/REVIEW_THRESHOLDS.md). "
            "No real CT was used.",
            ""]
    changes, sections = {}, {}
    for name in args.methods.split(","):
        runs = margin_runs(name, args.validation)
        plain = {suppress: evaluate_dataset(runs[suppress][0.0]) for suppress in runs}
        suppress = max(runs, key=lambda on: (round(plain[on].overall.verse_id_rate or 0.0, 4), not on))
        pairs = runs[suppress]
        results = {margin: evaluate_dataset(scans) for margin, scans in pairs.items()}
        scores = {margin: round(f1(metrics.overall), 4) for margin, metrics in results.items()}
        margin = max(results, key=lambda m: (scores[m], -m))
        reported, flags = flag_rows(pairs[margin])
        threshold = max(CONFIDENCES, key=lambda t: (flags[t][3], -t))
        changes[name] = {"suppress_contrast": suppress, "face_margin": margin, "review_confidence": threshold}
        rows = {f"{m:g}": metrics for m, metrics in results.items()}
        cells = {f"{m:g}": (f"{scores[m]:.3f}", str(metrics.overall.n_pred)) for m, metrics in results.items()}
        section = [f"## {name}: contrast suppressed **{'yes' if suppress else 'no'}**, face margin **{margin:g}**, "
                 f"review confidence **{threshold:g}**", "",
                 metrics_table({"CT as it is": plain[False], "contrast suppressed": plain[True]}, "input"), "",
                 metrics_table(rows, "face margin", ("F1", "predictions"), cells), "",
                 "| confidence below | vertebrae flagged | wrong among flagged | wrong vertebrae caught | F1 |",
                 "|---|---|---|---|---|"]
        for t, (flagged, hits, wrong, score) in flags.items():
            share = f"{100 * hits / flagged:.1f} %" if flagged else "-"
            section.append(f"| {t:g} | {flagged}/{reported} | {share} | {hits}/{wrong} | {score:.3f} |")
        sections[name] = [*section, ""]
        print("\n".join(sections[name]), flush=True)
    write_model_report(ROOT / "docs" / "SHARED_SETTINGS.md", text, sections)
    if args.write:
        for name, change in changes.items():
            path = MODELS_DIR / f"{name}.pt"
            print(f"{update_model_config(path, name, load_method(name).model_version, change)}: {change}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
