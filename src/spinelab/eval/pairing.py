"""Pair predicted and ground-truth centroid files by case and read them in world coordinates.

PRED and GT are both centroid files (one case) or both folders. In folders, files are paired by
**case id**: the file name without its centroid suffix, the longest of ``CENTROID_SUFFIXES``
(``sub-verse004_seg-subreg_ctd.json``, ``sub-verse004_ctd.json`` and ``sub-verse004.mrk.json`` are
all case ``sub-verse004``). When a folder holds several centroid files of one case (``spinelab
predict`` writes both ``_ctd.json`` and ``.mrk.json``), the first suffix in ``CENTROID_SUFFIXES``
order wins: world-coordinate formats before voxel ones. Files whose case has no partner are
listed, not scored; it is an error only when no case matches at all. Files with a centroid suffix
but content in no centroid format (a BIDS ``_ct.json`` sidecar) are ignored.

A GT folder that holds no centroid files itself is read as a dataset root in any layout
``spinelab.io.datasets.find_cases`` knows (VerSe ``rawdata/`` + ``derivatives/``, ``sub-X``
folders, CSI 2014 scans with ``.lml`` files): its cases' centroid files are the ground truth, with
the case ids it gives (``sub-verse004`` for ``sub-verse004_ct.nii.gz``), so the predictions
``spinelab predict`` writes for the dataset's CTs pair with them.

Voxel-coordinate formats (VerSe JSON, CSI .lml, Payer tables) need the image grid they refer to.
It is, in order: ``--reference`` (a CT or mask file; for folders, a folder searched like the last
two), then the case's CT when GT is a dataset root, then a NIfTI of the same case next to the GT
file, then next to the prediction file. A "NIfTI of the case" is ``<case>_ct.nii[.gz]`` or
``<case>.nii[.gz]``, else the first ``<case>_*.nii[.gz]`` by name (e.g. VerSe's
``<case>_seg-vert_msk.nii.gz``, which shares the CT's grid). Only the header is read.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import nibabel as nib
import numpy as np

from spinelab.errors import SpinelabError
from spinelab.eval.metrics import MAX_DISTANCE_MM, DatasetMetrics, evaluate_dataset
from spinelab.io.datasets import find_cases
from spinelab.io.formats import VOXEL_FORMATS, detect_format, read_centroids
from spinelab.io.images import NIFTI_SUFFIXES
from spinelab.io.volume import CTVolume

#: Centroid file suffixes, in order of preference when one case has several files.
CENTROID_SUFFIXES = (".mrk.json", ".csv", "_seg-subreg_ctd.json", "_seg-vert_ctd.json", "_seg-vb_ctd.json",
                     "_iso-ctd.json", "_ctd.json", ".lml", ".json")


def _centroid_suffix(path: Path) -> str | None:
    name = path.name.lower()
    matches = [suffix for suffix in CENTROID_SUFFIXES if name.endswith(suffix)]
    return max(matches, key=len) if matches else None


def case_id(path: str | Path) -> str:
    """File name without its centroid suffix: 'sub-01_seg-subreg_ctd.json' -> 'sub-01'."""
    path = Path(path)
    suffix = _centroid_suffix(path)
    return path.name[: -len(suffix)] if suffix else path.name


def _is_centroid_file(path: Path) -> bool:
    try:
        detect_format(path)
    except SpinelabError:
        return False
    return True


def centroid_files(folder: Path) -> dict[str, Path]:
    """{case id: file} for the centroid files directly in ``folder``, preferred suffix first.

    Files with a centroid suffix whose content is no centroid format (e.g. a BIDS ``_ct.json``
    sidecar) are left out.
    """
    found: dict[str, Path] = {}
    candidates = [p for p in sorted(folder.iterdir()) if p.is_file() and _centroid_suffix(p) and _is_centroid_file(p)]
    for path in sorted(candidates, key=lambda p: CENTROID_SUFFIXES.index(_centroid_suffix(p))):
        found.setdefault(case_id(path), path)
    return found


class CaseFiles(NamedTuple):
    """One case's prediction and ground-truth files and, when GT is a dataset root, its CT."""

    pred: Path
    gt: Path
    ct: Path | None = None


