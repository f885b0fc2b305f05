"""The scans a batch names: CT files, DICOM series folders, folders searched recursively, globs and
manifests, expanded into one list in a stable order (each scan once).

* A folder that holds DICOM files is one series; any other folder is searched recursively for CT
  files (``IMAGE_SUFFIXES``) and DICOM series folders. Label maps of the VerSe layout and spinelab's
  own outputs (``*_msk.nii.gz``) are skipped, so a VerSe dataset folder yields its CTs.
* A manifest (``.txt`` or ``.lst``: one input per line, ``#`` comments; ``.csv``: the ``input``
  column, else the first) lists inputs relative to its own folder; each is expanded like a
  command-line input.
* A name with ``*``, ``?`` or ``[`` that is not an existing path is a glob (``**`` recursive); like a
  folder search it skips label maps.

Names that match nothing, and folders holding no CT, stay in the list, so the batch reports them
instead of dropping them silently.
"""

from __future__ import annotations

import csv
import glob
import os
from collections.abc import Iterable
from pathlib import Path

from spinelab.errors import SpinelabError
from spinelab.io.images import IMAGE_SUFFIXES

MANIFEST_SUFFIXES = (".txt", ".lst", ".csv")
_LABEL_MAP_ENDINGS = ("_msk.nii.gz", "_msk.nii")


def is_dicom_file(path: Path) -> bool:
    """A ``.dcm`` file, or one with the DICOM preamble's ``DICM`` marker at byte 128."""
    if path.suffix.lower() == ".dcm":
        return True
    try:
        with open(path, "rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def _is_label_map(name: str) -> bool:
    return name.lower().endswith(_LABEL_MAP_ENDINGS)


def _is_ct_file(path: Path) -> bool:
    return path.name.lower().endswith(IMAGE_SUFFIXES) and not _is_label_map(path.name)


def _holds_dicom(folder: Path, files: Iterable[str]) -> bool:
    return any(is_dicom_file(folder / name) for name in files)


def folder_inputs(folder: Path) -> list[Path]:
    """The CT files and DICOM series folders in ``folder`` and below it (``folder`` itself if it is a series)."""
    found = []
    for root, folders, files in os.walk(folder):
        folders.sort()
        root = Path(root)
        if _holds_dicom(root, files):
            found.append(root)
        found.extend(root / name for name in sorted(files) if _is_ct_file(root / name))
    return found


def manifest_inputs(manifest: Path) -> list[str]:
    """The input names a manifest lists, relative to its folder."""
    try:
        text = manifest.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpinelabError(f"{manifest}: cannot read the manifest ({exc})") from None
    if manifest.suffix.lower() == ".csv":
        rows = list(csv.reader(text.splitlines()))
        if not rows:
            return []
        header = [cell.strip().lower() for cell in rows[0]]
        column = header.index("input") if "input" in header else 0
        body = rows[1:] if "input" in header or not _looks_like_input(rows[0][0], manifest) else rows
        names = [row[column].strip() for row in body if len(row) > column and row[column].strip()]
    else:
        names = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [str(manifest.parent / name) for name in names]


def _looks_like_input(cell: str, manifest: Path) -> bool:
    """Whether a CSV's first cell is an input rather than a column name."""
    return (manifest.parent / cell.strip()).exists() or cell.strip().lower().endswith(IMAGE_SUFFIXES)


def expand_inputs(items: Iterable[str | Path], manifests: bool = True) -> list[Path]:
    """Every scan ``items`` name, in order, each once (see the module doc)."""
    found: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_file() and manifests and path.suffix.lower() in MANIFEST_SUFFIXES:
            found.extend(expand_inputs(manifest_inputs(path), manifests=False))
        elif path.is_dir():
            found.extend(folder_inputs(path) or [path])
        elif not path.exists() and glob.has_magic(str(item)):
            matches = [match for match in sorted(glob.glob(str(item), recursive=True)) if not _is_label_map(match)]
            found.extend(expand_inputs(matches, manifests=False) if matches else [path])
        else:
            found.append(path)
    unique, seen = [], set()
    for path in found:
        key = os.path.normcase(os.path.abspath(path))
        if key not in seen:
            seen.add(key)
            unique.append(path)
    return unique
