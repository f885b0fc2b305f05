"""Bad input: one clear line on stderr, a non-zero exit, no traceback and no partial output."""

from __future__ import annotations

import gzip
import json

import matplotlib
import nibabel as nib
import numpy as np
import pytest
import torch

from spinelab.cli import main

matplotlib.use("Agg")


def write_nifti(path, array, affine=None):
    nib.save(nib.Nifti1Image(array, np.diag([1.5, 1.5, 2.0, 1.0]) if affine is None else affine), str(path))
    return path


def ct_array(shape=(24, 24, 20), seed=0):
    rng = np.random.default_rng(seed)
    array = rng.normal(0, 30, shape).astype(np.int16)
    array[:4] = -1000
    array[10:14, 10:14, :] = 900
    return array


def run(argv, capsys):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code, err, *words):
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("spinelab: error:")
    assert "Traceback" not in err
    for word in words:
        assert word.lower() in lines[0].lower(), lines[0]


def bad_cts(tmp):
    """(name, path, words expected in the message) for every kind of unusable CT."""
    png = tmp / "scan.png"
    matplotlib.pyplot.imsave(png, np.random.default_rng(0).random((16, 16)))
    labels = ct_array().clip(0, 24).astype(np.uint8)
    nan = ct_array().astype(np.float32)
    nan[3, 3, 3] = np.nan
    good = write_nifti(tmp / "good.nii.gz", ct_array())
    truncated = tmp / "truncated.nii.gz"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    not_gzip = tmp / "garbage.nii.gz"
    not_gzip.write_bytes(b"this is not a NIfTI file at all")
    return [
        ("missing", tmp / "nope.nii.gz", ["no such file"]),
        ("png", png, ["not a CT file"]),
        ("label map", write_nifti(tmp / "labels.nii.gz", labels), ["label map"]),
        ("constant", write_nifti(tmp / "constant.nii.gz", np.full((16, 16, 16), 40, np.int16)), ["constant"]),
        ("nan", write_nifti(tmp / "nan.nii.gz", nan), ["nan"]),
        ("2d", write_nifti(tmp / "flat.nii.gz", ct_array()[:, :, 0]), ["3d"]),
        ("4d", write_nifti(tmp / "four.nii.gz", np.stack([ct_array()] * 3, axis=-1)), ["3d"]),
        ("truncated", truncated, ["truncated or corrupt"]),
        ("garbage", not_gzip, ["cannot read", "garbage.nii.gz"]),
    ]


def test_every_bad_ct_gets_one_line_and_no_picture(tmp_path, capsys):
    for name, path, words in bad_cts(tmp_path):
        out_png = tmp_path / f"{name}.png.out.png"
        code, _, err = run(["show", path, "--out", out_png], capsys)
        assert_one_line_error(code, err, *words)
        assert not out_png.exists(), name


def test_dicom_folder_with_two_series(tmp_path, capsys):
    from test_dicom import write_series

    folder, other = tmp_path / "dicom", tmp_path / "other"
    write_series(folder, series_uid="1.2.3.1")
    write_series(other, series_uid="1.2.3.2")
    for path in other.iterdir():
        path.rename(folder / f"b_{path.name}")
    code, _, err = run(["show", folder, "--out", tmp_path / "qc.png"], capsys)
    assert_one_line_error(code, err, "series")
    assert not (tmp_path / "qc.png").exists()


@pytest.mark.parametrize("entry, words", [
    ({"label": 99, "X": 1.0, "Y": 2.0, "Z": 3.0}, ["label", "99"]),
    ({"label": 20, "X": "NaN", "Y": 2.0, "Z": 3.0}, ["nan"]),
])
def test_centroid_json_with_unknown_label_or_nan(tmp_path, capsys, entry, words):
    ct = write_nifti(tmp_path / "scan.nii.gz", ct_array())
    bad = tmp_path / "bad_ctd.json"
    bad.write_text(json.dumps([{"direction": ["R", "A", "S"]}, entry]).replace('"NaN"', "NaN"))
    code, _, err = run(["show", ct, "--centroids", bad, "--out", tmp_path / "qc.png"], capsys)
    assert_one_line_error(code, err, *words)
    assert not (tmp_path / "qc.png").exists()


def test_evaluate_with_missing_ground_truth(tmp_path, capsys):
    prediction = tmp_path / "pred.csv"
    prediction.write_text("# frame: RAS+ mm\nlabel,name,x,y,z\n20,L1,0,0,0\n")
    code, _, err = run(["evaluate", prediction, tmp_path / "missing.csv"], capsys)
    assert_one_line_error(code, err, "missing.csv")


def test_predict_batch_goes_on_past_a_bad_scan(tmp_path, capsys, tiny_model):
    good = write_nifti(tmp_path / "good_ct.nii.gz", ct_array())
    bad = tmp_path / "broken_ct.nii.gz"
    bad.write_bytes(gzip.compress(b"not a nifti"))
    out = tmp_path / "out"
    code, stdout, err = run(["predict", bad, good, "--out", out, "--model", tiny_model], capsys)
    assert code == 2
    assert "broken" in err and "1 of 2 scan(s) failed" in err and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == ["good.mrk.json", "good_ctd.json", "good_qc.png",
                                                     "spinelab_summary.csv"]
    assert "good:" in stdout


def test_predict_with_a_file_that_is_not_a_model(tmp_path, capsys):
    fake = tmp_path / "model.pt"
    fake.write_bytes(b"not a model")
    ct = write_nifti(tmp_path / "scan.nii.gz", ct_array())
    code, _, err = run(["predict", ct, "--model", fake, "--out", tmp_path / "out"], capsys)
    assert_one_line_error(code, err, "model")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("device, words", [("banana", ["unknown device"]), ("cuda:7", ["cuda"])])
def test_predict_on_a_device_this_machine_lacks(tmp_path, capsys, tiny_model, device, words):
    ct = write_nifti(tmp_path / "scan.nii.gz", ct_array())
    if device.startswith("cuda") and torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    code, _, err = run(["predict", ct, "--model", tiny_model, "--device", device, "--out", tmp_path / "out"], capsys)
    assert_one_line_error(code, err, *words)
    assert not (tmp_path / "out").exists()


def test_segment_with_a_method_that_does_not_segment(tmp_path, capsys):
    ct = write_nifti(tmp_path / "scan.nii.gz", ct_array())
    code, _, err = run(["predict", ct, "--method", "dense", "--segment", "--out", tmp_path / "out"], capsys)
    assert_one_line_error(code, err, "does not segment", "scnet")
    assert not (tmp_path / "out").exists()
