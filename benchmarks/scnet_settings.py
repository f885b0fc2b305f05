"""The candidates of a trained scnet model's landmark sequence, chosen on synthetic validation scans only
and recorded in the model file's config: the paper keeps each heatmap's local maxima "above a certain
threshold" without saying which, nor how many. The networks run once per scan; each pair of peak
threshold and maxima per class decodes the same heatmaps, and the highest VerSe id-rate wins (ties: the
lower mean error). Writes docs/SCNET_SETTINGS.md; ``--write`` records the choice
in the model file (weights and writer unchanged, the change noted in its meta). No real CT is used.

Run: ``python benchmarks/scnet_settings.py VALIDATION_DIR [--model FILE] [--write]``.
"""

from __future__ import annotations

import argparse
import sys
from itertools import product
from pathlib import Path

from spinelab.eval.metrics import evaluate_decodings
from spinelab.eval.report import id_rate_then_error, metrics_table, publish_settings
from spinelab.io.datasets import dataset_scans
from spinelab.methods import MODELS_DIR, load_method
from spinelab.methods.scnet.train import MODEL_VERSION

ROOT = Path(__file__).resolve().parents[1]
THRESHOLDS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5)
PER_CLASS = (2, 4, 8)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("validation", help="synthetic validation set (VerSe layout)")
    parser.add_argument("--model", default=str(MODELS_DIR / "scnet.pt"), help="scnet model file")
    parser.add_argument("--write", action="store_true", help="record the choice in the model file")
    args = parser.parse_args()
    method = load_method("scnet", args.model)
    scans = list(dataset_scans(args.validation))
    runs = {(threshold, per_class): {"threshold": threshold, "per_class": per_class}
            for threshold, per_class in product(THRESHOLDS, PER_CLASS)}
    rows = evaluate_decodings(scans, method.localize, method.decode, runs, method.face_margin,
                              method.column_deviation_mm, desc="validation: candidates")
    chosen = max(rows, key=lambda key: id_rate_then_error(rows[key]))
    text = ["# Settings of the packaged scnet model", "",
            f"Written by `python benchmarks/scnet_settings.py`: the networks of `{Path(args.model).name}` on the "
            f"synthetic validation set `{args.validation}` ({len(scans)} scans). No real CT was used.", "",
            "The value a heatmap's local maximum needs to be a candidate of the landmark sequence, and how many of "
            "each heatmap's strongest maxima are, chosen by the VerSe id-rate (ties: the lower mean error): "
            f"**peak threshold {chosen[0]:g}, {chosen[1]} per class**.", "",
            metrics_table({f"peak threshold {t:g}, {n} per class": rows[t, n] for t, n in rows}), ""]
    changes = {"peak_threshold": chosen[0], "candidates_per_class": chosen[1]}
    publish_settings(ROOT / "docs" / "SCNET_SETTINGS.md", text, args.model, "scnet", MODEL_VERSION, changes, args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
