"""Python API with the same arguments as the CLI.

``spinelab.predict(["ct.nii.gz"], out="results", method="multiview")``,
``spinelab.train("dataset/", "run/", method="multiview", iterations=100)`` and
``spinelab.pretrain(...)`` resolve the method through the registry (``spinelab.methods``).

A batch never loses a scan: the output folder is checked before anything runs, missing inputs are
reported before the model loads, every input gets its own output name, any failure of one scan
(expected or not) is reported and the batch goes on, and ``spinelab_summary.csv`` in the output
folder lists every input with its status, rewritten after each scan.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from spinelab.errors import SpinelabError
from spinelab.io.files import write_text
from spinelab.io.images import nifti_stem, read_ct, scan_id
from spinelab.methods import DEFAULT_METHOD, Prediction, load_method, method_spec

SUMMARY_NAME = "spinelab_summary.csv"
SUMMARY_COLUMNS = ("input", "case", "status", "vertebrae", "labels", "min_confidence", "needs_review", "reasons",
                   "outputs", "message")
MAX_CASE_NAME = 100  # output names get suffixes and temporary prefixes; file systems stop at 255 bytes


@dataclass
class ScanRecord:
    """One input of a batch and what became of it: ``ok``, ``no vertebrae`` or ``failed``."""

    input: Path
    case: str
    status: str = "pending"
    prediction: Prediction | None = None
    outputs: dict[str, Path] = field(default_factory=dict)
    message: str = ""

    def row(self) -> dict[str, str]:
        centroids = self.prediction.centroids if self.prediction else None
        confidence = centroids.confidence if centroids is not None else None
        reasons = self.prediction.review if self.prediction else []
        return {"input": str(self.input), "case": self.case, "status": self.status,
                "vertebrae": "" if centroids is None else str(len(centroids)),
                "labels": "" if centroids is None else " ".join(centroids.names()),
                "min_confidence": "" if confidence is None or not len(confidence) else f"{confidence.min():.3f}",
                "needs_review": "" if self.prediction is None else ("yes" if reasons else "no"),
                "reasons": "; ".join(reasons), "outputs": " ".join(str(p) for p in self.outputs.values()),
                "message": self.message}


@dataclass
class BatchResult:
    records: list[ScanRecord] = field(default_factory=list)
    summary: Path | None = None

    @property
    def predictions(self) -> dict[str, Prediction]:
        return {r.case: r.prediction for r in self.records if r.prediction is not None}

    @property
    def outputs(self) -> dict[str, dict[str, Path]]:
        return {r.case: r.outputs for r in self.records if r.outputs}

    @property
    def failures(self) -> dict[str, str]:
        return {r.case: r.message for r in self.records if r.status == "failed"}


def check_output_folder(out: Path) -> Path:
    """``out`` is a writable folder or can be made as one; else a one-line error before any work.

    Nothing is created here: a batch that fails before its first scan leaves no empty folder.
    """
    if out.exists() and not out.is_dir():
        raise SpinelabError(f"{out}: output location is a file, not a folder")
    existing = next(parent for parent in (out, *out.absolute().parents) if parent.exists())
    if not existing.is_dir():
        raise SpinelabError(f"{out}: cannot create the output folder ({existing} is a file)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise SpinelabError(f"{out}: {'output folder' if existing == out else existing} is not writable")
    return out


def _short(name: str) -> str:
    if len(name) <= MAX_CASE_NAME:
        return name
    return f"{name[:MAX_CASE_NAME - 9]}_{hashlib.sha1(name.encode()).hexdigest()[:8]}"


def case_names(inputs: list[Path]) -> list[str]:
    """A distinct output name per input: its case id; where ids clash, the full file stem (``a`` and
    ``a_ct``), then its folders (``a/ct``, ``b/ct`` -> ``a_ct``, ``b_ct``), then a counter; at most 100
    characters."""
    def clashing(names: list[str]) -> set[str]:
        return {name for name in names if names.count(name) > 1}

    names = [scan_id(path) for path in inputs]
    names = [nifti_stem(path) if name in clashing(names) else name for name, path in zip(names, inputs)]
    bases, folders = list(names), [Path(path).resolve().parent.parts[1:] for path in inputs]
    for depth in range(1, max((len(f) for f in folders), default=0) + 1):
        if not clashing(names):
            break
        names = ["_".join([*folder[-depth:], base]) if name in clashing(names) else name
                 for name, base, folder in zip(names, bases, folders)]
    seen: dict[str, int] = {}
    unique = []
    for name in map(_short, names):
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return unique


def write_summary(records: list[ScanRecord], path: Path) -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SUMMARY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(record.row() for record in records)
    return write_text(path, buffer.getvalue())


def _run_scan(record: ScanRecord, runner, out: Path | None, method: str) -> None:
    from spinelab.outputs import write_outputs

    ct = read_ct(record.input)
    prediction = runner.predict(ct)
    record.prediction = prediction
    if out is not None:
        start = time.perf_counter()
        record.outputs = write_outputs(ct, prediction.centroids, out, record.case, title=f"{record.case} ({method})",
                                       label_map=prediction.label_map)
        prediction.timings["write"] = time.perf_counter() - start
    record.status = "ok" if len(prediction.centroids) else "no vertebrae"
    record.message = "" if len(prediction.centroids) else prediction.details.get("no_spine", "no vertebrae found")


def predict(cts, out: str | Path | None = None, method: str = DEFAULT_METHOD, model: str | None = None,
            device: str = "cpu", progress: bool = True) -> BatchResult:
    """Predict every CT (files or DICOM folders); a bad scan is reported and the batch goes on."""
    inputs = [Path(p) for p in ([cts] if isinstance(cts, (str, Path)) else cts)]
    out = check_output_folder(Path(out)) if out is not None else None
    result = BatchResult([ScanRecord(path, name) for path, name in zip(inputs, case_names(inputs))],
                         out / SUMMARY_NAME if out is not None else None)
    for record in result.records:  # what cannot be read at all is reported before the model loads
        problem = ("no such file or folder" if not record.input.exists() else
                   "cannot be read (permission denied)" if not os.access(record.input, os.R_OK) else None)
        if problem:
            record.status, record.message = "failed", f"{record.input}: {problem}"
            tqdm.write(f"spinelab: skipped {record.input}: {problem}", file=sys.stderr)
    pending = [record for record in result.records if record.status == "pending"]
    runner = load_method(method, model, device) if pending else None
    bar = tqdm(pending, desc="predict", unit="scan", disable=not progress, file=sys.stderr)
    for record in bar:
        bar.set_postfix_str(record.case)
        try:
            _run_scan(record, runner, out, method)
        except KeyboardInterrupt:
            record.status, record.message = "failed", "interrupted"
            raise
        except Exception as exc:  # noqa: BLE001 - one scan's failure, expected or not, never ends the batch
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if not isinstance(exc, SpinelabError):
                reason = f"internal error: {type(exc).__name__}: {reason}"
            record.status, record.message = "failed", reason
            tqdm.write(f"spinelab: skipped {record.input}: {reason}", file=sys.stderr)
        finally:
            if result.summary is not None:
                write_summary(result.records, result.summary)
    if result.summary is not None and not pending:
        write_summary(result.records, result.summary)
    return result


def train(data: str | Path, out: str | Path, method: str = DEFAULT_METHOD, **options) -> Path:
    """Train ``method`` on a VerSe/CSI2014-layout dataset; ``options`` are its ``spinelab train`` options."""
    return method_spec(method).resolve("train")(data=data, out=Path(out), **options)


def pretrain(data: str | Path, out: str | Path, method: str = DEFAULT_METHOD, **options) -> Path:
    """Pretrain ``method``'s encoder where it has such a step (multiview: SimSiam on DRR pairs)."""
    return method_spec(method).resolve("pretrain")(data=data, out=Path(out), **options)
