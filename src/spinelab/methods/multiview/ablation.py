"""Multi-view benchmark rows of its own: the number of views K, the bone stage on and off, and Wu
et al.'s Table 2 ablation.

``spinelab benchmark`` calls ``benchmark_sections`` through the method registry. Each scan's DRRs
are rendered once per K and bone stage, and the networks run once per rendering and pair of
networks: runs that share them differ only in decoding (voting, label correction).
``evaluate_runs`` also serves the validation sweeps in ``benchmarks/``.
"""

from __future__ import annotations

import copy
import dataclasses
import sys
from pathlib import Path

from tqdm import tqdm

from spinelab.eval.benchmark import evaluate_real
from spinelab.eval.benchmark import real_cases as load_real_cases
from spinelab.eval.metrics import DatasetMetrics, evaluate_dataset
from spinelab.eval.report import metrics_table
from spinelab.io.datasets import find_cases
from spinelab.methods.base import plausible
from spinelab.methods.multiview.method import MultiViewMethod
from spinelab.methods.multiview.views import make_views, render_normalized, rendering_volume

VIEW_COUNTS = (5, 10, 20)
ABLATION_STEPS = (  # (row, model key, weighted voting)
    ("baseline", "baseline", False),
    ("+ pretraining", "pretrained", False),
    ("+ Sequence Loss", "default", False),
    ("+ weighted voting (full)", "default", True),
)


def variant(method: MultiViewMethod, **changes) -> MultiViewMethod:
    """The same networks with other settings (``views``, ``weighted_voting``, ``bone_stage``, ...)."""
    changed = copy.copy(method)  # shares the networks and the bone stage
    changed.config = dataclasses.replace(method.config, **changes)
    return changed


def evaluate_runs(data: str | Path, runs: dict, limit: int | None = None,
                  progress: bool = True) -> dict[object, DatasetMetrics]:
    """Metrics per named run (a ``MultiViewMethod``) on a VerSe-layout dataset."""
    cases = find_cases(data)[:limit]
    pairs: dict[object, dict] = {name: {} for name in runs}
    for case in tqdm(cases, desc="multiview runs", unit="scan", disable=not progress, file=sys.stderr):
        ct, truth, _ = case.load()
        canonical = ct.canonical()
        volumes, rendered, outputs = {}, {}, {}
        for name, method in runs.items():
            stage = method.rendering_bone
            bone = id(stage) if stage else None
            if bone not in volumes:
                volumes[bone] = rendering_volume(canonical, method.config, stage)
            k = method.config.views
            if (k, bone) not in rendered:
                views = make_views(volumes[bone], method.config)
                rendered[k, bone] = (views, render_normalized(volumes[bone], views))
            views, images = rendered[k, bone]
            networks = (id(method.localizer), id(method.identifier), k, bone)
            if networks not in outputs:
                outputs[networks] = method.run_networks(images)
            centroids, details = method.decode(*outputs[networks], views)
            kept = plausible(centroids, canonical, details, method.face_margin, method.column_deviation_mm)
            pairs[name][case.case_id] = (kept, truth)
    return {name: evaluate_dataset(scan_pairs) for name, scan_pairs in pairs.items()}


ORACLE_CASES = "real CTs with a bone label map (the chest and its crops)"


def benchmark_sections(method: MultiViewMethod, data: str | Path, limit: int | None = None,
                       variants: dict[str, MultiViewMethod] | None = None, progress: bool = True,
                       real_cases: list | None = None, real_pooled: DatasetMetrics | None = None) -> tuple[str, dict]:
    """Markdown for the K sweep, the bone stage on and off (held-out and real CTs) and, given ``variants``
    'baseline' and 'pretrained', the ablation. ``real_cases`` and the model's own ``real_pooled`` metrics
    on them are the benchmark's (loaded and evaluated here when not given)."""
    models = {"default": method, **(variants or {})}
    runs = {f"K = {k}": variant(method, views=k, weighted_voting=True) for k in VIEW_COUNTS}
    setting, other = ("on", "off") if method.config.bone_stage else ("off", "on")
    bone_row = f"bone stage {other}"
    runs[bone_row] = variant(method, bone_stage=not method.config.bone_stage)
    runs.update({row: variant(models[key], views=method.config.views, weighted_voting=weighted)
                 for row, key, weighted in ABLATION_STEPS if key in models})
    results = evaluate_runs(data, runs, limit, progress)
    text = ["### multiview: number of views K (same networks)", "", metrics_table(
        {name: results[name] for name in runs if name.startswith("K =")}), ""]
    cases = real_cases if real_cases is not None else load_real_cases()
    own = real_pooled if real_pooled is not None else evaluate_real(method, cases)[0]["pooled"]
    real_metrics = {f"bone stage {setting} (the model's setting)": own,
                    bone_row: evaluate_real(runs[bone_row], cases)[0]["pooled"]}
    with_bone = [case for case in cases if case.bone is not None]
    if with_bone:  # how much of the real-CT error is the bone stage's: its mask against the label map's bone
        real_metrics[f"bone stage {setting}, {ORACLE_CASES}"] = evaluate_real(method, with_bone)[0]["pooled"]
        real_metrics[f"the label map's bone instead of the stage, {ORACLE_CASES}"] = evaluate_real(
            variant(method, bone_stage=False), [dataclasses.replace(c, ct=c.bone_only()) for c in with_bone])[0]["pooled"]
    text += [f"### multiview: the bone stage (same networks, K = {method.config.views})", "",
             "Held-out synthetic scans:", "", metrics_table({f"bone stage {setting} (the model's setting)": results[
                 f"K = {method.config.views}"], bone_row: results[bone_row]}), "",
             "Real CTs, pooled:", "", metrics_table(real_metrics), ""]
    ablation = [row for row, key, _ in ABLATION_STEPS if key in models]
    if len(ablation) == len(ABLATION_STEPS):
        text += [f"### multiview: ablation as Table 2 of Wu et al. (K = {method.config.views})", "",
                 metrics_table({row: results[row] for row in ablation}), ""]
    else:
        text += ["The multiview ablation rows need the ablation models (`ABLATION=1 scripts/train_default_model.sh`, "
                 "then `--variant baseline=... --variant pretrained=...`); this run did not have them.", ""]
    raw = {name: metrics.overall.to_dict() for name, metrics in results.items()}
    return "\n".join(text), raw
