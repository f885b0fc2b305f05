"""Settings of a trained di2in model that need no retraining, chosen on synthetic validation scans only
and recorded in the model file's config:

1. ``presence_threshold``: the heatmap peak a class needs to count as present (§2.4 of the issue: chosen
   on validation data);
2. ``passes`` and ``alpha``: how many message-passing iterations, with what discount (the paper gives
   neither: "several" iterations, alpha in (0, 1));
3. ``sparsity_lambda`` and ``replace_consistent``: the l1 weight of the sparsity step, and whether it
   replaces every landmark (the paper) or only the outliers.

The network runs once per scan; every setting decodes the same heatmaps, and the highest VerSe id-rate
wins (ties: the lower mean error). Writes docs/DI2IN_SETTINGS.md; ``--write`` records the choice in the
model file (weights and writer unchanged, the change noted in its meta). No real CT is used.

Run: ``python benchmarks/di2in_settings.py VALIDATION_DIR [--model FILE] [--write]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from itertools import product
from pathlib import Path

from spinelab.eval.metrics import evaluate_decodings
from spinelab.eval.report import id_rate_then_error, metrics_table, publish_settings
from spinelab.io.datasets import dataset_scans
from spinelab.methods import MODELS_DIR, load_method
from spinelab.methods.base import StageTimer
from spinelab.methods.di2in.train import MODEL_VERSION

ROOT = Path(__file__).resolve().parents[1]
THRESHOLDS = (0.3, 0.4, 0.5, 0.6)
PASSING = ((0, 0.5), (2, 0.5), (5, 0.3), (5, 0.5))  # (passes, alpha)
SPARSITY = ((0.1, True), (1.0, True), (10.0, True), (1.0, False), (10.0, False))  # (lambda, replace consistent)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("validation", help="synthetic validation set (VerSe layout)")
    parser.add_argument("--model", default=str(MODELS_DIR / "di2in.pt"), help="di2in model file")
    parser.add_argument("--write", action="store_true", help="record the choice in the model file")
    args = parser.parse_args()
    method = load_method("di2in", args.model)
    base = method.config
    # First the threshold and the passing with sparsity off, then the sparsity step on the best of those.
    passing = {(t, p, a): dataclasses.replace(base, presence_threshold=t, passes=p, alpha=a, sparsity=False,
                                              message_passing=p > 0)
               for t, (p, a) in product(THRESHOLDS, PASSING)}
    scans = list(dataset_scans(args.validation))

    def decode(output, config):
        method.config = config
        return method.decode(*output)

    def network(canonical):
        return method.heatmaps(canonical, StageTimer())

    runs = {key: {"config": config} for key, config in passing.items()}
    first = evaluate_decodings(scans, network, decode, runs, method.face_margin, desc="validation: passing")
    best = max(passing, key=lambda k: id_rate_then_error(first[k]))
    sparse = {(lam, replace): dataclasses.replace(passing[best], sparsity=True, sparsity_lambda=lam,
                                                  replace_consistent=replace) for lam, replace in SPARSITY}
    runs = {key: {"config": config} for key, config in sparse.items()}
    second = evaluate_decodings(scans, network, decode, runs, method.face_margin, desc="validation: sparsity")
    rows = {**{("passing",) + key: first[key] for key in passing}, **{("sparsity",) + key: second[key] for key in sparse}}
    configs = {**{("passing",) + key: config for key, config in passing.items()},
               **{("sparsity",) + key: config for key, config in sparse.items()}}
    chosen = max(rows, key=lambda k: id_rate_then_error(rows[k]))
    config = configs[chosen]

    def name(key):
        c = configs[key]
        return (f"threshold {c.presence_threshold:g}, {c.passes} passes, alpha {c.alpha:g}, sparsity "
                + (f"lambda {c.sparsity_lambda:g}, {'all replaced' if c.replace_consistent else 'outliers only'}"
                   if c.sparsity else "off"))

    text = ["# Settings of the packaged di2in model", "",
            f"Written by `python benchmarks/di2in_settings.py`: the network of `{Path(args.model).name}` on the "
            f"synthetic validation set `{args.validation}` ({len(scans)} scans). No real CT was used.", "",
            "Presence threshold and message passing first (sparsity off), then the sparsity step on the best of "
            "those; chosen by the VerSe id-rate (ties: the lower mean error): **" + name(chosen) + "**.", "",
            metrics_table({name(key): rows[key] for key in rows}), ""]
    changes = {key: getattr(config, key) for key in ("presence_threshold", "passes", "alpha", "message_passing",
                                                      "sparsity", "sparsity_lambda", "replace_consistent")}
    publish_settings(ROOT / "docs" / "DI2IN_SETTINGS.md", text, args.model, "di2in", MODEL_VERSION, changes, args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
