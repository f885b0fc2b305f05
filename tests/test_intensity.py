"""Input not in Hounsfield units is recognised from its values: refused in one line, or converted with a warning."""

from __future__ import annotations

import warnings

import nibabel as nib
import numpy as np
import pytest

from spinelab.errors import SpinelabError, SpinelabWarning
from spinelab.io.images import read_ct, write_nifti
from spinelab.io.intensity import checked_hounsfield
from spinelab.io.volume import CTVolume

#: (seed, options): every padding value the generator uses (-1024, -2048, -3024), contrast, metal (32767 HU).
SYNTHETIC = [(101, {"fov": "thoracolumbar"}), (102, {"fov": "lumbar", "contrast": True}),
             (104, {"fov": "lumbar", "pathology": {"metal": True}}), (107, {"fov": "cervical"})]


@pytest.fixture(scope="module")
def synthetic_cts() -> list[CTVolume]:
    """The cases of ``SYNTHETIC``; the first is the first thoracolumbar case from its seed on with normal
    bone density (at 2-3 mm an osteoporotic spine has too little bone above 300 HU to read HU + 1024)."""
    from spinelab.synth import SynthOptions, generate_case

    cases = [generate_case(seed, SynthOptions(resolution="test", **options)) for seed, options in SYNTHETIC]
    seed, options = SYNTHETIC[0]
    while cases[0].info["patient"]["vertebral_cancellous_hu"] < 150:
        seed += 100
        cases[0] = generate_case(seed, SynthOptions(resolution="test", **options))
    return [case.ct for case in cases]


@pytest.fixture(scope="module")
def body_ct(synthetic_cts) -> CTVolume:
    """A thoracolumbar CT with air around the body and -3024 padding outside the reconstruction circle."""
    return synthetic_cts[0]


def read_quietly(path) -> CTVolume:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return read_ct(path)


def saved(tmp_path, volume: CTVolume, array: np.ndarray, name: str = "scan.nii.gz"):
    return write_nifti(volume.with_array(array), tmp_path / name)


def windowed(array: np.ndarray, low: float, high: float) -> np.ndarray:
    return np.round((np.clip(array, low, high) - low) / (high - low) * 255)


def test_real_example_cts_pass_unchanged(chest_example, tptbox_example):
    for example in (chest_example, tptbox_example):
        raw = np.asanyarray(nib.load(example["ct"]).dataobj)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert checked_hounsfield(raw, example["ct"].name) is raw
    np.testing.assert_array_equal(read_quietly(tptbox_example["ct"]).array, raw)


def test_synthetic_cts_pass_unchanged(synthetic_cts):
    for ct in synthetic_cts:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert checked_hounsfield(ct.array, "synthetic") is ct.array


def test_dicom_fixture_passes_unchanged(tmp_path):
    from test_dicom import write_series

    from spinelab.io.dicom import read_dicom_series

    write_series(tmp_path)
    np.testing.assert_array_equal(read_quietly(tmp_path).array, read_dicom_series(tmp_path).array)


@pytest.mark.parametrize("window", [(-1000, 1000), (-500, 1500), (-160, 240)])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32])
def test_8bit_windowed_exports_are_refused(body_ct, tmp_path, window, dtype):
    path = saved(tmp_path, body_ct, windowed(body_ct.array, *window).astype(dtype))
    with pytest.raises(SpinelabError, match=r"looks like an 8-bit windowed export \(values 0\.\.\d+\), not Hounsfield"):
        read_ct(path)


def test_padding_outside_the_field_of_view_does_not_make_an_export_look_signed(body_ct):
    export = windowed(body_ct.array, -1000, 1000).astype(np.int16)
    export[body_ct.array == body_ct.array.min()] = -1024
    with pytest.raises(SpinelabError, match="8-bit windowed export"):
        checked_hounsfield(export, "padded")


@pytest.mark.parametrize("dtype", [np.uint16, np.int16, np.float32])
def test_hounsfield_plus_1024_is_converted_with_a_warning(body_ct, tmp_path, dtype):
    """Raw scanner values without the rescale: HU + 1024, air clipped at 0."""
    raw = np.clip(body_ct.array.astype(np.int32) + 1024, 0, None).astype(dtype)
    with pytest.warns(SpinelabWarning, match=r"Hounsfield units \+ 1024 stored without a rescale.*subtracted 1024"):
        volume = read_ct(saved(tmp_path, body_ct, raw))
    np.testing.assert_array_equal(volume.array, np.maximum(body_ct.array, -1024))


def test_offset_data_without_air_around_the_body_is_refused(tptbox_example):
    """TPTBox's crop lies inside the body: no air near 0, so nothing proves the values are HU + 1024."""
    raw = np.clip(np.asanyarray(nib.load(tptbox_example["ct"]).dataobj).astype(np.int32) + 1024, 0, None)
    with pytest.raises(SpinelabError, match=r"no negatives, so they are not Hounsfield units.*HU \+ 1024"):
        checked_hounsfield(raw.astype(np.uint16), "crop")


def test_unsigned_data_that_is_not_a_shifted_ct_is_refused():
    """Air-like zeros and values to 4000, but the tissue mode sits far from 1024 (e.g. an MR image)."""
    rng = np.random.default_rng(0)
    image = np.where(rng.random((40, 40, 40)) < 0.3, 0, rng.normal(2500, 400, (40, 40, 40))).clip(0, 4000)
    with pytest.raises(SpinelabError, match="do not clearly show HU"):
        checked_hounsfield(image.astype(np.uint16), "mr")


def test_int8_data_is_refused(body_ct):
    with pytest.raises(SpinelabError, match="int8 cannot hold Hounsfield units"):
        checked_hounsfield((body_ct.array // 16).clip(-128, 127).astype(np.int8), "small")


def test_float_label_maps_are_refused(chest_example, tmp_path):
    """TotalSegmentator's map of the chest CT: 90 labels, more than the integer label-map check's 64."""
    labels = np.asanyarray(nib.load(chest_example["labels"]).dataobj)
    with pytest.raises(SpinelabError, match=r"looks like a label map \(90 integer values 0\.\.\d+ in uniform"):
        checked_hounsfield(labels.astype(np.float32), "mask")
    small = np.zeros((20, 20, 20), np.float64)
    small[5:15, 5:15, 2:8], small[5:15, 5:15, 10:16] = 20.0, 21.0
    with pytest.raises(SpinelabError, match="looks like a label map"):
        read_ct(write_nifti(CTVolume(small, np.eye(4)), tmp_path / "labels.nii.gz"))


def test_absurd_values_are_refused_but_padding_is_not(body_ct):
    broken = body_ct.array.astype(np.float32)
    broken[3, 4, 5] = 1e30
    with pytest.raises(SpinelabError, match=r"value 1e\+30 is far outside Hounsfield units"):
        checked_hounsfield(broken, "broken")
    padded = np.where(body_ct.array == body_ct.array.min(), -32768, body_ct.array).astype(np.int16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert checked_hounsfield(padded, "padded") is padded
