"""Integral benchmark rows of its own, as Tables II-III of Qin et al.:

* Table III: the localization branch alone (presence ignored) against localization + classification,
  with and without the shared consecutive-label decoder, on the held-out scans and the real CTs;
* Table II: classification mAP of the presence branch with and without the Bi-LSTM, on crops of the
  held-out scans. The paper trains two networks; ours trains two new classification branches
  (``spinelab train --method integral --head-from MODEL [--no-bilstm]``) on the packaged model's
  frozen encoder, so both see the same features, and lists the packaged model's own jointly trained
  branch beside them.

The network runs once per scan (``crop_votes``); the rows differ only in how the votes are decoded.
``evaluate_runs`` also serves ``benchmarks/integral_settings.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from monai.metrics import compute_average_precision

from spinelab.devices import autocast
from spinelab.eval.metrics import DatasetMetrics, evaluate_decodings
from spinelab.eval.report import metrics_table
from spinelab.io.datasets import dataset_scans
from spinelab.methods.base import StageTimer
from spinelab.methods.integral.data import Crops, prepare_case
from spinelab.methods.integral.method import IntegralMethod

CROP_SEED = 7  # the held-out crops of the mAP rows
DECODINGS = {  # row: centroids() options
    "localization alone (presence ignored)": {"presence": False},
    "localization + classification": {"decoder": False},
    "localization + classification + consecutive decoder": {"decoder": True},
}


def evaluate_runs(method: IntegralMethod, scans, runs: dict[str, dict], progress: bool = True,
                  desc: str = "integral runs") -> dict[str, DatasetMetrics]:
    """Metrics per named ``centroids()`` option set on ``scans``: (name, CT, truth) triples."""
    return evaluate_decodings(scans, lambda canonical: method.crop_votes(canonical, StageTimer()), method.centroids,
                              runs, method.face_margin, method.column_deviation_mm, progress, desc)


@torch.inference_mode()
def presence_map(methods: dict[str, IntegralMethod], data: str | Path, limit: int | None = None) -> dict[str, float]:
    """Classification mAP (mean over classes with a present crop of the average precision) per model,
    on the same un-augmented crops of every held-out case."""
    first = next(iter(methods.values()))
    cache = [prepare_case(ct, truth, first.config) for _, ct, truth in dataset_scans(data, limit)]
    crops = Crops(cache, first.config, CROP_SEED, augmented=False)
    images, presence = zip(*((image, present) for image, present, _ in (crops[i] for i in range(len(crops)))))
    images, presence = torch.stack(images), torch.stack(presence).numpy()
    scores = {}
    for name, method in methods.items():
        outputs = []
        for start in range(0, len(images), 4):
            with autocast(method.device):
                logits, _ = method.network(images[start:start + 4].to(method.device))
            outputs.append(torch.sigmoid(logits).cpu().numpy())
        probability = np.concatenate(outputs)
        present = presence.sum(axis=0) > 0
        precision = compute_average_precision(torch.from_numpy(probability[:, present]),
                                              torch.from_numpy(presence[:, present]), average="none")
        scores[name] = float(np.nanmean(precision))  # a class present in every crop has no AP
    return scores


def benchmark_sections(method: IntegralMethod, data: str | Path, limit: int | None = None,
                       variants: dict[str, IntegralMethod] | None = None, progress: bool = True,
                       real_cases: list | None = None, real_pooled: DatasetMetrics | None = None) -> tuple[str, dict]:
    """Markdown and raw numbers of the Table III rows (held-out and real CTs) and, given ``variants``
    'bilstm_head' and 'fc_head', the Table II mAP rows."""
    from spinelab.eval.benchmark import real_cases as load_real_cases

    chosen = "consecutive decoder" if method.config.decoder else "no decoder"
    heldout = evaluate_runs(method, dataset_scans(data, limit), DECODINGS, progress, "integral decodings")
    cases = real_cases if real_cases is not None else load_real_cases()
    real = evaluate_runs(method, [(case.name, case.ct, case.reference) for case in cases], DECODINGS, progress,
                         "integral decodings (real)")
    text = ["### integral: localization alone vs + classification (Table III of Qin et al.)", "",
            f"Same network, votes decoded three ways (the packaged model uses {chosen}, presence threshold "
            f"{method.config.presence_threshold:g}). Paper (CSI2014): localization network 62.7 %, 2.9 mm; "
            "localization + classification 89.0 %, 2.3 mm. The paper's localization-only row is a network trained "
            "without the classification loss; ours is the same network with its presence outputs ignored.", "",
            "Held-out synthetic scans:", "", metrics_table(heldout), "", "Real CTs, pooled:", "",
            metrics_table(real), ""]
    raw = {"heldout": {row: m.overall.to_dict() for row, m in heldout.items()},
           "real": {row: m.overall.to_dict() for row, m in real.items()}}
    heads = {"packaged model (Bi-LSTM, trained jointly)": method}
    names = {"bilstm_head": "Bi-LSTM branch on the frozen encoder", "fc_head": "fully connected branch (no Bi-LSTM) "
             "on the frozen encoder"}
    heads.update({names[key]: model for key, model in (variants or {}).items() if key in names})
    scores = presence_map(heads, data, limit)
    text += ["### integral: classification with and without the Bi-LSTM (Table II of Qin et al.)", "",
             "Classification mAP on 4 un-augmented crops of every held-out scan. Paper (CSI2014): 85.6 % without, "
             "90.3 % with the Bi-LSTM.", "", "| classification branch | mAP |", "|---|---|",
             *[f"| {name} | {100 * score:.1f} % |" for name, score in scores.items()], ""]
    if len(heads) < 3:
        text += ["The branch rows need the two head models (`scripts/train_default_model.sh` trains them; then "
                 "`--variant integral:bilstm_head=... --variant integral:fc_head=...`); this run did not have them.",
                 ""]
    raw["classification_map"] = scores
    return "\n".join(text), raw
