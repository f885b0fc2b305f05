"""Read one CT series from a DICOM folder into a ``CTVolume`` with an exact voxel -> RAS+ affine.

The geometry comes only from ImagePositionPatient (IPP), ImageOrientationPatient (IOP) and
PixelSpacing. Slices are ordered by their position along the slice normal (row cosine x column
cosine), never by InstanceNumber or file name, and the series is refused, with the reason, when a
single affine cannot describe it: gantry tilt, uneven spacing, missing or duplicate slices, mixed
orientations or sizes. DICOM patient coordinates are LPS+; the affine is converted to RAS+.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from spinelab.errors import SpinelabError
from spinelab.io.volume import LPS_TO_RAS, CTVolume

#: Largest allowed spread of slice spacings, relative to the median spacing.
SPACING_TOLERANCE = 0.01
#: Largest allowed distance of a slice position from the line along the normal, in pixels.
TILT_TOLERANCE_PIXELS = 0.05


def _image_datasets(folder: Path) -> list[pydicom.Dataset]:
    """Every DICOM image file directly in ``folder``; other files (DICOMDIR, notes, non-DICOM) are skipped."""
    datasets = []
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        try:
            dataset = pydicom.dcmread(path)
        except (InvalidDicomError, EOFError, OSError, ValueError, TypeError, AttributeError):
            continue
        if "PixelData" in dataset:
            dataset.filename = str(path)
            datasets.append(dataset)
    return datasets


def _single_series(datasets: list[pydicom.Dataset], folder: Path) -> list[pydicom.Dataset]:
    series: dict[str, list[pydicom.Dataset]] = {}
    for dataset in datasets:
        series.setdefault(str(dataset.get("SeriesInstanceUID", "unknown")), []).append(dataset)
    if len(series) > 1:
        listing = ", ".join(f"{uid} ({len(members)} files)" for uid, members in sorted(series.items()))
        raise SpinelabError(f"{folder}: holds {len(series)} DICOM series ({listing}); put one series per folder")
    return datasets


def _required(dataset: pydicom.Dataset, keyword: str, count: int) -> np.ndarray:
    value = dataset.get(keyword)
    if value is None or len(value) != count:
        raise SpinelabError(
            f"{dataset.filename}: DICOM tag {keyword} is missing or malformed; cannot place the slice in space")
    return np.asarray([float(v) for v in value])


def _slice_geometry(datasets: list[pydicom.Dataset], folder: Path):
    """Row and column cosines, pixel spacing (row, column) and each slice's IPP, checked to agree."""
    orientation = _required(datasets[0], "ImageOrientationPatient", 6)
    spacing = _required(datasets[0], "PixelSpacing", 2)
    size = (int(datasets[0].Rows), int(datasets[0].Columns))
    for dataset in datasets:
        if int(dataset.get("NumberOfFrames", 1) or 1) > 1:
            raise SpinelabError(f"{dataset.filename}: multi-frame (enhanced) DICOM is not supported; "
                                "export the series as single-frame slices")
        if not np.allclose(_required(dataset, "ImageOrientationPatient", 6), orientation, atol=1e-4):
            raise SpinelabError(
                f"{folder}: slices have different ImageOrientationPatient; the series is not one volume")
        if not np.allclose(_required(dataset, "PixelSpacing", 2), spacing, rtol=1e-4):
            raise SpinelabError(f"{folder}: slices have different PixelSpacing; the series is not one volume")
        if (int(dataset.Rows), int(dataset.Columns)) != size:
            raise SpinelabError(f"{folder}: slices have different sizes; the series is not one volume")
    positions = np.stack([_required(dataset, "ImagePositionPatient", 3) for dataset in datasets])
    return orientation[:3], orientation[3:], spacing, positions


def _check_slice_positions(offsets: np.ndarray, off_normal: np.ndarray, pixel: float, folder: Path) -> None:
    """Refuse tilted, duplicated, missing or unevenly spaced slices (``offsets`` sorted along the normal)."""
    if off_normal.max() > TILT_TOLERANCE_PIXELS * pixel:
        raise SpinelabError(
            f"{folder}: slice positions drift {off_normal.max():.2f} mm sideways from the slice normal "
            "(gantry tilt); resample the series to an untilted grid first")
    steps = np.diff(offsets)
    if steps.min() < 1e-3:
        raise SpinelabError(f"{folder}: two slices share the position {offsets[np.argmin(steps)]:.3f} mm "
                            "along the normal (duplicate slices)")
    typical = float(np.median(steps))
    multiples = np.round(steps / typical)
    if (multiples >= 2).any() and np.allclose(steps, multiples * typical, rtol=SPACING_TOLERANCE):
        gap = int(np.argmax(multiples))
        missing = int((multiples - 1).sum())
        raise SpinelabError(
            f"{folder}: {missing} slice(s) missing (gap of {steps[gap]:.2f} mm after the slice at "
            f"{offsets[gap]:.2f} mm along the normal, spacing otherwise {typical:.2f} mm)")
    if (steps.max() - steps.min()) > SPACING_TOLERANCE * typical:
        raise SpinelabError(
            f"{folder}: uneven slice spacing, {steps.min():.3f} to {steps.max():.3f} mm; "
            "a CT volume needs evenly spaced slices")


