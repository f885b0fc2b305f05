"""MetaImage and NRRD CTs and label maps, read through SimpleITK into the same RAS+ geometry as NIfTI."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from scipy.spatial.transform import Rotation

from spinelab.errors import SpinelabError
from spinelab.io.images import nifti_stem, read_ct, read_label_map, scan_id, write_nifti
from spinelab.io.volume import LPS_TO_RAS, CTVolume

#: Voxel axes i, j, k point posterior, superior and left, voxels 0.8 x 2.5 x 1.2 mm.
PERMUTED = np.array([[0.0, 0.0, -1.2], [-0.8, 0.0, 0.0], [0.0, 2.5, 0.0]])
OBLIQUE = Rotation.from_euler("xyz", [12, -7, 25], degrees=True).as_matrix() @ PERMUTED
LINEAR = {"permuted": PERMUTED, "oblique": OBLIQUE}
VOXELS = np.array([[0, 0, 0], [6, 8, 4], [3, 1, 2], [6, 0, 4]])


def ct_volume(linear, shape=(7, 9, 5)) -> CTVolume:
    affine = np.eye(4)
    affine[:3, :3] = linear
    affine[:3, 3] = (33.5, -120.25, 470.0)
    array = np.random.default_rng(0).integers(-1000, 1500, shape).astype(np.int16)
    return CTVolume(array, affine, "ct.nii.gz")


def itk_image(volume: CTVolume) -> sitk.Image:
    """The volume as ITK stores it, built independently of spinelab: LPS geometry, array indexed [k, j, i]."""
    lps = np.diag([*LPS_TO_RAS, 1.0]) @ volume.affine
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    image = sitk.GetImageFromArray(np.ascontiguousarray(volume.array.transpose(2, 1, 0)))
    image.SetSpacing(spacing.tolist())
    image.SetDirection((lps[:3, :3] / spacing).ravel().tolist())
    image.SetOrigin(lps[:3, 3].tolist())
    return image


def one_line_error(excinfo, path) -> str:
    message = str(excinfo.value)
    assert "\n" not in message and str(path) in message
    return message


@pytest.mark.parametrize("geometry", sorted(LINEAR))
def test_the_same_ct_as_nifti_mha_mhd_and_nrrd_reads_back_identically(tmp_path, geometry):
    volume = ct_volume(LINEAR[geometry])
    image = itk_image(volume)
    paths = [write_nifti(volume, tmp_path / "ct.nii.gz")]
    for name in ("ct.mha", "ct.nrrd", "ct.mhd"):
        sitk.WriteImage(image, str(tmp_path / name))
        paths.append(tmp_path / name)
    assert (tmp_path / "ct.raw").is_file()  # the .mhd keeps its voxels beside it
    reference = read_ct(paths[0])
    for path in paths[1:]:
        read = read_ct(path)
        np.testing.assert_allclose(read.to_world(VOXELS), reference.to_world(VOXELS), atol=1e-4)
        np.testing.assert_array_equal(read.reoriented(("R", "A", "S")).array, reference.reoriented(("R", "A", "S")).array)
        for i, j, k in VOXELS.tolist():  # array[i, j, k] is ITK's voxel (i, j, k), at ITK's position
            assert read.array[i, j, k] == image.GetPixel(i, j, k)
            np.testing.assert_allclose(read.to_world([i, j, k]),
                                       np.asarray(image.TransformIndexToPhysicalPoint((i, j, k))) * LPS_TO_RAS)


def test_image_suffixes_are_cut_from_case_names():
    assert [scan_id(name) for name in ("scan.mha", "sub-01_ct.nrrd", "a.MHD", "b.nhdr", "c.nii.gz")] == [
        "scan", "sub-01", "a", "b", "c"]
    assert nifti_stem("dicom_folder") == "dicom_folder"


SLICER_SEGMENTATION = """NRRD0004
type: unsigned char
dimension: {dimension}
space: right-anterior-superior
sizes: {sizes}
space directions: {directions}(2,0,0) (0,1,0) (0,0,3)
kinds: {kinds}domain domain domain
encoding: raw
space origin: (10,20,30)
Segment0_ID:=Segment_1
Segment0_Name:=L1
Segment0_LabelValue:=20
Segment0_Layer:=0

