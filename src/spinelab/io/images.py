"""Reading and writing image files: NIfTI, MetaImage, NRRD and DICOM series as ``CTVolume``, checked to be
usable CTs."""

from __future__ import annotations

import gzip
import warnings
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np

from spinelab.errors import SpinelabError, SpinelabWarning
from spinelab.io.dicom import read_dicom_series
from spinelab.io.files import atomic_path
from spinelab.io.intensity import checked_hounsfield
from spinelab.io.itk import ITK_SUFFIXES, read_itk
from spinelab.io.volume import CTVolume

NIFTI_SUFFIXES = (".nii.gz", ".nii")
#: Every image file spinelab reads (lower case); a DICOM series comes as a folder instead.
IMAGE_SUFFIXES = NIFTI_SUFFIXES + ITK_SUFFIXES


def nifti_stem(path: str | Path) -> str:
    """File name without its image suffix (.nii.gz, .mha, ... in any case); other names, such as a DICOM
    folder's, stay whole."""
    name = Path(path).name
    for suffix in IMAGE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def scan_id(path: str | Path) -> str:
    """Case name of a CT file: 'sub-01_ct.nii.gz' -> 'sub-01' (the VerSe '_ct' suffix dropped)."""
    stem = nifti_stem(path)
    return stem.removesuffix("_ct") if stem != Path(path).name else stem


def _check_ct_values(array: np.ndarray, name: str) -> np.ndarray:
    """The array if it is a usable CT in Hounsfield units (converted if safely recognisable); else SpinelabError."""
    if min(array.shape) < 4:
        raise SpinelabError(f"{name}: volume {array.shape} is too small to be a CT scan")
    if array.dtype.kind not in "biuf":
        raise SpinelabError(f"{name}: voxel type {array.dtype} is not numeric")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise SpinelabError(f"{name}: volume contains NaN or infinite values")
    low, high = float(array.min()), float(array.max())
    if low == high:
        raise SpinelabError(f"{name}: volume is constant ({low:g}); it holds no image")
    if array.dtype.kind in "biu" and low >= 0 and high <= 255 and len(np.unique(array[::4, ::4, ::4])) <= 64:
        raise SpinelabError(
            f"{name}: looks like a label map (integer values {low:g}..{high:g}), not a CT in Hounsfield units")
    array = checked_hounsfield(array, name)
    low, high = float(array.min()), float(array.max())
    if high < 100 or low > 0:
        raise SpinelabError(
            f"{name}: intensities {low:g}..{high:g} are not CT Hounsfield units (expected air below 0 and bone above 100)")
    return array


def _squeeze_to_3d(array: np.ndarray, name: str) -> np.ndarray:
    if array.ndim == 4 and array.shape[3] == 1:
        return array[..., 0]
    if array.ndim != 3:
        raise SpinelabError(f"{name}: expected a 3D volume, got {array.ndim}D data of shape {array.shape}")
    return array


def read_nifti(path: str | Path, check_ct: bool = True) -> CTVolume:
    """Read a NIfTI file; ``check_ct=False`` for label maps."""
    path = Path(path)
    try:
        image = nib.load(str(path))
        array = np.asanyarray(image.dataobj)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise SpinelabError(f"{path}: file is truncated or corrupt ({exc})") from None
    except (nib.filebasedimages.ImageFileError, OSError, ValueError) as exc:
        raise SpinelabError(f"{path}: cannot read as NIfTI ({str(exc).splitlines()[0]})") from None
    array = _squeeze_to_3d(array, path.name)
    if check_ct:
        array = _check_ct_values(array, path.name)
    affine = image.affine
    if affine is None:
        raise SpinelabError(f"{path}: NIfTI header has no spatial transform")
    volume = CTVolume(array, affine, str(path))
    if image.header["sform_code"] == 0 and image.header["qform_code"] == 0:
        warnings.warn(f"{path.name} has no orientation in its header (sform and qform codes 0); assuming "
                      f"{''.join(volume.axcodes)} axes of {' x '.join(f'{s:g}' for s in volume.spacing)} mm voxels "
                      "centred on the world origin, as nibabel does", SpinelabWarning, stacklevel=2)
    return volume


def read_ct(path: str | Path) -> CTVolume:
    """Read a CT from an image file (``IMAGE_SUFFIXES``) or a DICOM series folder, checking that it is a usable CT."""
    path = Path(path)
    if not path.exists():
        raise SpinelabError(f"{path}: no such file or folder")
    if path.is_dir():
        volume = read_dicom_series(path, other_image_suffixes=IMAGE_SUFFIXES)
    elif path.name.lower().endswith(NIFTI_SUFFIXES):
        return read_nifti(path)
    elif path.name.lower().endswith(ITK_SUFFIXES):
        volume = read_itk(path)
    else:
        raise SpinelabError(f"{path}: not a CT file (expected {', '.join(IMAGE_SUFFIXES)} or a DICOM series folder)")
    return volume.with_array(_check_ct_values(volume.array, path.name))


def read_label_map(path: str | Path) -> CTVolume:
    """Read an integer label map (VerSe, TotalSegmentator, a 3D Slicer labelmap or one-layer .seg.nrrd) as integers."""
    path = Path(path)
    if not path.exists():
        raise SpinelabError(f"{path}: no such file")
    volume = read_itk(path) if path.name.lower().endswith(ITK_SUFFIXES) else read_nifti(path, check_ct=False)
    array = volume.array
    if array.dtype.kind == "f":
        if not np.isfinite(array).all() or not np.array_equal(array, np.round(array)):
            raise SpinelabError(f"{path}: label map holds non-integer values")
    if array.min() < 0:
        raise SpinelabError(f"{path}: label map holds negative values")
    return volume.with_array(array.astype(np.int16))


def write_nifti(volume: CTVolume, path: str | Path, dtype=None) -> Path:
    """Write atomically; the affine is stored as both qform and sform."""
    array = volume.array if dtype is None else volume.array.astype(dtype)
    image = nib.Nifti1Image(array, volume.affine)
    image.set_qform(volume.affine, code=1)
    image.set_sform(volume.affine, code=1)
    with atomic_path(path) as tmp:
        nib.save(image, str(tmp))
    return Path(path)
