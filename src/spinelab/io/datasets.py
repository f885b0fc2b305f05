"""Dataset layouts on disk: find the CT, centroid file and (optional) vertebra mask of every case.

Layouts:

* VerSe subject-based (the released VerSe'19/'20 data): ``<root>/rawdata/sub-X/<case>_ct.nii.gz``,
  ``<root>/derivatives/sub-X/<case>_seg-subreg_ctd.json`` and ``<case>_seg-vert_msk.nii.gz``, where
  ``<case>`` is the file stem (``sub-gl003_dir-ax``). ``root`` may also be a folder of such
  datasets (``01_training/``, ``02_validation/``, ...).
* Flat VerSe: the same files side by side in ``sub-X/`` folders (or in ``root`` itself), including
  the MICCAI-challenge names ``verse004.nii.gz`` + ``verse004_ctd.json`` (+ ``verse004_seg.nii.gz``).
* CSI 2014: ``<scan>.nii.gz`` (or ``.nii``) next to ``<scan>.lml``, anywhere below ``root``.

A CT without a centroid file is not a case (test sets ship without annotations).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spinelab.errors import SpinelabError
from spinelab.io.centroids import Centroids
from spinelab.io.formats import read_centroids, write_centroids
from spinelab.io.images import NIFTI_SUFFIXES, read_ct, read_label_map, scan_id, write_nifti
from spinelab.io.volume import CTVolume

#: Names of centroid files next to a scan ``<base>``, most specific first.
CENTROID_SUFFIXES = ("_seg-subreg_ctd.json", "_seg-vb_ctd.json", "_ctd.json", "_iso-ctd.json")
MASK_SUFFIXES = ("_seg-vert_msk.nii.gz", "_seg-vert_msk.nii", "_seg.nii.gz", "_seg.nii")


@dataclass(frozen=True)
class Case:
    """One annotated scan: its CT, its centroid file and, when there is one, its vertebra mask."""

    case_id: str
    ct_path: Path
    centroids_path: Path
    mask_path: Path | None = None

    def load(self) -> tuple[CTVolume, Centroids, CTVolume | None]:
        """CT, centroids in RAS+ mm (voxel formats read on the CT's grid) and the mask (or None)."""
        ct = read_ct(self.ct_path)
        centroids = read_centroids(self.centroids_path, reference=ct)
        mask = None
        if self.mask_path is not None:
            mask = read_label_map(self.mask_path)
            if mask.shape != ct.shape or not np.allclose(mask.affine, ct.affine, atol=1e-3):
                raise SpinelabError(f"{self.mask_path}: mask grid {mask.shape} does not match its CT {ct.shape}")
        return ct, centroids, mask


def _first_existing(folder: Path, base: str, suffixes) -> Path | None:
    return next((folder / f"{base}{s}" for s in suffixes if (folder / f"{base}{s}").is_file()), None)


def _is_mask(path: Path) -> bool:
    return "_seg" in path.name or "_msk" in path.name


def _niftis(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(NIFTI_SUFFIXES) and not _is_mask(p))


def _verse_case(ct_path: Path, annotations: Path) -> Case | None:
    case_id = scan_id(ct_path)
    centroids = _first_existing(annotations, case_id, CENTROID_SUFFIXES)
    if centroids is None:
        return None
    return Case(case_id, ct_path, centroids, _first_existing(annotations, case_id, MASK_SUFFIXES))


def _subject_based(dataset: Path) -> list[Case]:
    cases = []
    for subject in sorted(p for p in (dataset / "rawdata").iterdir() if p.is_dir()):
        cases += [case for ct in _niftis(subject) if (case := _verse_case(ct, dataset / "derivatives" / subject.name))]
    return cases


def verse_cases(root: str | Path) -> list[Case]:
    """Cases of a VerSe dataset (subject-based ``rawdata``/``derivatives`` or flat ``sub-X`` folders)."""
    root = Path(root)
    if not root.is_dir():
        raise SpinelabError(f"{root}: no such folder")
    datasets = [root] if (root / "rawdata").is_dir() else sorted(p.parent for p in root.glob("*/rawdata"))
    cases = [case for dataset in datasets for case in _subject_based(dataset)]
    if not datasets:
        folders = [root, *sorted(p for p in root.iterdir() if p.is_dir())]
        cases = [case for folder in folders for ct in _niftis(folder) if (case := _verse_case(ct, folder))]
    if not cases:
        raise SpinelabError(f"{root}: no VerSe cases (CTs with *_ctd.json centroid files) found")
    return cases


def csi2014_cases(root: str | Path) -> list[Case]:
    """Cases of the CSI 2014 spine data: every ``.lml`` with a NIfTI scan of the same name beside it."""
    root = Path(root)
    if not root.is_dir():
        raise SpinelabError(f"{root}: no such folder")
    cases = []
    for landmarks in sorted(root.rglob("*.lml")):
        scan = _first_existing(landmarks.parent, landmarks.stem, NIFTI_SUFFIXES)
        if scan is not None:
            cases.append(Case(landmarks.stem, scan, landmarks))
    if not cases:
        raise SpinelabError(f"{root}: no CSI 2014 cases (.nii.gz scans with .lml files of the same name) found")
    return cases


def find_cases(root: str | Path) -> list[Case]:
    """Cases under ``root`` in whichever layout it uses (VerSe first, then CSI 2014)."""
    root = Path(root)
    if not root.is_dir():
        raise SpinelabError(f"{root}: no such folder")
    for finder in (verse_cases, csi2014_cases):
        try:
            return finder(root)
        except SpinelabError:
            continue
    raise SpinelabError(f"{root}: no cases found (expected VerSe rawdata/derivatives or sub-X folders with "
                        f"*_ctd.json centroids, or CSI 2014 .nii.gz scans with .lml files)")


def dataset_scans(root: str | Path, limit: int | None = None):
    """(case id, CT, centroids) of the first ``limit`` cases of a dataset, loaded one at a time."""
    for case in find_cases(root)[:limit]:
        ct, centroids, _ = case.load()
        yield case.case_id, ct, centroids


def write_verse_case(root: str | Path, case_id: str, ct: CTVolume, centroids: Centroids,
                     mask: CTVolume | None = None) -> Case:
    """Write one subject in the VerSe subject-based layout; the centroid JSON is on the CT's grid."""
    root = Path(root)
    subject = case_id if case_id.startswith("sub-") else f"sub-{case_id}"
    if mask is not None and (mask.shape != ct.shape or not np.allclose(mask.affine, ct.affine, atol=1e-3)):
        raise SpinelabError(f"{subject}: the mask's grid {mask.shape} differs from the CT's {ct.shape}")
    derivatives = root / "derivatives" / subject
    ct_path = write_nifti(ct, root / "rawdata" / subject / f"{subject}_ct.nii.gz")
    centroids_path = write_centroids(centroids, derivatives / f"{subject}_seg-subreg_ctd.json", reference=ct,
                                     fmt="verse")
    mask_path = None
    if mask is not None:
        if mask.array.min() < 0 or mask.array.max() > 255:
            raise SpinelabError(f"{subject}: mask values {mask.array.min()}..{mask.array.max()} are not VerSe labels")
        mask_path = write_nifti(mask, derivatives / f"{subject}_seg-vert_msk.nii.gz", dtype=np.uint8)
    return Case(subject, ct_path, centroids_path, mask_path)
