"""di2in benchmark rows of its own, as Table 1 of Yang et al.: DI2IN alone, + message passing, and
+ message passing + sparsity refinement, on the held-out scans and the real CTs. The network runs
once per scan (``heatmaps``); the rows differ only in how its heatmaps are decoded.
"""

from __future__ import annotations

from pathlib import Path

from spinelab.eval.metrics import DatasetMetrics, evaluate_decodings
from spinelab.eval.report import metrics_table
from spinelab.io.datasets import dataset_scans
from spinelab.methods.base import StageTimer
from spinelab.methods.di2in.method import DI2INMethod

DECODINGS = {  # row: decode() options
    "DI2IN": {"message_passing": False, "sparsity": False},
    "DI2IN + message passing": {"message_passing": True, "sparsity": False},
    "DI2IN + message passing + sparsity": {"message_passing": True, "sparsity": True},
}
PAPER_ROWS = ("Paper (Table 1), set 1 (112 real CTs for training, 112 for testing): 76 / 77 / 80 %, "
              "13.6 / 11.7 / 9.1 mm; set 2 (242 for training, 60 for testing): 85 %, 8.6 mm for the full method.")


def evaluate_runs(method: DI2INMethod, scans, runs: dict[str, dict], progress: bool = True,
                  desc: str = "di2in decodings") -> dict[str, DatasetMetrics]:
    """Metrics per named ``decode()`` option set on ``scans``: (name, CT, truth) triples."""
    return evaluate_decodings(scans, lambda canonical: method.heatmaps(canonical, StageTimer()),
                              lambda output, **options: method.decode(*output, **options), runs, method.face_margin,
                              method.column_deviation_mm, progress, desc)


def benchmark_sections(method: DI2INMethod, data: str | Path, limit: int | None = None, variants=None,
                       progress: bool = True, real_cases: list | None = None,
                       real_pooled: DatasetMetrics | None = None) -> tuple[str, dict]:
    """Markdown and raw numbers of the Table 1 rows on the held-out scans and the real CTs."""
    from spinelab.eval.benchmark import real_cases as load_real_cases

    heldout = evaluate_runs(method, dataset_scans(data, limit), DECODINGS, progress)
    cases = real_cases if real_cases is not None else load_real_cases()
    real = evaluate_runs(method, [(case.name, case.ct, case.reference) for case in cases], DECODINGS,
                              progress, "di2in decodings (real)")
    config = method.config
    text = ["### di2in: DI2IN alone, + message passing, + sparsity (Table 1 of Yang et al.)", "",
            f"Same network, heatmaps decoded three ways (presence threshold {config.presence_threshold:g}, "
            f"alpha {config.alpha:g}, {config.passes} passes, lambda {config.sparsity_lambda:g}). {PAPER_ROWS}", "",
            "Held-out synthetic scans:", "", metrics_table(heldout), "", "Real CTs, pooled:", "",
            metrics_table(real), ""]
    raw = {"heldout": {row: m.overall.to_dict() for row, m in heldout.items()},
           "real": {row: m.overall.to_dict() for row, m in real.items()}}
    return "\n".join(text), raw
