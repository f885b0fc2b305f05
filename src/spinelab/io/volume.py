"""CT volumes with exact voxel-to-world geometry, and the one place orientation is canonicalized.

World convention, used by every affine and centroid in spinelab: **RAS+ millimetres**, the scanner
space of NIfTI/nibabel: +x towards the patient's right, +y anterior, +z superior. DICOM's LPS+
positions are converted on reading (x and y negated). A volume keeps the affine of the file it came
from; methods work on ``canonical()`` copies (voxel axes ordered R, A, S) and their results are
world coordinates, so they are the same whatever order the file stored its axes in.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel import orientations as nio
from scipy import ndimage

from spinelab.errors import SpinelabError

NIFTI_SUFFIXES = (".nii.gz", ".nii")


def nifti_stem(path: str | Path) -> str:
    """File name without .nii/.nii.gz (any case); other names, such as a DICOM folder's, stay whole."""
    name = Path(path).name
    for suffix in NIFTI_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def scan_id(path: str | Path) -> str:
    """Case name of a CT file: 'sub-01_ct.nii.gz' -> 'sub-01' (the VerSe '_ct' suffix dropped)."""
    stem = nifti_stem(path)
    return stem.removesuffix("_ct") if stem != Path(path).name else stem


@dataclass
class CTVolume:
    """A 3D array with its voxel -> RAS+ mm affine. ``array[i, j, k]`` sits at ``affine @ (i, j, k, 1)``."""

    array: np.ndarray
    affine: np.ndarray
    source: str | None = field(default=None, compare=False)

    def __post_init__(self):
        self.affine = np.asarray(self.affine, dtype=np.float64)
        if self.array.ndim != 3:
            raise SpinelabError(f"{self.name}: expected a 3D volume, got {self.array.ndim}D data {self.array.shape}")
        if self.affine.shape != (4, 4) or abs(np.linalg.det(self.affine[:3, :3])) < 1e-9:
            raise SpinelabError(f"{self.name}: the voxel-to-world affine is missing or singular")

    @property
    def name(self) -> str:
        return Path(self.source).name if self.source else "volume"

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.array.shape)

    @property
    def spacing(self) -> np.ndarray:
        """Voxel size in mm along each array axis."""
        return np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0))

    @property
    def axcodes(self) -> tuple[str, str, str]:
        """Direction each array axis points to, e.g. ('L', 'A', 'S')."""
        return nio.aff2axcodes(self.affine)

    def to_world(self, ijk) -> np.ndarray:
        ijk = np.asarray(ijk, dtype=np.float64)
        return ijk @ self.affine[:3, :3].T + self.affine[:3, 3]

    def to_voxel(self, xyz) -> np.ndarray:
        xyz = np.asarray(xyz, dtype=np.float64)
        return (xyz - self.affine[:3, 3]) @ np.linalg.inv(self.affine[:3, :3]).T

    def with_array(self, array: np.ndarray) -> CTVolume:
        """Same grid, other voxel values (e.g. a label map predicted on this volume)."""
        return CTVolume(array, self.affine.copy(), self.source)

    def reoriented(self, axcodes=("R", "A", "S")) -> CTVolume:
        """The same volume with its axes permuted/flipped to ``axcodes``; world positions unchanged."""
        current = nio.io_orientation(self.affine)
        target = nio.axcodes2ornt(tuple(axcodes))
        transform = nio.ornt_transform(current, target)
        array = nio.apply_orientation(self.array, transform)
        affine = self.affine @ nio.inv_ornt_aff(transform, self.array.shape)
        return CTVolume(array, affine, self.source)

    def canonical(self) -> CTVolume:
        """Axes ordered R, A, S (the closest such order for oblique scans): the frame methods see."""
        return self.reoriented(("R", "A", "S"))

    def resampled(self, spacing: float | tuple[float, float, float], order: int = 1, cval: float | None = None) -> CTVolume:
        """Resample onto a grid of ``spacing`` mm sharing voxel (0, 0, 0)'s centre and axis directions.

        The affine stays exact: new voxel n sits where old voxel n * new/old sat.
        """
        new = np.broadcast_to(np.asarray(spacing, dtype=np.float64), (3,))
        old = self.spacing
        ratio = new / old
        shape = tuple(int(np.floor((n - 1) / r + 1e-6)) + 1 for n, r in zip(self.shape, ratio))
        fill = float(self.array.min()) if cval is None else cval
        if order == 0:
            grids = [np.minimum(np.round(np.arange(n) * r).astype(np.intp), m - 1)
                     for n, r, m in zip(shape, ratio, self.shape)]
            array = self.array[np.ix_(*grids)]
        else:
            array = ndimage.affine_transform(
                self.array.astype(np.float32, copy=False), ratio, output_shape=shape, order=order,
                mode="constant", cval=fill, prefilter=False)
        affine = self.affine.copy()
        affine[:3, :3] = self.affine[:3, :3] * ratio
        return CTVolume(array, affine, self.source)

    def block_averaged(self, target_spacing: float) -> CTVolume:
        """Average blocks of whole voxels to approach ``target_spacing`` mm: fast and exact in geometry.

        Each axis is reduced by the integer factor round(target / spacing) (at least 1); the new voxel
        centre is the mean of its block's centres, so the affine shifts by (factor - 1) / 2 voxels.
        Trailing voxels that do not fill a block are dropped.
        """
        factors = np.maximum(1, np.round(target_spacing / self.spacing)).astype(int)
        if (factors == 1).all():
            return self
        shape = np.array(self.shape) // factors
        cropped = self.array[: shape[0] * factors[0], : shape[1] * factors[1], : shape[2] * factors[2]]
        blocks = cropped.reshape(shape[0], factors[0], shape[1], factors[1], shape[2], factors[2])
        array = blocks.mean(axis=(1, 3, 5), dtype=np.float32)
        affine = self.affine.copy()
        affine[:3, :3] = self.affine[:3, :3] * factors
        affine[:3, 3] = self.to_world((factors - 1) / 2.0)
        return CTVolume(array, affine, self.source)