"""


def write_segmentation(path, labels: np.ndarray, layers: int = 1):
    """A .seg.nrrd as 3D Slicer writes it (RAS space); several layers make a 4D 'list' axis."""
    fields = ({"dimension": 3, "sizes": "4 3 5", "directions": "", "kinds": ""} if layers == 1 else
              {"dimension": 4, "sizes": f"{layers} 4 3 5", "directions": "none ", "kinds": "list "})
    data = labels.transpose(2, 1, 0) if layers == 1 else np.repeat(labels.transpose(2, 1, 0)[..., None], layers, -1)
    path.write_bytes(SLICER_SEGMENTATION.format(**fields).encode() + np.ascontiguousarray(data, np.uint8).tobytes())
    return path


def test_single_layer_slicer_segmentation_reads_as_a_label_map_in_ras(tmp_path):
    labels = np.zeros((4, 3, 5), np.uint8)
    labels[1:3, 1, 2:4] = 20
    labels[3, 2, 4] = 21
    volume = read_label_map(write_segmentation(tmp_path / "spine.seg.nrrd", labels))
    np.testing.assert_array_equal(volume.array, labels)
    np.testing.assert_allclose(volume.to_world([3, 2, 4]), [10 + 2 * 3, 20 + 2, 30 + 3 * 4])


def test_multi_layer_slicer_segmentation_is_refused(tmp_path):
    path = write_segmentation(tmp_path / "spine.seg.nrrd", np.zeros((4, 3, 5), np.uint8), layers=2)
    with pytest.raises(SpinelabError) as excinfo:
        read_label_map(path)
    assert "export it from 3D Slicer as a labelmap" in one_line_error(excinfo, path)


@pytest.mark.parametrize("name", ["mask.nrrd", "mask.mha"])
def test_plain_itk_label_maps(tmp_path, name):
    labels = ct_volume(PERMUTED).with_array(np.arange(7 * 9 * 5, dtype=np.uint8).reshape(7, 9, 5) % 4)
    sitk.WriteImage(itk_image(labels), str(tmp_path / name))
    read = read_label_map(tmp_path / name)
    np.testing.assert_array_equal(read.array, labels.array)
    np.testing.assert_allclose(read.affine, labels.affine, atol=1e-9)


def write_bad(tmp_path, kind):
    image = itk_image(ct_volume(PERMUTED))
    if kind == "4d":
        sitk.WriteImage(sitk.JoinSeries([image, image]), str(tmp_path / "ct.nrrd"))
        return tmp_path / "ct.nrrd"
    if kind == "vector":
        sitk.WriteImage(sitk.Compose([image, image]), str(tmp_path / "ct.mha"))
        return tmp_path / "ct.mha"
    if kind == "no data file":
        sitk.WriteImage(image, str(tmp_path / "ct.mhd"))
        (tmp_path / "ct.raw").unlink()
        return tmp_path / "ct.mhd"
    if kind == "garbage":
        (tmp_path / "ct.mha").write_bytes(b"not a MetaImage\x00\x01")
        return tmp_path / "ct.mha"
    name = {"truncated mha": "ct.mha", "truncated nrrd": "ct.nrrd"}[kind]
    sitk.WriteImage(image, str(tmp_path / name), useCompression=True)
    data = (tmp_path / name).read_bytes()
    (tmp_path / name).write_bytes(data[: len(data) - 200])
    return tmp_path / name


@pytest.mark.parametrize("kind, words", [
    ("4d", "expected a 3D volume, got 4D"),
    ("vector", "2 values per voxel"),
    ("no data file", "its voxel data file ct.raw is missing"),
    ("garbage", "cannot read as MetaImage"),
    ("truncated mha", "cannot read as MetaImage (data not read completely)"),
    ("truncated nrrd", "cannot read as NRRD"),
])
def test_bad_itk_files_are_one_line_errors_and_itk_prints_nothing(tmp_path, capfd, kind, words):
    path = write_bad(tmp_path, kind)
    with pytest.raises(SpinelabError) as excinfo:
        read_ct(path)
    assert words in one_line_error(excinfo, path)
    assert capfd.readouterr().err == ""
