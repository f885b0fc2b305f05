"""A catalogue of bad and unusual inputs, shared by the robustness tests and docs/ROBUSTNESS.md.

Each ``InputCase`` says what the input is, how to write it (``build(folder, ct) -> paths`` given a
small synthetic lumbar CT) and what must happen to it in ``spinelab predict``: ``refused`` (one
``skipped`` line naming it, no output file), ``no vertebrae`` (processed, empty result), ``warned``
(processed, a ``spinelab: warning`` line with the given words) or ``ok``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk
from matplotlib.image import imsave
from scipy.spatial.transform import Rotation

from spinelab.io.images import write_nifti
from spinelab.io.volume import CTVolume
from spinelab.synth import SynthOptions, generate_case

RNG_SEED = 0


@dataclass
class InputCase:
    kind: str
    build: Callable[[Path, CTVolume], list[Path]]
    expect: str
    words: tuple[str, ...] = ()


@functools.cache
def _lumbar_case():
    return generate_case(3, SynthOptions(resolution="test", fov="lumbar"))


def spine_ct() -> CTVolume:
    """A small synthetic lumbar CT in HU (2-4 mm voxels), canonical, int16."""
    ct = _lumbar_case().ct.canonical()
    return ct.with_array(ct.array.astype(np.int16))


def rotated_copy(ct: CTVolume, axis: int, degrees: float = 30.0, shear: float = 0.0) -> CTVolume:
    """The same patient on a grid rotated (or sheared) about its centre: world positions unchanged."""
    linear = Rotation.from_rotvec(np.eye(3)[axis] * np.radians(degrees)).as_matrix() @ np.diag(ct.spacing)
    linear[0, 1] += shear * ct.spacing[1]
    centre = (np.array(ct.shape) - 1) / 2.0
    affine = np.eye(4)
    affine[:3, :3], affine[:3, 3] = linear, ct.to_world(centre) - linear @ centre
    moved = ct.resampled_onto(CTVolume(np.zeros(ct.shape, np.int16), affine), order=1, cval=-1000.0)
    return moved.with_array(moved.array.astype(np.int16))


def _nifti(path: Path, array, affine=None) -> list[Path]:
    nib.save(nib.Nifti1Image(np.asarray(array), np.diag([2.0, 2.0, 2.0, 1.0]) if affine is None else affine), str(path))
    return [path]


def _no_orientation(path: Path, ct: CTVolume) -> list[Path]:
    """A NIfTI whose header has neither sform nor qform (both codes 0), only its voxel sizes (pixdim)."""
    image = nib.Nifti1Image(np.asarray(ct.array), None)
    image.header.set_zooms(tuple(float(s) for s in ct.spacing))
    nib.save(image, str(path))
    return [path]


def _copy(folder: Path, ct: CTVolume, *names: str) -> list[Path]:
    return [write_nifti(ct, folder / name) for name in names]


def _noise(folder: Path, name: str, sample) -> list[Path]:
    return _nifti(folder / name, sample(np.random.default_rng(RNG_SEED)).astype(np.int16))


def _head(folder: Path) -> list[Path]:
    grid = np.stack(np.meshgrid(*[np.arange(n) - n / 2 for n in (100, 100, 90)], indexing="ij"), -1) * 2.0
    radius = np.linalg.norm(grid, axis=-1)
    head = np.where(radius < 90, 40, -1000).astype(np.int16)
    head[(radius >= 84) & (radius < 90)] = 1400
    return _nifti(folder / "head.nii.gz", head)


def _lateral_crop(folder: Path, ct: CTVolume) -> list[Path]:
    """The fifth of the body farthest from the spine (ribs, arm, soft tissue; no vertebra)."""
    spine_x = _lumbar_case().centroids.to_voxel(ct.affine)[:, 0]
    x = ct.shape[0]
    side = slice(0, x // 5) if np.median(spine_x) > x / 2 else slice(x - x // 5, x)
    return [write_nifti(ct.cropped((side, slice(None), slice(None))), folder / "lateral_crop.nii.gz")]


def _with(ct: CTVolume, change) -> np.ndarray:
    array = ct.array.astype(np.float32)
    change(array)
    return array


def _truncated(folder: Path, ct: CTVolume) -> list[Path]:
    whole = write_nifti(ct, folder / "whole_for_truncation.nii.gz").read_bytes()
    (folder / "truncated.nii.gz").write_bytes(whole[: len(whole) // 2])
    return [folder / "truncated.nii.gz"]


def _bytes(path: Path, content: bytes) -> list[Path]:
    path.write_bytes(content)
    return [path]


def _png(folder: Path) -> list[Path]:
    imsave(folder / "picture.png", np.random.default_rng(RNG_SEED).random((16, 16)))
    return [folder / "picture.png"]


def _itk(folder: Path, ct: CTVolume, suffix: str) -> list[Path]:
    image = sitk.GetImageFromArray(np.transpose(ct.array, (2, 1, 0)))
    image.SetSpacing(tuple(float(v) for v in ct.spacing))
    image.SetOrigin(tuple(float(v) for v in ct.affine[:3, 3] * [-1, -1, 1]))
    image.SetDirection(tuple((np.diag([-1.0, -1.0, 1.0]) @ (ct.affine[:3, :3] / ct.spacing)).ravel()))
    sitk.WriteImage(image, str(folder / f"itk_ct{suffix}"))
    return [folder / f"itk_ct{suffix}"]


def _dicom(folder: Path, name: str, two_series: bool = False, **options) -> list[Path]:
    from test_dicom import write_series

    write_series(folder / name, series_uid="1.2.3.4" if two_series else None, **options)
    if two_series:
        write_series(folder / name / "other", series_uid="1.2.3.5")
        for path in (folder / name / "other").iterdir():
            path.rename(folder / name / f"B{path.name}")
        (folder / name / "other").rmdir()
    return [folder / name]


def _subfolders(folder: Path, ct: CTVolume) -> list[Path]:
    for name in ("a", "b"):
        (folder / name).mkdir(exist_ok=True)
    return _copy(folder, ct, "a/ct.nii.gz", "b/ct.nii.gz")


def _folder_without_ct(folder: Path, ct: CTVolume) -> list[Path]:
    """A folder searched for scans that holds none (only notes and a label map)."""
    (folder / "no_ct_folder").mkdir(exist_ok=True)
    (folder / "no_ct_folder" / "notes.txt").write_text("no scan here\n")
    write_nifti(ct.with_array(np.zeros(ct.shape, np.int16)), folder / "no_ct_folder" / "case_seg-vert_msk.nii.gz")
    return [folder / "no_ct_folder"]


CATALOGUE = (
    InputCase("a good synthetic lumbar CT", lambda f, ct: _copy(f, ct, "good_ct.nii.gz"), "ok"),
    InputCase("a missing file", lambda f, ct: [f / "missing.nii.gz"], "refused", ("no such file",)),
    InputCase("a PNG picture", lambda f, ct: _png(f), "refused", ("not a CT file",)),
    InputCase("a uint8 label map given as CT",
              lambda f, ct: _nifti(f / "labels.nii.gz", (ct.array > 300).astype(np.uint8) * 20, ct.affine),
              "refused", ("label map",)),
    InputCase("a float label map given as CT",
              lambda f, ct: _nifti(f / "float_labels.nii.gz", (ct.array > 300).astype(np.float32) * 20, ct.affine),
              "refused", ("label map",)),
    InputCase("a constant volume", lambda f, ct: _nifti(f / "constant.nii.gz", np.full((16, 16, 16), 40, np.int16)),
              "refused", ("constant",)),
    InputCase("NaN voxels", lambda f, ct: _nifti(f / "nan.nii.gz", _with(ct, lambda a: a.__setitem__((3, 3, 3), np.nan)),
                                                  ct.affine), "refused", ("nan",)),
    InputCase("a value of 1e30",
              lambda f, ct: _nifti(f / "huge.nii.gz", _with(ct, lambda a: a.__setitem__((5, 5, 5), 1e30)), ct.affine),
              "refused", ("1e+30",)),
    InputCase("a 2D image", lambda f, ct: _nifti(f / "flat.nii.gz", ct.array[:, :, 0]), "refused", ("3d",)),
    InputCase("a 4D series", lambda f, ct: _nifti(f / "four.nii.gz", np.stack([ct.array] * 2, axis=-1), ct.affine),
              "refused", ("3d",)),
    InputCase("a truncated .nii.gz", _truncated, "refused", ("truncated or corrupt",)),
    InputCase("random bytes named .nii.gz", lambda f, ct: _bytes(f / "garbage.nii.gz", b"not a NIfTI file at all"),
              "refused", ("cannot read",)),
    InputCase("an 8-bit windowed export",
              lambda f, ct: _nifti(f / "windowed8bit.nii.gz",
                                   np.clip((ct.array + 1000.0) / 2000.0 * 255.0, 0, 255).astype(np.uint8), ct.affine),
              "refused", ("8-bit",)),
    InputCase("uint16 with a +1024 offset and no rescale",
              lambda f, ct: _nifti(f / "offset_ct.nii.gz", (ct.array.astype(np.int32) + 1024).clip(0).astype(np.uint16),
                                   ct.affine), "warned", ("1024",)),
    InputCase("int8 data", lambda f, ct: _nifti(f / "int8.nii.gz", (ct.array // 16).clip(-128, 127).astype(np.int8),
                                                 ct.affine), "refused", ("int8",)),
    InputCase("Gaussian noise",
              lambda f, ct: _noise(f, "gaussian_noise.nii.gz", lambda r: r.normal(0, 400, (100, 100, 80))),
              "no vertebrae"),
    InputCase("uniform noise",
              lambda f, ct: _noise(f, "uniform_noise.nii.gz", lambda r: r.uniform(-1000, 2000, (100, 100, 80))),
              "no vertebrae"),
    InputCase("a sphere 'head' phantom", lambda f, ct: _head(f), "no vertebrae"),
    InputCase("a 4 x 4 x 4 volume", lambda f, ct: _noise(f, "tiny.nii.gz", lambda r: r.normal(0, 300, (4, 4, 4))),
              "no vertebrae"),
    InputCase("a lateral crop without the spine", _lateral_crop, "no vertebrae"),
    InputCase("an oblique copy (30 degrees about the AP axis)",
              lambda f, ct: [write_nifti(rotated_copy(ct, 1), f / "oblique_ct.nii.gz")], "warned", ("oblique",)),
    InputCase("a sheared affine",
              lambda f, ct: [write_nifti(rotated_copy(ct, 2, 0.0, shear=0.3), f / "sheared_ct.nii.gz")],
              "warned", ("oblique",)),
    InputCase("no sform and no qform",
              lambda f, ct: _no_orientation(f / "no_orientation.nii.gz", ct),
              "warned", ("no orientation",)),
    InputCase("two inputs with one name (a/ct.nii.gz, b/ct.nii.gz)", _subfolders, "ok"),
    InputCase("x.nii.gz next to x_ct.nii.gz", lambda f, ct: _copy(f, ct, "x.nii.gz", "x_ct.nii.gz"), "ok"),
    InputCase("a 247-character file name", lambda f, ct: _copy(f, ct, "long" * 60 + "_name.nii.gz"), "ok"),
    InputCase("an MHA file", lambda f, ct: _itk(f, ct, ".mha"), "ok"),
    InputCase("an NRRD file", lambda f, ct: _itk(f, ct, ".nrrd"), "ok"),
    InputCase("a folder holding no CT (notes, a label map)", _folder_without_ct, "refused", ("no DICOM",)),
    InputCase("a DICOM folder holding two series", lambda f, ct: _dicom(f, "two_series", two_series=True), "refused",
              ("2 DICOM series",)),
    InputCase("a DICOM series with gantry tilt", lambda f, ct: _dicom(f, "gantry_tilt", sideways=0.4), "refused",
              ("gantry tilt",)),
)


def make_inputs(folder: Path) -> dict[str, list[Path]]:
    """Write every catalogue input below ``folder``: {kind: paths}."""
    folder.mkdir(parents=True, exist_ok=True)
    ct = spine_ct()
    return {case.kind: case.build(folder, ct) for case in CATALOGUE}