def _check_ct_values(array: np.ndarray, name: str) -> None:
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
    if high < 100 or low > 0:
        raise SpinelabError(
            f"{name}: intensities {low:g}..{high:g} are not CT Hounsfield units (expected air below 0 and bone above 100)")


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
        _check_ct_values(array, path.name)
    affine = image.affine
    if affine is None:
        raise SpinelabError(f"{path}: NIfTI header has no spatial transform")
    return CTVolume(array, affine, str(path))


def read_ct(path: str | Path) -> CTVolume:
    """Read a CT from a NIfTI file or a DICOM series folder, checking that it is a usable CT."""
    path = Path(path)
    if not path.exists():
        raise SpinelabError(f"{path}: no such file or folder")
    if path.is_dir():
        from spinelab.io.dicom import read_dicom_series

        volume = read_dicom_series(path)
        _check_ct_values(volume.array, path.name)
        return volume
    if path.name.lower().endswith(NIFTI_SUFFIXES):
        return read_nifti(path)
    raise SpinelabError(f"{path}: not a CT file (expected .nii, .nii.gz or a DICOM series folder)")


def read_label_map(path: str | Path) -> CTVolume:
    """Read an integer label map (VerSe or TotalSegmentator) as a volume of integers."""
    path = Path(path)
    if not path.exists():
        raise SpinelabError(f"{path}: no such file")
    volume = read_nifti(path, check_ct=False)
    array = volume.array
    if array.dtype.kind == "f":
        if not np.isfinite(array).all() or not np.array_equal(array, np.round(array)):
            raise SpinelabError(f"{path}: label map holds non-integer values")
    if array.min() < 0:
        raise SpinelabError(f"{path}: label map holds negative values")
    return volume.with_array(array.astype(np.int16))


def write_nifti(volume: CTVolume, path: str | Path, dtype=None) -> Path:
    """Write atomically; the affine is stored as both qform and sform."""
    from spinelab.io.files import atomic_path

    array = volume.array if dtype is None else volume.array.astype(dtype)
    image = nib.Nifti1Image(array, volume.affine)
    image.set_qform(volume.affine, code=1)
    image.set_sform(volume.affine, code=1)
    with atomic_path(path) as tmp:
        nib.save(image, str(tmp))
    return Path(path)
