"""Python API with the same arguments as the CLI.

``spinelab.predict(["ct.nii.gz"], out="results", method="multiview")``,
``spinelab.train("dataset/", "run/", method="multiview", iterations=100)`` and
``spinelab.pretrain(...)`` resolve the method through the registry (``spinelab.methods``).

A batch never loses a scan: the output folder is checked before anything runs, missing inputs are
reported before the model loads, every input gets its own output name, any failure of one scan
(expected or not) is reported and the batch goes on, and ``spinelab_summary.csv`` in the output
folder lists every input with its status, rewritten after each scan by the one process that owns it.

Inputs are files, folders (searched recursively), globs or manifests (``spinelab.io.inputs``).
``workers=N`` runs N processes that each load the model once; a worker that dies (killed, out of
memory) takes only its scans' tries with it: they are given to a new pool, and a scan whose worker
died ``MAX_TRIES`` times is reported failed. ``ray="auto"`` (or an address; ``"local"`` starts a
cluster on this machine) runs the scans on Ray actors instead, one model per actor; a lost actor is
restarted and its scan retried by Ray itself. ``resume=True`` keeps the scans whose summary row is
done and whose outputs all exist, and runs the rest. Either way only this process writes the summary.
"""

from __future__ import annotations

import csv
import hashlib
import io
import multiprocessing
import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from spinelab.errors import SpinelabError
from spinelab.io.files import write_text
from spinelab.io.images import nifti_stem, read_ct, scan_id
from spinelab.io.inputs import expand_inputs
from spinelab.methods import DEFAULT_METHOD, Prediction, load_method, method_spec

SUMMARY_NAME = "spinelab_summary.csv"
SUMMARY_COLUMNS = ("input", "case", "status", "vertebrae", "labels", "min_confidence", "needs_review", "reasons",
                   "outputs", "message")
MAX_CASE_NAME = 100  # output names get suffixes and temporary prefixes; file systems stop at 255 bytes
DONE = ("ok", "no vertebrae")  # statuses a resumed batch keeps
MAX_TRIES = 3  # worker deaths a scan may go through before it is reported failed


@dataclass
class ScanRecord:
    """One input of a batch and what became of it: ``ok``, ``no vertebrae`` or ``failed``."""

    input: Path
    case: str
    status: str = "pending"
    prediction: Prediction | None = None
    outputs: dict[str, Path] = field(default_factory=dict)
    message: str = ""
    stored: dict[str, str] | None = None  # the summary row of an earlier run that finished it (resume)
    tries: int = 0

    def row(self) -> dict[str, str]:
        if self.stored is not None and self.prediction is None:
            return self.stored
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


def _run_scan(record: ScanRecord, runner, out: Path | None, method: str) -> ScanRecord:
    """Predict one scan and write its outputs; any failure is recorded, never raised (but Ctrl-C)."""
    from spinelab.outputs import write_outputs

    try:
        ct = read_ct(record.input)
        prediction = runner.predict(ct)
        record.prediction = prediction
        if out is not None:
            start = time.perf_counter()
            record.outputs = write_outputs(ct, prediction.centroids, out, record.case,
                                           title=f"{record.case} ({method})", label_map=prediction.label_map)
            prediction.timings["write"] = time.perf_counter() - start
        record.status = "ok" if len(prediction.centroids) else "no vertebrae"
        record.message = "" if len(prediction.centroids) else prediction.details.get("no_spine", "no vertebrae found")
    except KeyboardInterrupt:
        record.status, record.message = "failed", "interrupted"
        raise
    except Exception as exc:  # noqa: BLE001 - one scan's failure, expected or not, never ends the batch
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if not isinstance(exc, SpinelabError):
            reason = f"internal error: {type(exc).__name__}: {reason}"
        record.status, record.message = "failed", reason
    return record


def resume_done(records: list[ScanRecord], summary: Path) -> int:
    """Mark the records an earlier run finished (its summary row done, every output present); how many."""
    try:
        with open(summary, newline="", encoding="utf-8") as handle:
            rows = {(row["input"], row["case"]): row for row in csv.DictReader(handle)}
    except (OSError, KeyError, csv.Error, UnicodeDecodeError):
        return 0
    done = 0
    for record in records:
        row = rows.get((str(record.input), record.case))
        outputs = (row or {}).get("outputs", "").split()
        if row and row.get("status") in DONE and outputs and all(Path(p).exists() for p in outputs):
            record.status, record.message, record.stored = row["status"], row.get("message", ""), row
            done += 1
    return done


_WORKER = {}  # the method a worker process loaded, once


def _load_worker(method: str, model: str | None, device: str, threads: int, segment: bool = False) -> None:
    import torch

    torch.set_num_threads(threads)
    _WORKER["runner"] = load_method(method, model, device, segment)


def _worker_scan(record: ScanRecord, out: Path | None, method: str) -> ScanRecord:
    record = _run_scan(record, _WORKER["runner"], out, method)
    if record.prediction is not None:
        record.prediction.label_map = None  # written already; too big to send back
    return record


def _run_in_workers(pending: list[ScanRecord], workers: int, method: str, model: str | None, device: str,
                    out: Path | None, finished, segment: bool = False) -> None:
    """Run ``pending`` in ``workers`` processes; ``finished(record)`` is called in this process as each ends."""
    threads = max(1, (os.cpu_count() or 1) // workers)
    waiting = list(pending)
    while waiting:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_load_worker,
                                 initargs=(method, model, device, threads, segment)) as pool:
            futures = {pool.submit(_worker_scan, record, out, method): record for record in waiting}
            waiting = []
            while futures:
                done, _ = wait(futures, return_when=FIRST_COMPLETED)
                for future in done:
                    record = futures.pop(future)
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        record.tries += 1
                        if record.tries < MAX_TRIES:
                            waiting.append(record)
                            continue
                        record.status = "failed"
                        record.message = f"its worker process died {MAX_TRIES} times (killed or out of memory)"
                        result = record
                    record.__dict__.update(result.__dict__)
                    finished(record)


