"""CT volumes with exact voxel-to-world geometry, and the one place orientation is canonicalized.

World convention, used by every affine and centroid in spinelab: **RAS+ millimetres**, the scanner
space of NIfTI/nibabel: +x towards the patient's right, +y anterior, +z superior. DICOM's LPS+
positions are converted on reading (``LPS_TO_RAS``). A volume keeps the affine of the file it came
from; methods work on ``canonical()`` copies (voxel axes ordered R, A, S) and their results are
world coordinates, so they are the same whatever order the file stored its axes in. Every change
of axis order (``reoriented``) and every voxel size (``spacing``) comes from this class. A scan whose
axes are rotated or sheared away from the world axes (``obliquity``) is resampled onto an
axis-aligned grid by ``canonical()``, so methods may always take array axes for world axes.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from nibabel import orientations as nio
from scipy import ndimage

from spinelab.errors import SpinelabError, SpinelabWarning

#: Multiply DICOM/ITK LPS+ coordinates by this to get RAS+ (and back: it is its own inverse).
LPS_TO_RAS = np.array([-1.0, -1.0, 1.0])
#: ``canonical()`` resamples a scan whose axes lie further than this from the world axes; below it, taking
#: array axes for world axes is off by at most 2.6 mm at 300 mm from the volume's centre.
OBLIQUE_DEGREES = 0.5
#: The axis-aligned grid of an oblique scan covers its corners, so it has more voxels; this bounds how many more.
MAX_VOXEL_GROWTH = 1.5


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
    def obliquity(self) -> float:
        """Largest angle (degrees) between an array axis and its nearest world axis; a shear tilts an axis too."""
        directions = np.abs(self.affine[:3, :3]) / self.spacing
        return float(np.degrees(np.arccos(np.clip(directions.max(axis=0), 0.0, 1.0))).max())

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

    def face_distances(self, xyz) -> np.ndarray:
        """(N, 3) millimetres from each world point to the nearer face of the scanned box along each
        array axis; negative outside."""
        voxels = self.to_voxel(np.asarray(xyz, dtype=np.float64).reshape(-1, 3))
        return np.minimum(voxels + 0.5, np.array(self.shape) - 0.5 - voxels) * self.spacing

    def distance_outside(self, xyz) -> np.ndarray:
        """Millimetres from each world point to the scanned box (voxel centres plus half a voxel); 0 inside."""
        voxels = self.to_voxel(np.asarray(xyz, dtype=np.float64).reshape(-1, 3))
        beyond = np.maximum(-0.5 - voxels, 0.0) + np.maximum(voxels - (np.array(self.shape) - 0.5), 0.0)
        return np.linalg.norm(beyond * self.spacing, axis=1)

    def with_array(self, array: np.ndarray) -> CTVolume:
        """Same grid, other voxel values (e.g. a label map predicted on this volume)."""
        return CTVolume(array, self.affine.copy(), self.source)

    def cropped(self, box: tuple[slice, ...]) -> CTVolume:
        """The sub-volume ``array[box]`` (unit-step slices) with its exact affine: world positions kept."""
        starts = [s.indices(n)[0] for s, n in zip(box, self.shape)]
        affine = self.affine.copy()
        affine[:3, 3] = self.to_world(starts)
        return CTVolume(np.ascontiguousarray(self.array[box]), affine, self.source)

    def reoriented(self, axcodes=("R", "A", "S")) -> CTVolume:
        """The same volume with its axes permuted/flipped to ``axcodes``; world positions unchanged."""
        current = nio.io_orientation(self.affine)
        target = nio.axcodes2ornt(tuple(axcodes))
        transform = nio.ornt_transform(current, target)
        array = nio.apply_orientation(self.array, transform)
        affine = self.affine @ nio.inv_ornt_aff(transform, self.array.shape)
        return CTVolume(array, affine, self.source)

    def canonical(self) -> CTVolume:
        """Axes ordered R, A, S and aligned with the world axes: the frame methods see.

        Axes within ``OBLIQUE_DEGREES`` of the world axes are permuted/flipped exactly (an array view).
        Oblique or sheared grids are resampled trilinearly onto an axis-aligned grid covering the whole
        volume (outside filled with its minimum; a boolean mask stays a mask), with a SpinelabWarning.
        Integer label maps on oblique grids need ``resampled_onto`` with order 0 instead.
        """
        angle = self.obliquity
        if angle <= OBLIQUE_DEGREES:
            return self.reoriented(("R", "A", "S"))
        affine, shape = self._axis_aligned_grid()
        warnings.warn(f"{self.name}: oblique scan (axes {angle:.1f}° from the world axes): resampled "
                      f"onto an axis-aligned grid of {' x '.join(f'{s:.2f}' for s in np.diag(affine)[:3])} mm voxels",
                      SpinelabWarning, stacklevel=2)
        values = self.array.astype(np.float32, copy=False)
        array = self._values_on(values, affine, shape, order=1, cval=float(values.min()))
        return CTVolume(array >= 0.5 if self.array.dtype == bool else array, affine, self.source)

    def _axis_aligned_grid(self) -> tuple[np.ndarray, tuple[int, int, int]]:
        """An R-A-S grid around all voxel centres; each world axis keeps the spacing of the array axis nearest
        to it, coarsened evenly where the grid would exceed ``MAX_VOXEL_GROWTH`` times the voxel count."""
        nearest_world_axis = nio.io_orientation(self.affine)[:, 0].astype(int)
        spacing = np.empty(3)
        spacing[nearest_world_axis] = self.spacing
        corners = np.array(np.meshgrid(*[(0, n - 1) for n in self.shape], indexing="ij")).reshape(3, -1).T
        world = self.to_world(corners)
        low, high = world.min(axis=0), world.max(axis=0)
        while True:
            shape = np.ceil((high - low) / spacing - 1e-6).astype(int) + 1
            growth = np.prod(shape, dtype=np.float64) / self.array.size
            if growth <= MAX_VOXEL_GROWTH:
                break
            spacing = spacing * (growth / MAX_VOXEL_GROWTH) ** (1 / 3) * 1.001
        affine = np.diag([*spacing, 1.0])
        affine[:3, 3] = (low + high) / 2 - (shape - 1) / 2 * spacing
        return affine, tuple(int(n) for n in shape)

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
            array = _affine_transform(self.array, ratio, shape, output=np.float32, order=order, mode="constant",
                                      cval=fill, prefilter=False)  # read as it is: no float copy of a full CT
        affine = self.affine.copy()
        affine[:3, :3] = self.affine[:3, :3] * ratio
        return CTVolume(array, affine, self.source)

    def resampled_onto(self, grid: CTVolume, order: int = 0, cval: float = 0.0, mode: str = "constant") -> CTVolume:
        """This volume's values on ``grid``'s voxels (world positions kept), e.g. a label map back on its CT.

        ``mode="nearest"`` extends the edge values instead of ``cval`` (a coarse map onto a finer grid
        of the same box, whose outer voxels lie beyond the coarse voxel centres)."""
        array = self._values_on(self.array, grid.affine, grid.shape, order, cval, mode)
        return CTVolume(array, grid.affine.copy(), self.source)

    def _values_on(self, values: np.ndarray, affine: np.ndarray, shape: tuple[int, int, int], order: int,
                   cval: float, mode: str = "constant") -> np.ndarray:
        """``values`` (on this grid) interpolated at the voxels of the grid ``affine`` and ``shape``."""
        voxel_to_voxel = np.linalg.inv(self.affine) @ affine
        return _affine_transform(values, voxel_to_voxel, shape, order=order, mode=mode, cval=cval, prefilter=False)

    def block_averaged(self, target_spacing: float) -> CTVolume:
        """Average blocks of whole voxels to approach ``target_spacing`` mm: fast and exact in geometry.

        Each axis is reduced by the integer factor round(target / spacing) (at least 1); the new voxel
        centre is the mean of its block's centres, so the affine shifts by (factor - 1) / 2 voxels.
        Trailing voxels that do not fill a block are dropped.
        """
        factors = np.maximum(1, np.round(target_spacing / self.spacing)).astype(int)
        if (factors == 1).all():
            return self
        array = _block_mean(self.array, factors)
        affine = self.affine.copy()
        affine[:3, :3] = self.affine[:3, :3] * factors
        affine[:3, 3] = self.to_world((factors - 1) / 2.0)
        return CTVolume(array, affine, self.source)


def is_column_major(array: np.ndarray) -> bool:
    """Whether ``array`` is laid out in Fortran order only, as NIfTI files give: walking it through its
    transpose follows memory and is several times faster."""
    return array.flags.f_contiguous and not array.flags.c_contiguous


def _affine_transform(values: np.ndarray, matrix: np.ndarray, shape, **options) -> np.ndarray:
    """``ndimage.affine_transform`` (``matrix``: a diagonal or a homogeneous 4 x 4) into a row-major array.
    A column-major input, as NIfTI files give, is read through its transpose, in memory order: several
    times faster than striding across it."""
    if is_column_major(values):
        matrix = np.asarray(matrix)
        reversed_axes = matrix[::-1] if matrix.ndim == 1 else matrix[np.ix_([2, 1, 0, 3], [2, 1, 0, 3])]
        flipped = ndimage.affine_transform(values.T, reversed_axes, output_shape=tuple(shape)[::-1], **options)
        return np.ascontiguousarray(flipped.T)
    return ndimage.affine_transform(values, matrix, output_shape=shape, **options)


def _block_mean(array: np.ndarray, factors) -> np.ndarray:
    """float32 means of ``factors``-sized blocks, trailing voxels dropped: one axis at a time, as sums of
    strided slices, which is about four times faster than a mean over a 6-D reshaped view."""
    total = array
    for axis, factor in enumerate(factors):
        if factor == 1:
            continue
        stop = total.shape[axis] // factor * factor
        slices = [(slice(None),) * axis + (slice(offset, stop, factor),) for offset in range(factor)]
        summed = total[slices[0]].astype(np.float32)
        for index in slices[1:]:
            summed += total[index]
        total = summed
    return total / np.float32(np.prod(factors))
