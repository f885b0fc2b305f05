import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MediaStorageDirectoryStorage, generate_uid
from scipy.spatial.transform import Rotation

from spinelab.errors import SpinelabError
from spinelab.io.dicom import read_dicom_series
from spinelab.io.images import read_ct

ROWS, COLUMNS = 16, 12
PIXEL_SPACING = (0.8, 0.6)  # DICOM order: between rows, between columns
AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
LPS_TO_RAS = np.array([-1.0, -1.0, 1.0])


def stored_value(slice_id: int, row: int, column: int) -> int:
    """Raw pixel value that tells which slice, row and column it came from."""
    return slice_id * ROWS * COLUMNS + row * COLUMNS + column


def ct_slice(position, orientation, slice_id, series_uid, slope=1.0, intercept=-1024.0) -> pydicom.Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = pydicom.Dataset()
    dataset.file_meta = meta
    dataset.SOPClassUID = CTImageStorage
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.Modality = "CT"
    dataset.SeriesInstanceUID = series_uid
    dataset.InstanceNumber = slice_id + 1
    dataset.ImagePositionPatient = [f"{v:.6f}" for v in position]
    dataset.ImageOrientationPatient = [f"{v:.10f}" for v in orientation]
    dataset.PixelSpacing = list(PIXEL_SPACING)
    dataset.Rows, dataset.Columns = ROWS, COLUMNS
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit, dataset.PixelRepresentation = 16, 16, 15, 0
    dataset.RescaleSlope, dataset.RescaleIntercept = f"{slope:g}", f"{intercept:g}"
    rows, columns = np.mgrid[:ROWS, :COLUMNS]
    dataset.PixelData = stored_value(slice_id, rows, columns).astype(np.uint16).tobytes()
    return dataset


def write_series(folder, orientation=AXIAL, origin=(-10.0, 20.0, 30.0), steps=(2.5,) * 5, sideways=0.0,
                 series_uid=None, order=None, **rescale) -> list[np.ndarray]:
    """Write slices at ``origin + cumsum(steps) * normal`` (+ ``sideways`` mm per slice along the row cosine).

    Slice ids follow position; files are written in ``order`` (default: slice order) under names that
    do not sort by position. Returns the ImagePositionPatient of every slice id, as written (LPS).
    """
    folder.mkdir(parents=True, exist_ok=True)
    row, column = np.asarray(orientation[:3]), np.asarray(orientation[3:])
    normal = np.cross(row, column)
    along = np.concatenate([[0.0], np.cumsum(steps)])
    positions = [np.asarray(origin) + d * normal + k * sideways * row for k, d in enumerate(along)]
    series_uid = series_uid or generate_uid()
    for file_index, slice_id in enumerate(order if order is not None else range(len(positions))):
        dataset = ct_slice(positions[slice_id], orientation, slice_id, series_uid, **rescale)
        dataset.save_as(folder / f"IM{file_index * 7919 % 10007:05d}", enforce_file_format=True)
    return [np.array([float(f"{v:.6f}") for v in p]) for p in positions]


def oblique_orientation() -> tuple[float, ...]:
    matrix = Rotation.from_euler("xyz", [25, -15, 40], degrees=True).as_matrix()
    return tuple(float(f"{v:.10f}") for v in (*matrix[:, 0], *matrix[:, 1]))


def test_axial_series_gets_the_ras_affine(tmp_path):
    write_series(tmp_path)
    volume = read_dicom_series(tmp_path)
    assert volume.shape == (COLUMNS, ROWS, 6)
    expected = np.array([[-0.6, 0, 0, 10.0], [0, -0.8, 0, -20.0], [0, 0, 2.5, 30.0], [0, 0, 0, 1]])
    np.testing.assert_allclose(volume.affine, expected, atol=1e-9)
    assert volume.axcodes == ("L", "P", "S")


def test_oblique_voxels_land_on_each_slice_position_and_pixel_offsets(tmp_path):
    orientation = oblique_orientation()
    positions = write_series(tmp_path, orientation=orientation, steps=(1.25,) * 5)
    volume = read_dicom_series(tmp_path)
    row, column = np.asarray(orientation[:3]), np.asarray(orientation[3:])
    for k, position in enumerate(positions):
        np.testing.assert_allclose(volume.to_world([0, 0, k]), position * LPS_TO_RAS, atol=1e-6)
        for i, j in [(1, 0), (0, 1), (COLUMNS - 1, ROWS - 1)]:
            expected = position + i * PIXEL_SPACING[1] * row + j * PIXEL_SPACING[0] * column
            np.testing.assert_allclose(volume.to_world([i, j, k]), expected * LPS_TO_RAS, atol=1e-6)
    i, j, k = np.meshgrid(np.arange(COLUMNS), np.arange(ROWS), np.arange(6), indexing="ij")
    np.testing.assert_array_equal(volume.array, stored_value(k, j, i) - 1024)


def test_file_order_does_not_matter(tmp_path):
    steps = (2.0,) * 6
    write_series(tmp_path / "sorted", steps=steps)
    write_series(tmp_path / "shuffled", steps=steps, order=[4, 0, 6, 2, 5, 1, 3])
    reference, shuffled = read_dicom_series(tmp_path / "sorted"), read_dicom_series(tmp_path / "shuffled")
    np.testing.assert_array_equal(shuffled.array, reference.array)
    np.testing.assert_allclose(shuffled.affine, reference.affine)


