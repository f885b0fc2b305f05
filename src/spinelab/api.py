"""Python API with the same arguments as the CLI: ``spinelab.predict(["ct.nii.gz"], out="results")``."""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from spinelab.errors import SpinelabError
from spinelab.io.centroids import Centroids
from spinelab.io.volume import CTVolume, read_ct, scan_id
from spinelab.methods import DEFAULT_METHOD, Prediction, load_method

def output_paths(out: Path, case: str) -> dict[str, Path]:
    return {"verse": out / f"{case}_ctd.json", "slicer": out / f"{case}.mrk.json", "qc": out / f"{case}_qc.png"}


def write_outputs(ct: CTVolume, centroids: Centroids, out: Path, case: str, title: str | None = None,
                  reference: Centroids | None = None) -> dict[str, Path]:
    """VerSe JSON (on the CT's grid), Slicer markups and a QC picture; all or none of them."""
    from spinelab.io.formats import write_centroids
    from spinelab.viz.qc import render_qc

    paths = output_paths(out, case)
    try:
        write_centroids(centroids, paths["verse"], reference=ct)
        write_centroids(centroids, paths["slicer"])
        render_qc(ct, centroids, paths["qc"], title=title or case, reference=reference)
    except BaseException:
        for path in paths.values():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        raise
    return paths


@dataclass
class BatchResult:
    predictions: dict[str, Prediction] = field(default_factory=dict)
    outputs: dict[str, dict[str, Path]] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)


def predict(cts, out: str | Path | None = None, method: str = DEFAULT_METHOD, model: str | None = None,
            device: str = "cpu", progress: bool = True) -> BatchResult:
    """Predict every CT (files or DICOM folders); a bad scan is reported and the batch goes on."""
    cts = [Path(p) for p in ([cts] if isinstance(cts, (str, Path)) else cts)]
    runner = load_method(method, model, device)
    result = BatchResult()
    bar = tqdm(cts, desc="predict", unit="scan", disable=not progress, file=sys.stderr)
    for path in bar:
        case = scan_id(path)
        bar.set_postfix_str(case)
        try:
            ct = read_ct(path)
            prediction = runner.predict(ct)
            if out is not None:
                start = time.perf_counter()
                result.outputs[case] = write_outputs(ct, prediction.centroids, Path(out), case,
                                                     title=f"{case} ({method})")
                prediction.timings["write"] = time.perf_counter() - start
            result.predictions[case] = prediction
        except SpinelabError as exc:
            result.failures[case] = str(exc)
            tqdm.write(f"spinelab: skipped {path}: {exc}", file=sys.stderr)
    return result
