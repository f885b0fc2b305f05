"""Settings of a trained integral model that need no retraining, chosen on synthetic validation scans
only and recorded in the model file's config:

1. ``presence_threshold``: the presence probability a crop's class needs before its coordinate votes
   (the paper chooses it on validation data too);
2. ``separation_mm``: two classes' clusters closer than this are taken for one vertebra;
3. ``decoder``: whether the clusters are relabelled as one consecutive run by the shared decoder.

The network runs once per scan; every setting decodes the same votes, and the highest VerSe id-rate
wins (ties: no decoder, then the lower threshold, then the smaller separation).

Writes docs/INTEGRAL_SETTINGS.md; ``--write`` records the choice in the model file (weights and writer
unchanged, the change noted in its meta). No real CT is used.

Run: ``python benchmarks/integral_settings.py VALIDATION_DIR [--model FILE] [--write]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from spinelab.eval.report import metrics_table, publish_settings
from spinelab.methods import MODELS_DIR, load_method
from spinelab.io.datasets import dataset_scans
from spinelab.methods.integral.ablation import evaluate_runs
from spinelab.methods.integral.train import MODEL_VERSION

ROOT = Path(__file__).resolve().parents[1]
THRESHOLDS = (0.3, 0.5, 0.7, 0.9)
SEPARATIONS = (8.0, 12.0, 16.0)
DECODER = (False, True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("validation", help="synthetic validation set (VerSe layout)")
    parser.add_argument("--model", default=str(MODELS_DIR / "integral.pt"), help="integral model file")
    parser.add_argument("--write", action="store_true", help="record the choice in the model file")
    args = parser.parse_args()
    method = load_method("integral", args.model)
    settings = {(threshold, separation, decoder): {"threshold": threshold, "separation": separation,
                                                   "decoder": decoder}
                for decoder in DECODER for threshold in THRESHOLDS for separation in SEPARATIONS}
    results = evaluate_runs(method, dataset_scans(args.validation), settings, desc="validation")
    chosen = max(settings, key=lambda s: (round(results[s].overall.verse_id_rate or 0.0, 4), -s[2], -s[0], -s[1]))
    n_scans = len(next(iter(results.values())).scans)
    text = ["# Settings of the packaged integral model", "",
            f"Written by `python benchmarks/integral_settings.py`: the network of `{Path(args.model).name}` on the "
            f"synthetic validation set `{args.validation}` ({n_scans} scans). No real CT was used.", "",
            "## Presence threshold, separation and consecutive decoder", "",
            "Chosen by the VerSe id-rate (ties: no decoder, then the lower threshold, then the smaller separation): "
            f"presence threshold **{chosen[0]:g}**, separation **{chosen[1]:g} mm**, consecutive decoder "
            f"**{'on' if chosen[2] else 'off'}**.", "",
            metrics_table({f"threshold {t:g}, separation {d:g} mm, decoder {'on' if on else 'off'}": results[(t, d, on)]
                           for t, d, on in settings}), ""]
    changes = {"presence_threshold": chosen[0], "separation_mm": chosen[1], "decoder": chosen[2]}
    publish_settings(ROOT / "docs" / "INTEGRAL_SETTINGS.md", text, args.model, "integral", MODEL_VERSION, changes,
                     args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
