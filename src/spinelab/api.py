"""Python API with the same arguments as the CLI.

``spinelab.predict(["ct.nii.gz"], out="results", method="multiview")``,
``spinelab.train("dataset/", "run/", method="multiview", iterations=100)`` and
``spinelab.pretrain(...)`` resolve the method through the registry (``spinelab.methods``).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from spinelab.errors import SpinelabError
from spinelab.io.images import read_ct, scan_id
from spinelab.methods import DEFAULT_METHOD, Prediction, load_method, method_spec
from spinelab.outputs import write_outputs


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
                                                     title=f"{case} ({method})", label_map=prediction.label_map)
                prediction.timings["write"] = time.perf_counter() - start
            result.predictions[case] = prediction
        except SpinelabError as exc:
            result.failures[case] = str(exc)
            tqdm.write(f"spinelab: skipped {path}: {exc}", file=sys.stderr)
    return result


def train(data: str | Path, out: str | Path, method: str = DEFAULT_METHOD, **options) -> Path:
    """Train ``method`` on a VerSe/CSI2014-layout dataset; ``options`` are its ``spinelab train`` options."""
    return method_spec(method).resolve("train")(data=data, out=Path(out), **options)


def pretrain(data: str | Path, out: str | Path, method: str = DEFAULT_METHOD, **options) -> Path:
    """Pretrain ``method``'s encoder where it has such a step (multiview: SimSiam on DRR pairs)."""
    return method_spec(method).resolve("pretrain")(data=data, out=Path(out), **options)