def _pixels(dataset: pydicom.Dataset) -> np.ndarray:
    try:
        return dataset.pixel_array
    except Exception as exc:  # noqa: BLE001 - decoders raise many types; the user needs the transfer syntax
        syntax = dataset.file_meta.get("TransferSyntaxUID", "unknown") if hasattr(dataset, "file_meta") else "unknown"
        raise SpinelabError(
            f"{dataset.filename}: cannot decode pixel data (transfer syntax {syntax}: {str(exc).splitlines()[0]}); "
            "decompress the series or install pylibjpeg") from None


def _hounsfield(datasets: list[pydicom.Dataset]) -> np.ndarray:
    """Slices stacked as ``array[column, row, slice]`` with RescaleSlope/Intercept applied.

    Integer slope and intercept keep an int16 array when the values fit (half the memory of float32).
    """
    raw = np.stack([_pixels(dataset).T for dataset in datasets], axis=2)
    slopes = np.array([float(dataset.get("RescaleSlope", 1) or 1) for dataset in datasets])
    intercepts = np.array([float(dataset.get("RescaleIntercept", 0) or 0) for dataset in datasets])
    if np.all(slopes == np.round(slopes)) and np.all(intercepts == np.round(intercepts)):
        values = raw.astype(np.int32) * slopes.astype(np.int32) + intercepts.astype(np.int32)
        info = np.iinfo(np.int16)
        if values.min() >= info.min and values.max() <= info.max:
            return values.astype(np.int16)
        return values.astype(np.float32)
    return (raw.astype(np.float32) * slopes.astype(np.float32) + intercepts.astype(np.float32))


def _no_dicom_message(folder: Path, image_suffixes: tuple[str, ...]) -> str:
    """A folder of NIfTI/MHA/NRRD files given where a DICOM series was expected: point at the files."""
    images = sorted(p.name for p in folder.iterdir() if p.is_file() and p.name.lower().endswith(image_suffixes))
    if not images:
        return f"{folder}: no DICOM image files; expected a CT series of several slices"
    shown = ", ".join(images[:3]) + (", ..." if len(images) > 3 else "")
    return f"{folder}: no DICOM files here, but {len(images)} image file(s) ({shown}); pass a file, not the folder"


def read_dicom_series(folder: str | Path, other_image_suffixes: tuple[str, ...] = ()) -> CTVolume:
    """The CT series in ``folder``: ``array[i, j, k]`` = column i, row j, slice k (sorted along the normal).

    When the folder holds no DICOM, files ending in ``other_image_suffixes`` are named in the error.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise SpinelabError(f"{folder}: not a folder")
    datasets = _single_series(_image_datasets(folder), folder)
    if not datasets:
        raise SpinelabError(_no_dicom_message(folder, other_image_suffixes))
    if len(datasets) == 1:
        raise SpinelabError(f"{folder}: only one DICOM slice; expected a CT series of several slices")
    row_cosine, column_cosine, (row_spacing, column_spacing), positions = _slice_geometry(datasets, folder)
    normal = np.cross(row_cosine, column_cosine)
    offsets = positions @ normal
    order = np.argsort(offsets, kind="stable")
    datasets, positions, offsets = [datasets[i] for i in order], positions[order], offsets[order]
    relative = positions - positions[0]
    off_normal = np.linalg.norm(relative - np.outer(relative @ normal, normal), axis=1)
    _check_slice_positions(offsets, off_normal, min(row_spacing, column_spacing), folder)

    affine_lps = np.eye(4)
    affine_lps[:3, 0] = row_cosine * column_spacing  # i: next column, along the row direction
    affine_lps[:3, 1] = column_cosine * row_spacing  # j: next row, along the column direction
    affine_lps[:3, 2] = (positions[-1] - positions[0]) / (len(positions) - 1)
    affine_lps[:3, 3] = positions[0]
    return CTVolume(_hounsfield(datasets), np.diag([*LPS_TO_RAS, 1.0]) @ affine_lps, str(folder))