class RayScanWorker:
    """A Ray actor holding one loaded method (``ray.remote`` is applied when a batch uses Ray)."""

    def __init__(self, method: str, model: str | None, device: str, threads: int, segment: bool = False):
        _load_worker(method, model, device, threads, segment)
        self.method = method

    def scan(self, record: ScanRecord, out: Path | None) -> ScanRecord:
        return _worker_scan(record, out, self.method)


def _run_on_ray(pending: list[ScanRecord], address: str, actors: int, method: str, model: str | None, device: str,
                out: Path | None, finished, segment: bool = False) -> None:
    """Run ``pending`` on Ray actors (``actors`` of them; 0: one per CPU of the cluster)."""
    try:
        import ray
    except ImportError:
        raise SpinelabError('--ray needs Ray: pip install "spinelab[cluster]"') from None
    started = not ray.is_initialized()
    if started:
        options = dict(include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        ray.init(**(options if address == "local" else {**options, "address": address}))
    try:
        count = actors or max(1, int(ray.cluster_resources().get("CPU", 1)))
        remote = ray.remote(num_cpus=1, max_restarts=MAX_TRIES, max_task_retries=MAX_TRIES)(RayScanWorker)
        free = [remote.remote(method, model, device, 1, segment) for _ in range(min(count, len(pending)))]
        queue, running = list(pending), {}
        while queue or running:
            while queue and free:
                actor, record = free.pop(), queue.pop(0)
                running[actor.scan.remote(record, out)] = (record, actor)
            (ready,), _ = ray.wait(list(running), num_returns=1)
            record, actor = running.pop(ready)
            free.append(actor)
            try:
                record.__dict__.update(ray.get(ready).__dict__)
            except ray.exceptions.RayError as exc:  # Ray's own restarts and retries are spent
                record.status = "failed"
                record.message = f"lost on the Ray cluster: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            finished(record)
    finally:
        if started:
            ray.shutdown()


def predict(cts, out: str | Path | None = None, method: str = DEFAULT_METHOD, model: str | None = None,
            device: str = "cpu", progress: bool = True, workers: int = 1, resume: bool = False,
            ray: str | None = None, segment: bool = False) -> BatchResult:
    """Predict every CT (files, DICOM folders, folders to search, globs, manifests); a bad scan is
    reported and the batch goes on. ``workers`` processes (or, with ``ray``, Ray actors) share the
    scans; ``resume`` skips the done ones; ``segment`` also writes each scan's vertebra label map
    (methods that segment)."""
    inputs = expand_inputs([cts] if isinstance(cts, (str, Path)) else cts)
    if not inputs:
        raise SpinelabError("no input scans given")
    if workers < 1:
        raise SpinelabError(f"--workers must be at least 1, got {workers}")
    out = check_output_folder(Path(out)) if out is not None else None
    result = BatchResult([ScanRecord(path, name) for path, name in zip(inputs, case_names(inputs))],
                         out / SUMMARY_NAME if out is not None else None)
    if resume and result.summary is not None and result.summary.exists():
        done = resume_done(result.records, result.summary)
        if done:
            tqdm.write(f"spinelab: resuming: {done} of {len(result.records)} scan(s) already done", file=sys.stderr)
    for record in result.records:  # what cannot be read at all is reported before the model loads
        if record.status != "pending":
            continue
        problem = ("no such file or folder" if not record.input.exists() else
                   "cannot be read (permission denied)" if not os.access(record.input, os.R_OK) else None)
        if problem:
            record.status, record.message = "failed", f"{record.input}: {problem}"
            tqdm.write(f"spinelab: skipped {record.input}: {problem}", file=sys.stderr)
    pending = [record for record in result.records if record.status == "pending"]
    # Loaded here even for workers: a bad model file or device is one line before any scan runs.
    runner = load_method(method, model, device, segment) if pending else None
    bar = tqdm(total=len(pending), desc="predict", unit="scan", disable=not progress, file=sys.stderr)

    def finished(record: ScanRecord) -> None:
        if record.status == "failed":
            tqdm.write(f"spinelab: skipped {record.input}: {record.message}", file=sys.stderr)
        bar.update(1)
        bar.set_postfix_str(record.case)
        if result.summary is not None:
            write_summary(result.records, result.summary)

    try:
        if ray is not None and pending:
            runner = None  # each actor loads its own
            _run_on_ray(pending, ray, workers if workers > 1 else 0, method, model, device, out, finished, segment)
        elif workers > 1 and len(pending) > 1:
            runner = None  # each worker loads its own
            _run_in_workers(pending, min(workers, len(pending)), method, model, device, out, finished, segment)
        else:
            for record in pending:
                finished(_run_scan(record, runner, out, method))
    finally:
        bar.close()
        if result.summary is not None:
            write_summary(result.records, result.summary)
    return result


def train(data: str | Path, out: str | Path, method: str = DEFAULT_METHOD, **options) -> Path:
    """Train ``method`` on a VerSe/CSI2014-layout dataset; ``options`` are its ``spinelab train`` options."""
    return method_spec(method).resolve("train")(data=data, out=Path(out), **options)


def pretrain(data: str | Path, out: str | Path, method: str = DEFAULT_METHOD, **options) -> Path:
    """Pretrain ``method``'s encoder where it has such a step (multiview: SimSiam on DRR pairs)."""
    return method_spec(method).resolve("pretrain")(data=data, out=Path(out), **options)
