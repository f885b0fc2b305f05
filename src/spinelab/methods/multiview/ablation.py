"""Multi-view benchmark rows of its own: the number of views K and Wu et al.'s Table 2 ablation.

``spinelab benchmark`` calls ``benchmark_sections`` through the method registry. Each scan's DRRs
are rendered once per K, and the networks run once per K and pair of networks: runs that share
them differ only in decoding (voting, label correction). ``evaluate_runs`` also serves the
validation sweeps in ``benchmarks/``.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from tqdm import tqdm

from spinelab.eval.metrics import DatasetMetrics, evaluate_dataset
from spinelab.eval.report import metrics_table
from spinelab.io.datasets import find_cases
from spinelab.methods.base import within_volume
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
    """The same networks decoded with other settings (``views``, ``weighted_voting``, ...)."""
    config = dataclasses.replace(method.config, **changes)
    return MultiViewMethod(method.localizer, method.identifier, config, method.device, method.meta)


def evaluate_runs(data: str | Path, runs: dict, limit: int | None = None,
                  progress: bool = True) -> dict[object, DatasetMetrics]:
    """Metrics per named run (a ``MultiViewMethod``) on a VerSe-layout dataset."""
    cases = find_cases(data)[:limit]
    rendering_config = next(iter(runs.values())).config
    pairs: dict[object, dict] = {name: {} for name in runs}
    for case in tqdm(cases, desc="multiview runs", unit="scan", disable=not progress, file=sys.stderr):
        ct, truth, _ = case.load()
        canonical = ct.canonical()
        volume = rendering_volume(canonical, rendering_config)
        rendered, outputs = {}, {}
        for name, method in runs.items():
            k = method.config.views
            if k not in rendered:
                views = make_views(volume, method.config)
                rendered[k] = (views, render_normalized(volume, views))
            views, images = rendered[k]
            networks = (id(method.localizer), id(method.identifier), k)
            if networks not in outputs:
                outputs[networks] = method.run_networks(images)
            centroids, details = method.decode(*outputs[networks], views)
            pairs[name][case.case_id] = (within_volume(centroids, canonical, details), truth)
    return {name: evaluate_dataset(scan_pairs) for name, scan_pairs in pairs.items()}


def benchmark_sections(method: MultiViewMethod, data: str | Path, limit: int | None = None,
                       variants: dict[str, MultiViewMethod] | None = None, progress: bool = True) -> tuple[str, dict]:
    """Markdown for the K sweep and, given ``variants`` 'baseline' and 'pretrained', the ablation."""
    models = {"default": method, **(variants or {})}
    runs = {f"K = {k}": variant(method, views=k, weighted_voting=True) for k in VIEW_COUNTS}
    runs.update({row: variant(models[key], views=method.config.views, weighted_voting=weighted)
                 for row, key, weighted in ABLATION_STEPS if key in models})
    results = evaluate_runs(data, runs, limit, progress)
    text = ["### multiview: number of views K (same networks)", "", metrics_table(
        {name: results[name] for name in runs if name.startswith("K =")}), ""]
    ablation = [row for row, key, _ in ABLATION_STEPS if key in models]
    if len(ablation) == len(ABLATION_STEPS):
        text += [f"### multiview: ablation as Table 2 of Wu et al. (K = {method.config.views})", "",
                 metrics_table({row: results[row] for row in ablation}), ""]
    else:
        text += ["The multiview ablation rows need the ablation models (`ABLATION=1 scripts/train_default_model.sh`, "
                 "then `--variant baseline=... --variant pretrained=...`); this run did not have them.", ""]
    raw = {name: metrics.overall.to_dict() for name, metrics in results.items()}
    return "\n".join(text), raw
