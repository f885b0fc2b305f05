"""Markdown tables of metrics, shared by the benchmark and the methods' own benchmark sections."""

from __future__ import annotations

import re
from pathlib import Path

from spinelab.eval.metrics import DatasetMetrics

METRICS_HEADER = ("| {first} | VerSe id-rate | CSI id-rate | mean error (mm) | median error (mm) | precision | recall |"
                  "{extra_names}\n|---|---|---|---|---|---|---|{extra_rule}")


def percent(value) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def millimetres(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def metrics_row(name: str, metrics: DatasetMetrics, extra: tuple[str, ...] = ()) -> str:
    overall = metrics.overall.to_dict()
    cells = [name, percent(overall["verse_id_rate"]), percent(overall["csi_id_rate"]),
             millimetres(overall["error_mm"]["mean"]), millimetres(overall["error_mm"]["median"]),
             percent(overall["precision"]), percent(overall["recall"]), *extra]
    return "| " + " | ".join(cells) + " |"


def metrics_table(rows: dict[str, DatasetMetrics], first: str = "setting", extra_columns: tuple[str, ...] = (),
                  extra_cells: dict[str, tuple[str, ...]] | None = None) -> str:
    """One row per named result: both id-rates, mean and median error, precision and recall (+ extra columns)."""
    header = METRICS_HEADER.format(first=first, extra_names="".join(f" {c} |" for c in extra_columns),
                                   extra_rule="---|" * len(extra_columns))
    extra_cells = extra_cells or {}
    return "\n".join([header, *(metrics_row(name, metrics, extra_cells.get(name, ())) for name, metrics in rows.items())])


def id_rate_then_error(metrics: DatasetMetrics) -> tuple[float, float]:
    """A sort key for settings chosen on validation scans: the VerSe id-rate, then the lower mean error."""
    mean = metrics.overall.error_stats()["mean"]
    return round(metrics.overall.verse_id_rate or 0.0, 4), -(mean if mean is not None else 1e9)


def write_model_report(doc: Path, head: list[str], sections: dict[str, list[str]]) -> None:
    """Write ``head``, then one section per model (each opening ``## NAME:``). The sections of models this
    run did not redo are kept from the report already at ``doc``, so a run over some models keeps the others'."""
    from spinelab.io.files import write_text

    earlier = {}
    if doc.exists():
        for part in re.split(r"(?m)^(?=## )", doc.read_text())[1:]:
            earlier[part.split(":")[0].removeprefix("## ")] = part.rstrip("\n").split("\n") + [""]
    merged = {**earlier, **sections}
    write_text(doc, "\n".join(head + [line for lines in merged.values() for line in lines]))


def publish_settings(doc: Path, lines: list[str], model: str | Path, method: str, version: int, changes: dict,
                     record: bool) -> None:
    """What a settings script ends with: its report written to ``doc`` and shown, and with ``record`` the
    chosen ``changes`` written into the model file (``update_model_config``: weights and writer kept)."""
    from spinelab.io.files import write_text
    from spinelab.training.model_file import update_model_config

    write_text(doc, "\n".join(lines))
    print("\n".join(lines))
    if record:
        print(f"{update_model_config(model, method, version, changes)}: {changes}")
