"""MetaImage (``.mha``, ``.mhd`` + data file) and NRRD (``.nrrd``, ``.nhdr``, 3D Slicer's ``.seg.nrrd``) volumes,
read through SimpleITK.

ITK geometry is LPS+: voxel index (i, j, k) lies at ``origin + direction @ (spacing * (i, j, k))``.
``sitk.GetArrayFromImage`` indexes voxels ``[k, j, i]``, so the array is transposed to make
``array[i, j, k]`` ITK's voxel (i, j, k), and the affine is that LPS mapping converted to RAS+.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from spinelab.errors import SpinelabError
from spinelab.io.volume import LPS_TO_RAS, CTVolume

#: File suffix (lower case) -> (format name, the ITK reader that must read it).
ITK_FORMATS = {".mha": ("MetaImage", "MetaImageIO"), ".mhd": ("MetaImage", "MetaImageIO"),
               ".nrrd": ("NRRD", "NrrdImageIO"), ".nhdr": ("NRRD", "NrrdImageIO")}
ITK_SUFFIXES = tuple(ITK_FORMATS)
#: Headers that keep their voxels in a separate file, and the header line naming it.
_DETACHED_SUFFIXES = (".mhd", ".nhdr")
_DATA_FILE_LINE = re.compile(r"^\s*(?:ElementDataFile\s*=|data ?file\s*:)\s*(\S.*?)\s*$", re.IGNORECASE | re.MULTILINE)
#: Source locations and function names ITK and teem put before the reason of an error.
_MESSAGE_PREFIX = re.compile(r"^(?:\[nrrd\] |(?:ITK |itk::)ERROR: \w+\(0x[0-9a-f]+\): |\w+: )*")


def _suffix(path: Path) -> str:
    return next(suffix for suffix in ITK_SUFFIXES if path.name.lower().endswith(suffix))


def _check_data_file(path: Path) -> None:
    """ITK's message for a .mhd/.nhdr whose data file is missing names neither the file nor the problem."""
    if not path.name.lower().endswith(_DETACHED_SUFFIXES):
        return
    match = _DATA_FILE_LINE.search(path.read_bytes()[:65536].decode("latin-1"))
    if match is None or match.group(1).upper() in ("LOCAL", "LIST") or "%" in match.group(1):
        return  # voxels inline, or a list/pattern of slice files that ITK reports itself
    if not (path.parent / match.group(1)).is_file():
        raise SpinelabError(f"{path}: its voxel data file {match.group(1)} is missing; keep the two files together")


@contextlib.contextmanager
def _captured_stderr(lines: list[str]):
    """Collect what ITK's C++ code prints on file descriptor 2 (MetaIO reports its errors only there),
    so that a bad file gives the user one line, not library chatter."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines += sink.read().decode(errors="replace").splitlines()


def _reason(printed: list[str], exc: RuntimeError) -> str:
    """The most specific line: MetaIO's first printed one, else the last line of ITK's exception."""
    candidates = [line.strip() for line in printed] or [line.strip() for line in reversed(str(exc).splitlines())]
    line = next((line for line in candidates if line), "unknown error")
    return _MESSAGE_PREFIX.sub("", line) or line


def _affine(image: sitk.Image) -> np.ndarray:
    affine_lps = np.eye(4)
    affine_lps[:3, :3] = np.reshape(image.GetDirection(), (3, 3)) * np.asarray(image.GetSpacing())
    affine_lps[:3, 3] = image.GetOrigin()
    return np.diag([*LPS_TO_RAS, 1.0]) @ affine_lps


def _check_3d_scalar(image: sitk.Image, path: Path) -> None:
    layers, dimension = image.GetNumberOfComponentsPerPixel(), image.GetDimension()
    if path.name.lower().endswith(".seg.nrrd") and (layers > 1 or dimension == 4):
        raise SpinelabError(f"{path}: a multi-layer segmentation (overlapping segments); export it from 3D Slicer "
                            f"as a labelmap volume and pass that")
    if layers > 1:
        raise SpinelabError(f"{path}: holds {layers} values per voxel (a vector or multi-channel image); "
                            f"expected one value per voxel")
    if dimension != 3:
        raise SpinelabError(f"{path}: expected a 3D volume, got {dimension}D data of shape {image.GetSize()}")


def read_itk(path: str | Path) -> CTVolume:
    """A 3D scalar MetaImage or NRRD volume with its exact voxel -> RAS+ affine; values are not checked."""
    path = Path(path)
    if not path.is_file():
        raise SpinelabError(f"{path}: no such file")
    format_name, image_io = ITK_FORMATS[_suffix(path)]
    _check_data_file(path)
    reader = sitk.ImageFileReader()
    reader.SetImageIO(image_io)
    reader.SetFileName(str(path))
    printed: list[str] = []
    try:
        with _captured_stderr(printed):
            image = reader.Execute()
    except RuntimeError as exc:
        raise SpinelabError(f"{path}: cannot read as {format_name} ({_reason(printed, exc)})") from None
    _check_3d_scalar(image, path)
    return CTVolume(sitk.GetArrayFromImage(image).transpose(2, 1, 0), _affine(image), str(path))
