"""Choose each packaged model's column test (``spinelab.decoders.chain``) on synthetic validation scans.

A centroid is kept only if it lies within the bound of the segment joining its neighbours (real
spines: 99.9 % within 13.7 mm, see the chain module). Each method is scored with the test off and
at 15, 20 and 30 mm on each validation set; the highest mean VerSe id-rate over the sets wins
(ties: the higher mean precision, then the looser test). multiview tests its fused candidates
before it labels them, so its runs re-decode the same network outputs; the other methods label
first, so the test drops centroids from one prediction per scan. Writes docs/COLUMN_TEST.md; ``--write`` records ``column_deviation_mm`` in the model
files (weights and writer unchanged, the change noted in their meta). No real CT is used.

Run: ``python benchmarks/column_test.py VALIDATION_DIR [VALIDATION_DIR ...] [--methods multiview,dense,integral,di2in,scnet] [--write]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from spinelab.eval.metrics import DatasetMetrics, evaluate_dataset
from spinelab.eval.report import metrics_table, write_model_report
from spinelab.io.datasets import find_cases
from spinelab.methods import MODELS_DIR, load_method
from spinelab.methods.base import on_column
from spinelab.methods.multiview.ablation import evaluate_runs, variant
from spinelab.training.model_file import update_model_config

ROOT = Path(__file__).resolve().parents[1]
BOUNDS = (None, 15.0, 20.0, 30.0)


def _name(bound: float | None) -> str:
    return "off" if bound is None else f"{bound:g} mm"


def multiview_runs(folder: str) -> dict[float | None, DatasetMetrics]:
    method = load_method("multiview")
    runs = {bound: variant(method, column_deviation_mm=bound) for bound in BOUNDS}
    return evaluate_runs(folder, runs)


def labelled_runs(name: str, folder: str) -> dict[float | None, DatasetMetrics]:
    """Predict once per scan with the test off, then apply each bound to the centroids."""
    method = load_method(name)
    method.config.column_deviation_mm = None
    pairs = {bound: {} for bound in BOUNDS}
    for case in tqdm(find_cases(folder), desc=f"{name} validation", unit="scan", file=sys.stderr):
        ct, truth, _ = case.load()
        found = method.predict(ct).centroids
        for bound in BOUNDS:
            pairs[bound][case.case_id] = (on_column(found, {}, bound), truth)
    return {bound: evaluate_dataset(p) for bound, p in pairs.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("validation", nargs="+", help="synthetic validation sets (VerSe layout)")
    parser.add_argument("--methods", default="multiview,dense,integral,di2in,scnet")
    parser.add_argument("--write", action="store_true", help="record the choices in the packaged model files")
    args = parser.parse_args()
    sets = ", ".join(f"`{folder}` ({len(find_cases(folder))} scans)" for folder in args.validation)
    text = ["# Column test of the packaged models", "",
            f"Written by `python benchmarks/column_test.py`: each packaged model on the synthetic validation sets {sets} "
            "with the column test off and at each bound. Chosen by the highest mean VerSe id-rate over the sets (ties: "
            "the higher mean precision, then the looser test). No real CT was used.", ""]
    chosen, sections = {}, {}
    for name in args.methods.split(","):
        results = {folder: multiview_runs(folder) if name == "multiview" else labelled_runs(name, folder)
                   for folder in args.validation}
        mean = lambda bound, measure: round(sum(measure(r[bound].overall) or 0.0 for r in results.values())  # noqa: E731
                                            / len(results), 3)
        best = max(BOUNDS, key=lambda b: (mean(b, lambda s: s.verse_id_rate), mean(b, lambda s: s.precision),
                                          b is None, b or 0.0))
        chosen[name] = best
        sections[name] = [f"## {name}: **{_name(best)}**", ""]
        for folder, runs in results.items():
            sections[name] += [f"`{folder}`:", "",
                               metrics_table({_name(b): metrics for b, metrics in runs.items()}, first="column test"), ""]
        print("\n".join(sections[name]), flush=True)
    write_model_report(ROOT / "docs" / "COLUMN_TEST.md", text, sections)
    if args.write:
        for name, bound in chosen.items():
            method = load_method(name)
            path = MODELS_DIR / f"{name}.pt"
            print(f"{update_model_config(path, name, method.model_version, {'column_deviation_mm': bound})}: "
                  f"column_deviation_mm = {bound}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