def test_slices_stored_head_first_are_sorted_along_the_normal(tmp_path):
    write_series(tmp_path, origin=(0.0, 0.0, 50.0), steps=(-3.0,) * 5)  # positions descend in z
    volume = read_dicom_series(tmp_path)
    assert volume.affine[2, 2] == pytest.approx(3.0)
    assert volume.to_world([0, 0, 0])[2] == pytest.approx(35.0)
    np.testing.assert_array_equal(volume.array[0, 0], [stored_value(s, 0, 0) - 1024 for s in range(5, -1, -1)])


def test_rescale_slope_and_intercept_are_applied(tmp_path):
    write_series(tmp_path / "integer", slope=2.0, intercept=-1000.0)
    write_series(tmp_path / "fractional", slope=0.5, intercept=-1024.5)
    integer, fractional = read_dicom_series(tmp_path / "integer"), read_dicom_series(tmp_path / "fractional")
    assert integer.array.dtype == np.int16
    assert integer.array[3, 2, 1] == 2 * stored_value(1, 2, 3) - 1000
    assert fractional.array.dtype == np.float32
    assert fractional.array[3, 2, 1] == pytest.approx(0.5 * stored_value(1, 2, 3) - 1024.5)


def test_non_dicom_files_and_dicomdir_are_skipped(tmp_path):
    write_series(tmp_path)
    (tmp_path / "notes.txt").write_text("scanned on a Tuesday")
    directory = pydicom.Dataset()
    directory.file_meta = FileMetaDataset()
    directory.file_meta.MediaStorageSOPClassUID = MediaStorageDirectoryStorage
    directory.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    directory.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    directory.FileSetID = "SPINE"
    directory.save_as(tmp_path / "DICOMDIR", enforce_file_format=True)
    assert read_dicom_series(tmp_path).shape == (COLUMNS, ROWS, 6)


def test_read_ct_reads_a_dicom_folder(tmp_path):
    write_series(tmp_path, orientation=oblique_orientation())
    volume = read_ct(tmp_path)
    np.testing.assert_allclose(volume.affine, read_dicom_series(tmp_path).affine)
    assert volume.source == str(tmp_path)


def test_two_series_in_one_folder_are_refused(tmp_path):
    write_series(tmp_path, series_uid="1.2.3.4")
    write_series(tmp_path / "other", series_uid="1.2.3.5")
    for path in (tmp_path / "other").iterdir():
        path.rename(tmp_path / f"B{path.name}")
    with pytest.raises(SpinelabError, match=r"2 DICOM series.*1\.2\.3\.4.*1\.2\.3\.5"):
        read_dicom_series(tmp_path)


def test_gantry_tilt_is_refused(tmp_path):
    write_series(tmp_path, sideways=0.4)  # about 9 degrees of tilt at 2.5 mm spacing
    with pytest.raises(SpinelabError, match="gantry tilt"):
        read_dicom_series(tmp_path)


def test_uneven_spacing_is_refused_naming_the_spacings(tmp_path):
    write_series(tmp_path, steps=(2.5, 2.5, 3.1, 2.5, 2.5))
    with pytest.raises(SpinelabError, match=r"uneven slice spacing, 2\.500 to 3\.100 mm"):
        read_dicom_series(tmp_path)


def test_missing_slices_are_refused(tmp_path):
    write_series(tmp_path, steps=(2.5, 2.5, 7.5, 2.5, 2.5))
    with pytest.raises(SpinelabError, match=r"2 slice\(s\) missing"):
        read_dicom_series(tmp_path)


def test_duplicate_slices_are_refused(tmp_path):
    write_series(tmp_path, steps=(2.5, 0.0, 2.5, 2.5, 2.5))
    with pytest.raises(SpinelabError, match="duplicate"):
        read_dicom_series(tmp_path)


def test_folder_without_dicom_images(tmp_path):
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(SpinelabError, match="no DICOM image files"):
        read_dicom_series(tmp_path)


def test_folder_of_other_image_files_says_to_pass_a_file(tmp_path):
    for name in ("a.nii.gz", "b.MHA", "c.nrrd", "d.nhdr", "notes.txt"):
        (tmp_path / name).write_bytes(b"not DICOM")
    with pytest.raises(SpinelabError) as excinfo:
        read_ct(tmp_path)
    assert str(excinfo.value) == (f"{tmp_path}: no DICOM files here, but 4 image file(s) (a.nii.gz, b.MHA, c.nrrd, "
                                  f"...); pass a file, not the folder")


@pytest.mark.filterwarnings("ignore:The DICOM readers are highly experimental")
def test_in_plane_geometry_agrees_with_nibabel(tmp_path):
    """nibabel's DICOM wrapper (an independent implementation) indexes [row, column]; ours [column, row]."""
    from nibabel.nicom import dicomwrappers

    positions = write_series(tmp_path, orientation=oblique_orientation())
    volume = read_dicom_series(tmp_path)
    first = next(p for p in tmp_path.iterdir() if pydicom.dcmread(p).InstanceNumber == 1)
    nibabel_lps = dicomwrappers.wrapper_from_data(pydicom.dcmread(first)).affine
    ours_lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ volume.affine
    np.testing.assert_allclose(ours_lps[:3, [1, 0]], nibabel_lps[:3, :2], atol=1e-9)
    np.testing.assert_allclose(ours_lps[:3, 3], nibabel_lps[:3, 3], atol=1e-9)
    np.testing.assert_allclose(ours_lps[:3, 3], positions[0])
