"""Each method on synthetic scans cut like the real chest crops, to tell a short field of view from the
real-CT gap.

The real crops of the chest CT (docs/BENCHMARKS.md) get few vertebrae right, or none. Here synthetic
thoracolumbar CTs (the generator's defaults otherwise: every contrast phase, pathology and resolution)
are scored whole, then cut just beyond the same levels as the real crops (``CHEST_CROPS``), each crop
against the body centroids of the vertebrae it shows whole, as for the real ones. Writes
docs/SYNTHETIC_CROPS.md. No real CT is used and nothing is chosen here.

Run: ``python benchmarks/synthetic_crops.py [--cases 8] [--seed 7000] [--methods multiview,dense,integral,di2in,scnet]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from spinelab import vertebrae
from spinelab.eval.benchmark import CHEST_CROPS, crop_beyond, uncut_labels
from spinelab.eval.metrics import evaluate_dataset
from spinelab.eval.report import metrics_table, write_model_report
from spinelab.methods import load_method
from spinelab.synth import SynthOptions, generate_case

ROOT = Path(__file__).resolve().parents[1]


def synthetic_crops(cases: int, seed: int) -> dict[str, list[tuple]]:
    """Per field of view ('whole' and each of ``CHEST_CROPS`` a case holds): (CT, whole-vertebra centroids)."""
    found = {"whole": [], **{crop: [] for crop in CHEST_CROPS}}
    for index in tqdm(range(cases), desc="synthetic scans", unit="scan", file=sys.stderr):
        case = generate_case(seed + index, SynthOptions(fov="thoracolumbar"))
        ct, mask = case.ct.canonical(), case.labels.reoriented(("R", "A", "S"))
        found["whole"].append((ct, case.centroids.select(uncut_labels(mask.array))))
        present = {int(label) for label in np.unique(mask.array)[1:]}
        for crop, (first, last) in CHEST_CROPS.items():
            if {vertebrae.LABELS[first], vertebrae.LABELS[last]} <= present:
                box = crop_beyond(mask, first, last)
                found[crop].append((ct.cropped(box), case.centroids.select(uncut_labels(mask.cropped(box).array))))
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--seed", type=int, default=7000)
    parser.add_argument("--methods", default="multiview,dense,integral,di2in,scnet")
    args = parser.parse_args(argv)
    crops = synthetic_crops(args.cases, args.seed)
    counts = ", ".join(f"{name} {len(items)}" for name, items in crops.items())
    text = ["# Synthetic scans cut like the real chest crops", "",
            f"Written by `benchmarks/synthetic_crops.py --cases {args.cases} --seed {args.seed}`. {args.cases} "
            "synthetic thoracolumbar CTs (seeds from " f"{args.seed}), scored whole and cut just beyond the levels of "
            "the real chest crops (" + ", ".join(f"{crop}: {a}-{b}" for crop, (a, b) in CHEST_CROPS.items()) +
            f"), where a scan holds both levels. Fields of view: {counts}. 'no vertebrae' counts the scans a method "
            "returned nothing for. No real CT is used.", ""]
    sections = {}
    for name in args.methods.split(","):
        method = load_method(name)
        rows, empty = {}, {}
        for crop, items in crops.items():
            pairs = {}
            for index, (ct, reference) in enumerate(tqdm(items, desc=f"{name} {crop}", unit="scan", file=sys.stderr)):
                pairs[f"{crop} {index}"] = (method.predict(ct).centroids, reference)
            if pairs:
                rows[crop] = evaluate_dataset(pairs)
                empty[crop] = (str(len(pairs)), str(sum(len(prediction) == 0 for prediction, _ in pairs.values())))
        sections[name] = [f"## {name}:", "", metrics_table(rows, first="field of view",
                                                            extra_columns=("scans", "no vertebrae"), extra_cells=empty), ""]
    write_model_report(ROOT / "docs" / "SYNTHETIC_CROPS.md", text, sections)
    print((ROOT / "docs" / "SYNTHETIC_CROPS.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
