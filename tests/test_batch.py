"""Batches at scale: inputs from folders, globs and manifests; worker processes that may die; resume."""

from __future__ import annotations

import csv
import multiprocessing
import os
import shutil
import signal
import threading
import time

import pytest

from spinelab.api import SUMMARY_NAME, predict
from spinelab.io.datasets import find_cases
from spinelab.io.images import write_nifti
from spinelab.io.inputs import expand_inputs


def _touch(path, data=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_inputs_expand_folders_globs_and_manifests_in_a_stable_order(tmp_path):
    a = _touch(tmp_path / "archive" / "p1" / "a_ct.nii.gz")
    b = _touch(tmp_path / "archive" / "p2" / "b.mha")
    _touch(tmp_path / "archive" / "p2" / "b_seg-vert_msk.nii.gz")  # a label map, not a CT
    _touch(tmp_path / "archive" / "p2" / "notes.txt")
    series = tmp_path / "archive" / "p3" / "series"
    _touch(series / "IM0001", b"\0" * 128 + b"DICM" + b"\0" * 8)
    _touch(series / "IM0002", b"\0" * 128 + b"DICM" + b"\0" * 8)
    assert expand_inputs([tmp_path / "archive"]) == [a, b, series]
    assert expand_inputs([str(tmp_path / "archive" / "**" / "*.nii.gz")]) == [a]
    manifest = _touch(tmp_path / "list.txt", b"# scans\narchive/p2/b.mha\n\narchive/p1\nmissing.nii.gz\n")
    assert expand_inputs([manifest, a]) == [b, a, tmp_path / "missing.nii.gz"]  # each scan once
    table = _touch(tmp_path / "list.csv", b"patient,input\n7,archive/p1/a_ct.nii.gz\n8,archive/p3/series\n")
    assert expand_inputs([table]) == [a, series]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert expand_inputs([empty, tmp_path / "nothing*.nii.gz"]) == [empty, tmp_path / "nothing*.nii.gz"]


@pytest.fixture
def three_cts(tiny_dataset, tmp_path):
    cts = [case.load()[0] for case in find_cases(tiny_dataset)]
    folder = tmp_path / "cts"
    return [write_nifti(ct, folder / f"scan{i}_ct.nii.gz") for i, ct in enumerate([*cts, cts[0].reoriented(("L", "P", "S"))])]


def _summary(out):
    with open(out / SUMMARY_NAME, newline="") as handle:
        return {row["case"]: row for row in csv.DictReader(handle)}


def test_resume_after_an_interrupted_batch_runs_only_the_missing_scans(three_cts, tmp_path, tiny_model):
    out = tmp_path / "out"
    predict(three_cts[:2], out=out, method="multiview", model=tiny_model, progress=False)  # "interrupted" after 2
    first = {path.name: path.stat().st_mtime_ns for path in out.iterdir() if path.name != SUMMARY_NAME}
    (out / "scan1_qc.png").unlink()  # scan1's outputs are incomplete
    result = predict(three_cts, out=out, method="multiview", model=tiny_model, progress=False, resume=True)
    ran = {record.case for record in result.records if record.prediction is not None}
    assert ran == {"scan1", "scan2"}
    assert all((out / name).stat().st_mtime_ns == stamp for name, stamp in first.items() if name.startswith("scan0"))
    rows = _summary(out)
    assert set(rows) == {"scan0", "scan1", "scan2"} and all(row["status"] in ("ok", "no vertebrae")
                                                              for row in rows.values())


def test_two_workers_give_the_sequential_centroids_and_a_killed_worker_loses_no_scan(three_cts, tmp_path,
                                                                                     tiny_model):
    sequential = predict(three_cts, out=tmp_path / "one", method="multiview", model=tiny_model, progress=False)
    killed = []

    def kill_a_worker():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            children = multiprocessing.active_children()
            if children:
                time.sleep(2.0)  # let it load the model and start a scan
                os.kill(children[0].pid, signal.SIGKILL)
                killed.append(children[0].pid)
            time.sleep(0.05)

    killer = threading.Thread(target=kill_a_worker, daemon=True)
    killer.start()
    parallel = predict(three_cts, out=tmp_path / "two", method="multiview", model=tiny_model, progress=False,
                       workers=2)
    killer.join()
    assert killed, "no worker was killed"
    rows = _summary(tmp_path / "two")
    assert set(rows) == {"scan0", "scan1", "scan2"}
    for one, two in zip(sequential.records, parallel.records):
        assert two.status == one.status != "failed"
        assert two.prediction.centroids.labels.tolist() == one.prediction.centroids.labels.tolist()
        assert abs(two.prediction.centroids.world - one.prediction.centroids.world).max(initial=0) < 1e-3
        assert sorted(p.name for p in two.outputs.values()) == sorted(p.name for p in one.outputs.values())
    shutil.rmtree(tmp_path / "one")


def test_a_local_ray_cluster_gives_the_sequential_centroids(three_cts, tmp_path, tiny_model):
    pytest.importorskip("ray")
    sequential = predict(three_cts, out=tmp_path / "one", method="multiview", model=tiny_model, progress=False)
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        clustered = predict(three_cts, out=tmp_path / "ray", method="multiview", model=tiny_model, progress=False,
                            ray="auto")
    finally:
        ray.shutdown()
    assert set(_summary(tmp_path / "ray")) == {"scan0", "scan1", "scan2"}
    for one, two in zip(sequential.records, clustered.records):
        assert two.status == one.status != "failed"
        assert two.prediction.centroids.labels.tolist() == one.prediction.centroids.labels.tolist()
        assert abs(two.prediction.centroids.world - one.prediction.centroids.world).max(initial=0) < 1e-3