def _ground_truth(gt: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    """{case: GT centroid file} and, for a dataset root, {case: CT} (see the module doc)."""
    files = centroid_files(gt)
    if files:
        return files, {}
    try:
        cases = find_cases(gt)
    except SpinelabError:
        raise SpinelabError(f"{gt}: holds no centroid files, nor a VerSe or CSI 2014 dataset (rawdata/ + "
                            f"derivatives/, sub-X folders, or scans with .lml files)") from None
    return {case.case_id: case.centroids_path for case in cases}, {case.case_id: case.ct_path for case in cases}


def match_cases(pred: Path, gt: Path) -> tuple[dict[str, CaseFiles], list[Path], list[Path]]:
    """Pairs {case: files} plus the unmatched prediction and GT files."""
    if pred.is_file() and gt.is_file():
        return {case_id(gt): CaseFiles(pred, gt)}, [], []
    if not (pred.is_dir() and gt.is_dir()):
        kinds = ", ".join(f"{p} is {'a folder' if p.is_dir() else 'a file' if p.is_file() else 'missing'}"
                          for p in (pred, gt))
        raise SpinelabError(f"PRED and GT must be two centroid files or two folders ({kinds})")
    predictions = centroid_files(pred)
    truths, cts = _ground_truth(gt)
    pairs = {case: CaseFiles(predictions[case], truths[case], cts.get(case))
             for case in sorted(predictions.keys() & truths.keys())}
    if not pairs:
        raise SpinelabError(
            f"no case matches between {pred} ({len(predictions)} centroid files) and {gt} ({len(truths)}); "
            f"files pair by name without the suffix ({', '.join(CENTROID_SUFFIXES)})")
    unmatched_pred = [predictions[case] for case in sorted(predictions.keys() - truths.keys())]
    unmatched_gt = [truths[case] for case in sorted(truths.keys() - predictions.keys())]
    return pairs, unmatched_pred, unmatched_gt


def image_grid(path: Path) -> CTVolume:
    """The voxel grid of a NIfTI (header only): a volume of the right shape and affine holding no data."""
    try:
        image = nib.load(str(path))
    except Exception as exc:  # noqa: BLE001 - nibabel raises many types for unreadable files
        raise SpinelabError(f"{path}: cannot read as NIfTI ({str(exc).splitlines()[0]})") from None
    return CTVolume(np.broadcast_to(np.zeros((), np.int8), image.shape[:3]), image.affine, str(path))


def case_image(case: str, folder: Path) -> Path | None:
    """The NIfTI of ``case`` in ``folder`` whose grid voxel coordinates refer to (see the module doc)."""
    for name in (f"{case}_ct", case):
        for suffix in NIFTI_SUFFIXES:
            if (folder / f"{name}{suffix}").is_file():
                return folder / f"{name}{suffix}"
    others = sorted(p for p in folder.glob(f"{case}_*") if p.name.lower().endswith(NIFTI_SUFFIXES))
    return others[0] if others else None


def _reference_for(case: str, files: CaseFiles, reference: Path | None) -> Path | None:
    if reference is not None and reference.is_file():
        return reference
    candidates = [case_image(case, reference)] if reference is not None else []
    candidates += [files.ct, case_image(case, files.gt.parent), case_image(case, files.pred.parent)]
    return next((image for image in candidates if image is not None), None)


def _read_case(path: Path, case: str, files: CaseFiles, reference: Path | None):
    if detect_format(path) not in VOXEL_FORMATS:
        return read_centroids(path)
    image = _reference_for(case, files, reference)
    if image is None:
        raise SpinelabError(f"{path}: holds voxel coordinates; pass --reference CT_OR_MASK or put "
                            f"{case}_ct.nii.gz (or the case's mask) next to the ground truth")
    return read_centroids(path, reference=image_grid(image))


def evaluate_paths(pred: str | Path, gt: str | Path, reference: str | Path | None = None,
                   max_distance: float = MAX_DISTANCE_MM) -> tuple[DatasetMetrics, list[Path], list[Path]]:
    """Read and score PRED against GT (files or folders, see the module doc); also returns unmatched files."""
    pred, gt = Path(pred), Path(gt)
    reference = Path(reference) if reference is not None else None
    if reference is not None and not reference.exists():
        raise SpinelabError(f"{reference}: no such reference image or folder")
    pairs, unmatched_pred, unmatched_gt = match_cases(pred, gt)
    centroids = {case: (_read_case(files.pred, case, files, reference), _read_case(files.gt, case, files, reference))
                 for case, files in pairs.items()}
    return evaluate_dataset(centroids, max_distance), unmatched_pred, unmatched_gt
