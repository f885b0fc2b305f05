"""Choose the spine-presence and review thresholds on synthetic data, never on the real CTs.

Positives are a synthetic validation set; negatives are volumes with no spine made from it and
from scratch: Gaussian and uniform noise, a lateral crop beside the spine, slices below the
lowest vertebra, a water sphere with a skull-like shell, and a 4 x 4 x 4 volume. For every
scan the default multiview model's evidence is collected without any presence filter; the tables
show how candidate thresholds separate spines from no spines (a spine needs a candidate that the
localizer scores high and one that the identifier labels with confidence), and how often vertebrae
below a confidence are wrongly labelled. Writes docs/REVIEW_THRESHOLDS.md, headed by the settings
the model file holds. Run::

    spinelab synth --n 30 --seed 2000 --out runs/default/validation --workers 2
    python benchmarks/review_thresholds.py runs/default/validation [MODEL_FILE]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from spinelab.eval.metrics import evaluate_scan
from spinelab.io.datasets import find_cases
from spinelab.io.files import write_text
from spinelab.io.volume import CTVolume
from spinelab.methods import load_method
from spinelab.methods.multiview.ablation import variant


def negatives(cases, rng) -> dict[str, CTVolume]:
    volumes = {}
    affine = np.diag([1.5, 1.5, 2.0, 1.0])
    volumes["gaussian noise"] = CTVolume(rng.normal(0.0, 400.0, (200, 200, 150)).astype(np.float32), affine)
    volumes["uniform noise"] = CTVolume(rng.uniform(-1000.0, 2000.0, (200, 200, 150)).astype(np.float32), affine)
    grid = np.stack(np.meshgrid(*[np.arange(n) - n / 2 for n in (120, 120, 100)], indexing="ij"), -1) * 2.0
    radius = np.linalg.norm(grid, axis=-1)
    head = np.where(radius < 90, 40.0, -1000.0)
    head[(radius >= 84) & (radius < 90)] = 1400.0
    volumes["head sphere"] = CTVolume(head.astype(np.float32), np.diag([2.0, 2.0, 2.0, 1.0]))
    volumes["tiny 4x4x4"] = CTVolume(rng.normal(0.0, 300.0, (4, 4, 4)).astype(np.float32), np.eye(4))
    for case in cases[:6]:
        ct, centroids, _ = case.load()
        canonical = ct.canonical()
        voxels = centroids.to_voxel(canonical.affine)
        x = canonical.shape[0]
        spine_x = np.median(voxels[:, 0])
        side = slice(0, int(x * 0.25)) if spine_x > x / 2 else slice(int(x * 0.75), x)
        volumes[f"lateral crop {case.case_id}"] = canonical.cropped((side, slice(None), slice(None)))
        lowest = int(voxels[:, 2].min() - 40.0 / canonical.spacing[2])
        if lowest > 20:
            volumes[f"below the spine {case.case_id}"] = canonical.cropped((slice(None), slice(None), slice(0, lowest)))
    return volumes


def evidence(prediction) -> dict:
    details = prediction.details
    return {"n": len(prediction.centroids), "score": np.array(details.get("detection_score", [])),
            "support": np.array(details.get("support_fraction", [])),
            "agreement": np.array(details.get("view_agreement", [])),
            "label_confidence": np.array(details.get("label_confidence", []))}


def flag_table(values: np.ndarray, wrong: np.ndarray, title: str, thresholds) -> list[str]:
    """Markdown rows: how many vertebrae a threshold on ``values`` flags, and how many are wrong on either side."""
    share = lambda mask: f"{100 * wrong[mask].mean():.1f} %" if mask.any() else "-"  # noqa: E731
    lines = ["", f"| {title} | vertebrae flagged | wrong among flagged | wrong among the rest |", "|---|---|---|---|"]
    for threshold in thresholds:
        flagged = values < threshold
        lines.append(f"| {threshold} | {flagged.sum()}/{len(values)} | {share(flagged)} | {share(~flagged)} |")
    return lines


DOC = Path(__file__).resolve().parents[1] / "docs" / "REVIEW_THRESHOLDS.md"


def main(data: str, model: str | None = None) -> None:
    packaged = load_method("multiview", model)
    method = variant(packaged, min_detection_score=0.0, spine_detection_score=0.0, spine_label_confidence=0.0)
    cases = find_cases(data)
    rng = np.random.default_rng(0)
    positives, vertebrae_rows = {}, []
    for case in cases:
        ct, truth, _ = case.load()
        prediction = method.predict(ct)
        positives[case.case_id] = evidence(prediction)
        records = {r.label: r for r in evaluate_scan(prediction.centroids, truth).records}
        candidate = {label: i for i, label in enumerate(prediction.details["labels"])}
        for label, confidence in zip(prediction.centroids.labels, prediction.centroids.confidence):
            i = candidate[int(label)]
            vertebrae_rows.append((confidence, positives[case.case_id]["score"][i],
                                   positives[case.case_id]["agreement"][i], bool(records[int(label)].verse_hit)))
    negative = {name: evidence(method.predict(ct)) for name, ct in negatives(cases, rng).items()}
    config = packaged.config
    lines = ["# Review and spine-presence thresholds", "",
             f"Written by `python benchmarks/review_thresholds.py {data}` ({len(cases)} synthetic validation scans, "
             f"{len(negative)} synthetic no-spine volumes; the multiview model {model or 'packaged with spinelab'} "
             "with its presence filter off). The model's settings (`MultiViewConfig`): candidates kept from a "
             f"localizer score of {config.min_detection_score:g}; a spine needs a candidate scored "
             f"{config.spine_detection_score:g} and one labelled with confidence {config.spine_label_confidence:g}; "
             f"a vertebra labelled with confidence below {config.review_confidence:g} needs review, and so does one "
             f"on whose label fewer than {config.review_view_agreement:.0%} of its views agree. No real CT was used.", ""]
    lines += ["| scan | kind | vertebrae | median detection score | max detection score | median support | "
              "max label confidence |", "|---|---|---|---|---|---|---|"]
    for kind, group in (("spine", positives), ("no spine", negative)):
        for name, e in group.items():
            median = f"{np.median(e['score']):.3f}" if len(e["score"]) else "-"
            top = f"{e['score'].max():.3f}" if len(e["score"]) else "-"
            support = f"{np.median(e['support']):.2f}" if len(e["support"]) else "-"
            sure = f"{e['label_confidence'].max():.2f}" if len(e["label_confidence"]) else "-"
            lines.append(f"| {name} | {kind} | {e['n']} | {median} | {top} | {support} | {sure} |")
    lines += ["", "| candidates kept from score | a spine needs a candidate scored | and one labelled with confidence | "
              "spines kept | no-spine scans rejected | candidates kept in spines |", "|---|---|---|---|---|---|"]
    total = sum(len(e["score"]) for e in positives.values())
    for keep in (0.4, 0.5, 0.6):
        for presence in (0.6, 0.7, 0.8):
            for sure in (0.0, 0.3, 0.4, 0.5):
                def spine(e):
                    kept = e["score"] >= keep
                    return bool(kept.any()) and e["score"][kept].max() >= presence and \
                        e["label_confidence"][kept].max() >= sure
                kept = sum(spine(e) for e in positives.values())
                rejected = sum(not spine(e) for e in negative.values())
                candidates = sum(int((e["score"] >= keep).sum()) for e in positives.values() if spine(e))
                lines.append(f"| {keep} | {presence} | {sure} | {kept}/{len(positives)} | {rejected}/{len(negative)} | "
                             f"{candidates}/{total} |")
    rows = np.array(vertebrae_rows, dtype=float)
    lines += flag_table(rows[:, 0], rows[:, 3] == 0, "confidence below", (0.3, 0.4, 0.5, 0.6, 0.7))
    lines += flag_table(rows[:, 2], rows[:, 3] == 0, "view agreement below", (0.3, 0.5, 0.7))
    write_text(DOC, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main(*(sys.argv[1:3] if len(sys.argv) > 1 else ["runs/default/validation"]))
