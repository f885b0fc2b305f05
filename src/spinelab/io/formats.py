"""Centroid files: every reader returns ``Centroids`` in RAS+ mm, every writer takes them and writes atomically.

``read_centroids`` / ``write_centroids`` pick the format from the file (or ``fmt``). Formats that
store voxel coordinates need the image grid they refer to (``reference``: the CT or label map, only
its affine and shape are used). The conventions, with the evidence each one rests on:

``verse``  VerSe subject-based JSON (``*_ctd.json``, the released VerSe'19/'20 data):
    ``[{"direction": ["P", "I", "R"]}, {"label": 20, "X": .., "Y": .., "Z": ..}, ...]``. X, Y, Z are
    voxel indices on the image grid with its axes permuted/flipped to the codes in ``direction``
    (flipping axis n maps index i to n - 1 - i, as nibabel does). When ``direction`` equals the
    image's own axis codes they are plain voxel indices; the official centroids of the 4 shared
    VerSe cases are such files. Written in the reference image's own axis codes.
``verse19``  VerSe'19 MICCAI-challenge JSON (``verseNNN_ctd.json``, no ``direction`` entry):
    millimetres on the image reoriented so that X runs superior->inferior, Y anterior->posterior and Z
    right->left (nibabel axis codes I, P, L), origin at the centre of voxel 0, as the challenge page
    states (verse2020.grand-challenge.org/VerSe_at_MICCAI19) and Payer's converter assumes
    (MedicalDataAugmentationTool-VerSe other/preprocess_landmarks.py). Converted with Payer's code,
    such files gave the ``verse2019_landmarks.csv`` row of verse004, which lies within 3.2 mm of
    the subject-based official centroids.
``verse20-miccai``  VerSe'20 MICCAI-challenge JSON (``*_iso-ctd.json``, no ``direction``): millimetres
    with X anterior->posterior, Y superior->inferior, Z left->right (axis codes P, I, R), origin at
    voxel 0 (osf.io/b2wxj). A JSON file without ``direction`` is read as this format when its name
    ends in ``iso-ctd.json``, otherwise as ``verse19``. Both legacy formats leave the origin
    uncertain by up to one voxel (Payer's converter measures flipped axes from the far edge).
``csi2014``  Glocker's CSI 2014 spine landmarks (``.lml``): a header line, then tab-separated
    ``id  name  x  y  z`` lines, the name like ``L1`` (a suffix after ``_`` is ignored). x, y, z are
    millimetres along the image's own array axes from voxel 0 (voxel index x spacing): the public
    readers of these files (McCouat & Glocker's SpineFinder, a MICCAI 2013 MATLAB pipeline) divide
    them by the voxel spacing and ignore the header's origin and direction. Written with id = 10 x
    VerSe label, as those files number C1 as 10.
``landmarks``  Payer's ``landmarks.csv`` (``read_landmarks_table``): one row per scan, the id then
    x, y, z of 26 landmarks (0-24 = C1..L6, 25 = T13; VerSe'19 tables stop at L6), ``nan`` when
    absent, in millimetres on the image reoriented to ITK "RAI" (axes pointing L, P, S; nibabel codes
    L, P, S) with voxel 0 at the origin. Measured on verse004: the VerSe'19 table row lies within
    3.2 mm of the official centroids; the VerSe'20 table was made from other (resampled, re-annotated)
    files and differs by up to 15 mm, so treat those rows as approximate.
``vid``  ImFusion VID keypoint JSON (read only): DICOM LPS world mm, converted to RAS by negating x
    and y (checked: the VID points of verse004/verse010 lie 3-10 mm from the official centroids).
``slicer``  3D Slicer markups (``.mrk.json``): a ``Fiducial`` markup whose control point labels are
    vertebra names, world mm in ``coordinateSystem`` LPS (written, as current Slicer does) or RAS.
``csv``  plain comma-separated text, one vertebra per row after a header row:

    # frame: RAS+ mm
    label,name,x,y,z,confidence
    20,L1,12.5,-40.25,-310.0,0.93

    Lines starting with ``#`` are comments; blank lines are skipped; header names are case-insensitive
    and cells may carry spaces around them. ``label`` is the VerSe label (1-28) or a name (``L1``);
    ``name`` may be empty and must otherwise agree with ``label``; each label appears once.
    ``confidence`` is optional (a column for every row or none). The frame is stated in one of two
    ways: a ``# frame: RAS+ mm`` line with columns ``x,y,z`` (RAS+ world mm; this form is written),
    or, without that line, by the column names: ``x_ras,y_ras,z_ras`` for RAS+ world mm,
    ``x_lps,y_lps,z_lps`` for DICOM/ITK LPS world mm. A file stating no frame, another frame, or two
    that disagree is refused.

Confidence (``Centroids.confidence``) travels in every format that spinelab writes for predictions:
the CSV column, a ``"confidence"`` key in each VerSe JSON entry (VerSe readers ignore unknown keys) and
a ``"confidence 0.83"`` description on each Slicer control point (4 significant digits). It is read
back when every point of a file carries one.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from spinelab import vertebrae
from spinelab.errors import SpinelabError
from spinelab.io.centroids import WORLD_FRAME, Centroids
from spinelab.io.files import write_text
from spinelab.io.images import nifti_stem
from spinelab.io.volume import LPS_TO_RAS, CTVolume

FORMATS = ("verse", "verse19", "verse20-miccai", "csi2014", "landmarks", "vid", "slicer", "csv")
VOXEL_FORMATS = ("verse", "verse19", "verse20-miccai", "csi2014", "landmarks")

#: Axis codes of the millimetre frames of the legacy formats (nibabel codes: the direction each axis points to).
VERSE19_AXES = ("I", "P", "L")
VERSE20_MICCAI_AXES = ("P", "I", "R")
PAYER_AXES = ("L", "P", "S")  # ITK "RAI"

#: VerSe labels of the 26 columns of Payer's tables: C1..L6, then T13.
LANDMARK_LABELS = (*range(1, 26), 28)
SLICER_SCHEMA = ("https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/Resources/"
                 "Schema/markups-schema-v1.0.3.json#")
SLICER_LPS_ORIENTATION = [-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0]  # identity in RAS, as Slicer writes it
SLICER_CONFIDENCE = re.compile(r"^\s*confidence\s+(\S+)\s*$", re.IGNORECASE)


class _Malformed(ValueError):
    """A problem with the file's content; _guarded turns it into a SpinelabError naming the file."""


# ----------------------------------------------------------------------------------------------------------------
# Frames: file coordinates -> RAS+ world


def _axcodes(value) -> tuple[str, str, str]:
    codes = tuple(str(code).upper() for code in value) if isinstance(value, (list, tuple)) else ()
    axes = sorted({"L": 0, "R": 0, "P": 1, "A": 1, "I": 2, "S": 2}.get(code, -1) for code in codes)
    if axes != [0, 1, 2]:
        raise _Malformed(f"'direction' {value!r} is not three axis codes (one of L/R, A/P, S/I each)")
    return codes


def _file_affine(reference: CTVolume, axcodes=None, millimetres: bool = False) -> np.ndarray:
    """Affine from file coordinates to RAS+ mm: voxel indices (or mm from voxel 0) on the reference grid
    with its axes permuted/flipped to ``axcodes`` (its own axes when None)."""
    grid = reference if axcodes is None else reference.reoriented(axcodes)
    if millimetres:
        return grid.affine @ np.diag([*(1.0 / grid.spacing), 1.0])
    return grid.affine


def _need_reference(reference, fmt: str, path: Path) -> CTVolume:
    if reference is None:
        raise SpinelabError(f"{path}: {fmt} centroid files hold image coordinates; pass the CT or label map "
                            f"they belong to as reference")
    if not isinstance(reference, CTVolume):
        raise SpinelabError(f"{path}: reference must be a CTVolume (the image the centroids belong to)")
    return reference


# ----------------------------------------------------------------------------------------------------------------
# Small parsing helpers


def _label(value) -> int:
    """VerSe label from an int, an integral float or a name ('L1', 'T13')."""
    if isinstance(value, bool):
        raise _Malformed(f"unknown vertebra label {value!r}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    try:
        return vertebrae.label(value)
    except ValueError:
        raise _Malformed(f"unknown vertebra label {value!r} (VerSe labels are 1-28)") from None


def _number(value, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _Malformed(f"{what} is not a number: {value!r}") from None
    if not math.isfinite(number):
        raise _Malformed(f"{what} is NaN or infinite")
    return number


def _point(values, what: str) -> list[float]:
    if not isinstance(values, (list, tuple)) or len(values) != 3:
        raise _Malformed(f"{what} is not three coordinates: {values!r}")
    return [_number(v, what) for v in values]


def _all_or_none(confidence: list) -> list | None:
    """Per-point confidences, or None unless every point has one."""
    return confidence if confidence and all(value is not None for value in confidence) else None


def _num(value) -> str:
    """Shortest text that reads back as the same float."""
    return repr(float(value))


def _centroids(labels, points, confidence=None) -> Centroids:
    try:
        return Centroids(np.asarray(labels, dtype=np.int64), np.asarray(points, dtype=np.float64).reshape(-1, 3),
                         confidence)
    except SpinelabError as exc:
        raise _Malformed(str(exc).removeprefix("centroids: ")) from None


def _load_json(path: Path):
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise _Malformed(f"not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except UnicodeDecodeError:
        raise _Malformed("not a text file") from None


def _text_lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except UnicodeDecodeError:
        raise _Malformed("not a text file") from None


# ----------------------------------------------------------------------------------------------------------------
# VerSe JSON (subject-based and the two MICCAI-challenge conventions)


def _verse_entries(data, legacy: bool):
    if not isinstance(data, list) or not all(isinstance(entry, dict) for entry in data):
        raise _Malformed("a VerSe centroid file is a JSON list of objects")
    headers = [entry for entry in data if "direction" in entry]
    points = [entry for entry in data if "direction" not in entry]
    if legacy and headers:
        raise _Malformed("has a 'direction' entry, so it is a subject-based VerSe file (fmt='verse')")
    if not legacy and len(headers) != 1:
        raise _Malformed("needs exactly one {'direction': [...]} entry (VerSe subject-based format)")
    labels, coords, confidence = [], [], []
    for entry in points:
        if "label" not in entry or not {"X", "Y", "Z"} <= set(entry):
            raise _Malformed(f"entry {entry!r} lacks 'label', 'X', 'Y' or 'Z'")
        label = _label(entry["label"])
        labels.append(label)
        coords.append([_number(entry[axis], f"{axis} of label {label}") for axis in "XYZ"])
        stated = entry.get("confidence")
        confidence.append(None if stated is None else _number(stated, f"confidence of label {label}"))
    direction = headers[0]["direction"] if headers else None
    return direction, labels, np.asarray(coords, dtype=np.float64).reshape(-1, 3), _all_or_none(confidence)


def _read_verse(path: Path, reference) -> Centroids:
    direction, labels, coords, confidence = _verse_entries(_load_json(path), legacy=False)
    affine = _file_affine(_need_reference(reference, "VerSe", path), _axcodes(direction))
    return _centroids(labels, coords @ affine[:3, :3].T + affine[:3, 3], confidence)


def _read_verse_mm(axcodes):
    def read(path: Path, reference) -> Centroids:
        _, labels, coords, confidence = _verse_entries(_load_json(path), legacy=True)
        affine = _file_affine(_need_reference(reference, "VerSe challenge", path), axcodes, millimetres=True)
        return _centroids(labels, coords @ affine[:3, :3].T + affine[:3, 3], confidence)
    return read


def _verse_json(centroids: Centroids, coords, direction=None) -> str:
    entries = [{"direction": list(direction)}] if direction is not None else []
    for i, (label, (x, y, z)) in enumerate(zip(centroids.labels, coords)):
        entry = {"label": int(label), "X": float(x), "Y": float(y), "Z": float(z)}
        if centroids.confidence is not None:
            entry["confidence"] = float(centroids.confidence[i])
        entries.append(entry)
    return json.dumps(entries)


def _write_verse(centroids: Centroids, path: Path, reference) -> None:
    reference = _need_reference(reference, "VerSe", path)
    coords = centroids.to_voxel(_file_affine(reference))
    write_text(path, _verse_json(centroids, coords, direction=reference.axcodes))


def _write_verse_mm(axcodes):
    def write(centroids: Centroids, path: Path, reference) -> None:
        affine = _file_affine(_need_reference(reference, "VerSe challenge", path), axcodes, millimetres=True)
        write_text(path, _verse_json(centroids, centroids.to_voxel(affine)))
    return write


# ----------------------------------------------------------------------------------------------------------------
# CSI 2014 .lml


def _read_lml(path: Path, reference) -> Centroids:
    affine = _file_affine(_need_reference(reference, "CSI 2014 .lml", path), millimetres=True)
    labels, coords = [], []
    for number, line in enumerate(_text_lines(path), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if number == 1 and (len(fields) < 5 or not fields[0].lstrip("-").isdigit()):
            continue  # the header line
        if len(fields) < 5:
            raise _Malformed(f"line {number} is not 'id name x y z': {line.strip()!r}")
        labels.append(_label(fields[1].split("_")[0]))
        coords.append([_number(v, f"coordinate on line {number}") for v in fields[2:5]])
    coords = np.asarray(coords, dtype=np.float64).reshape(-1, 3)
    return _centroids(labels, coords @ affine[:3, :3].T + affine[:3, 3])


def _write_lml(centroids: Centroids, path: Path, reference) -> None:
    affine = _file_affine(_need_reference(reference, "CSI 2014 .lml", path), millimetres=True)
    lines = ["#id\tname\tx\ty\tz (mm along the image axes from voxel 0)"]
    lines += [f"{10 * int(label)}\t{vertebrae.name(label)}\t" + "\t".join(_num(v) for v in xyz)
              for label, xyz in zip(centroids.labels, centroids.to_voxel(affine))]
    write_text(path, "\n".join(lines) + "\n")


# ----------------------------------------------------------------------------------------------------------------
# Payer's landmarks.csv


def read_landmarks_table(path: str | Path) -> dict[str, np.ndarray]:
    """Payer's table as {scan id: (26, 3) mm on the image reoriented to L, P, S}, NaN rows for absent levels."""
    path = Path(path)
    if not path.is_file():
        raise SpinelabError(f"{path}: no such file")
    table = {}
    try:
        for number, row in enumerate(csv.reader(io.StringIO(path.read_text())), start=1):
            if not row or not "".join(row).strip():
                continue
            values = row[1:]
            if len(values) % 3 or not 3 <= len(values) <= 3 * len(LANDMARK_LABELS):
                raise _Malformed(f"row {number} has {len(values)} values, not x, y, z of up to 26 landmarks")
            points = np.full((len(LANDMARK_LABELS), 3), np.nan)
            points[: len(values) // 3] = np.asarray([float(v) for v in values]).reshape(-1, 3)
            partial = np.isnan(points).any(axis=1) & ~np.isnan(points).all(axis=1)
            if partial.any() or np.isinf(points).any():
                raise _Malformed(f"row {number} ({row[0]}) has a landmark with some but not all coordinates")
            table[row[0].strip()] = points
    except (_Malformed, ValueError, UnicodeDecodeError) as exc:
        raise SpinelabError(f"{path}: malformed landmark table ({_reason(exc)})") from None
    if not table:
        raise SpinelabError(f"{path}: landmark table is empty")
    return table


def centroids_from_landmarks(points: np.ndarray, reference: CTVolume) -> Centroids:
    """One row of Payer's table (26, 3) as centroids in RAS+ mm on ``reference``'s grid, skull to tail."""
    points = np.asarray(points, dtype=np.float64).reshape(len(LANDMARK_LABELS), 3)
    present = np.isfinite(points).all(axis=1)
    affine = _file_affine(reference, PAYER_AXES, millimetres=True)
    return Centroids.from_voxel(np.asarray(LANDMARK_LABELS)[present], points[present], affine).sorted()


def landmarks_from_centroids(centroids: Centroids, reference: CTVolume) -> np.ndarray:
    """The (26, 3) row of Payer's table for ``centroids`` on ``reference``'s grid; NaN where absent."""
    columns = {label: i for i, label in enumerate(LANDMARK_LABELS)}
    unsupported = [vertebrae.name(v) for v in centroids.labels if int(v) not in columns]
    if unsupported:
        raise SpinelabError(f"Payer's landmark table has no column for {', '.join(unsupported)}")
    points = np.full((len(LANDMARK_LABELS), 3), np.nan)
    points[[columns[int(v)] for v in centroids.labels]] = centroids.to_voxel(
        _file_affine(reference, PAYER_AXES, millimetres=True))
    return points


def _read_landmarks(path: Path, reference) -> Centroids:
    reference = _need_reference(reference, "landmark table", path)
    table = read_landmarks_table(path)
    if len(table) != 1:
        raise _Malformed(f"holds {len(table)} scans; read it with read_landmarks_table and convert one row "
                         f"with centroids_from_landmarks")
    return centroids_from_landmarks(next(iter(table.values())), reference)


def _write_landmarks(centroids: Centroids, path: Path, reference) -> None:
    reference = _need_reference(reference, "landmark table", path)
    points = landmarks_from_centroids(centroids, reference)
    scan = nifti_stem(reference.source) if reference.source else path.stem
    write_text(path, ",".join([scan, *("nan" if math.isnan(v) else _num(v) for v in points.ravel())]) + "\n")


# ----------------------------------------------------------------------------------------------------------------
# ImFusion VID keypoints


@dataclass
class VidKeypoints:
    """Body centroids and, row-aligned with them, the left and right pedicle points (RAS+ mm; NaN rows
    where a body has no pedicle of that side, None when the file has no pedicles at all)."""

    body: Centroids
    left: np.ndarray | None
    right: np.ndarray | None


def _align_pedicles(body: np.ndarray, pedicles: np.ndarray) -> np.ndarray | None:
    """Pedicles follow the bodies' order when counts agree (4,092 of 4,094 such lists agree with the
    nearest-point matching); otherwise (69 of 2,116 ground-truth files) match by least total distance."""
    if len(pedicles) == 0:
        return None
    if len(pedicles) == len(body):
        return pedicles
    aligned = np.full_like(body, np.nan)
    rows, cols = linear_sum_assignment(cdist(body, pedicles))
    aligned[rows] = pedicles[cols]
    return aligned


def _parse_vid(data) -> VidKeypoints:
    if not isinstance(data, list) or not data:
        raise _Malformed("a VID keypoint file is a non-empty JSON list")
    points = {"body": [], "left": [], "right": []}
    labels = []
    for entry in data:
        kind = entry["type"]["keypoint_type"]
        if kind not in points:
            raise _Malformed(f"unknown keypoint_type {kind!r}")
        points[kind].append(_point(entry["coordinates"]["world_space"], f"{kind} keypoint"))
        if kind == "body":
            if "spine_level" not in entry["type"]:
                raise _Malformed("body keypoints have no 'spine_level' (a prediction file, not ground truth?)")
            labels.append(_label(entry["type"]["spine_level"]))
    world = {kind: np.asarray(p, dtype=np.float64).reshape(-1, 3) * LPS_TO_RAS for kind, p in points.items()}
    body = _centroids(labels, world["body"])
    return VidKeypoints(body, _align_pedicles(body.world, world["left"]), _align_pedicles(body.world, world["right"]))


def read_vid_keypoints(path: str | Path) -> VidKeypoints:
    """Ground-truth VID keypoints: body centroids plus pedicles aligned with them, all RAS+ mm."""
    path = Path(path)
    return _guarded(path, "vid", lambda: _parse_vid(_load_json(path)))


def _read_vid(path: Path, reference) -> Centroids:
    return _parse_vid(_load_json(path)).body


# ----------------------------------------------------------------------------------------------------------------
# 3D Slicer markups


def _read_slicer(path: Path, reference) -> Centroids:
    data = _load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("markups"), list):
        raise _Malformed("a Slicer markups file is a JSON object with a 'markups' list")
    labels, points, confidence = [], [], []
    for markup in data["markups"]:
        if markup.get("type") != "Fiducial":
            continue
        system = markup.get("coordinateSystem", "LPS")  # Slicer's default for markups files
        if system not in ("LPS", "RAS"):
            raise _Malformed(f"unknown coordinateSystem {system!r} (expected LPS or RAS)")
        if markup.get("coordinateUnits", "mm") != "mm":
            raise _Malformed(f"coordinateUnits {markup['coordinateUnits']!r} are not mm")
        for point in markup.get("controlPoints", []):
            if point.get("positionStatus", "defined") != "defined":
                continue  # placed-later or missing points carry no position
            labels.append(_label(point["label"]))
            xyz = np.asarray(_point(point["position"], f"position of {point['label']}"))
            points.append(xyz * LPS_TO_RAS if system == "LPS" else xyz)
            stated = SLICER_CONFIDENCE.match(str(point.get("description", "")))
            confidence.append(_number(stated.group(1), f"confidence of {point['label']}") if stated else None)
    if not labels and not any(markup.get("type") == "Fiducial" for markup in data["markups"]):
        raise _Malformed("holds no Fiducial (point list) markup")
    return _centroids(labels, points, _all_or_none(confidence))


def _write_slicer(centroids: Centroids, path: Path, reference) -> None:
    descriptions = ([""] * len(centroids) if centroids.confidence is None
                    else [f"confidence {value:.4g}" for value in centroids.confidence])
    points = [{"id": str(i + 1), "label": vertebrae.name(label), "description": descriptions[i], "associatedNodeID": "",
               "position": [float(v) for v in xyz * LPS_TO_RAS], "orientation": SLICER_LPS_ORIENTATION,
               "selected": True, "locked": False, "visibility": True, "positionStatus": "defined"}
              for i, (label, xyz) in enumerate(zip(centroids.labels, centroids.world))]
    markup = {"type": "Fiducial", "coordinateSystem": "LPS", "coordinateUnits": "mm", "locked": False,
              "fixedNumberOfControlPoints": False, "labelFormat": "%N-%d", "lastUsedControlPointNumber": len(points),
              "controlPoints": points, "measurements": []}
    write_text(path, json.dumps({"@schema": SLICER_SCHEMA, "markups": [markup]}, indent=1))


# ----------------------------------------------------------------------------------------------------------------
# Plain CSV in world mm (the module doc states the format)

_CSV_FRAME_LINE = f"# frame: {WORLD_FRAME}"
#: Coordinate columns -> the frame their names state (None: the '# frame:' line must state it).
_CSV_COLUMN_FRAMES = {("x", "y", "z"): None, ("x_ras", "y_ras", "z_ras"): "RAS", ("x_lps", "y_lps", "z_lps"): "LPS"}


def _csv_to_ras(frames: list[str], columns: tuple[str, ...]) -> np.ndarray:
    """Factor taking the file's coordinates to RAS+, from its '# frame:' line or its column names."""
    named = _CSV_COLUMN_FRAMES[columns]
    if frames and frames != [WORLD_FRAME]:
        raise _Malformed(f"a centroid CSV's frame line must read '{_CSV_FRAME_LINE}' (found {frames}); "
                         f"for LPS coordinates drop it and name the columns x_lps,y_lps,z_lps")
    if not frames and named is None:
        raise _Malformed(f"states no coordinate frame; add a '{_CSV_FRAME_LINE}' line, or name the columns "
                         f"x_ras,y_ras,z_ras (RAS+ mm) or x_lps,y_lps,z_lps (LPS mm)")
    if frames and named == "LPS":
        raise _Malformed(f"its '{_CSV_FRAME_LINE}' line contradicts its LPS columns {','.join(columns)}")
    return LPS_TO_RAS if named == "LPS" else np.ones(3)


def _read_csv(path: Path, reference) -> Centroids:
    lines = _text_lines(path)
    comments = [line.strip() for line in lines if line.lstrip().startswith("#")]
    frames = [line.split("frame:", 1)[1].strip() for line in comments if "frame:" in line]
    rows = list(csv.reader(line for line in lines if line.strip() and not line.lstrip().startswith("#")))
    header = [cell.strip().lower() for cell in rows[0]] if rows else []
    columns = tuple(header[2:5])
    if header[:2] != ["label", "name"] or columns not in _CSV_COLUMN_FRAMES or header[5:] not in ([], ["confidence"]):
        raise _Malformed(f"header must be 'label,name,x,y,z[,confidence]' (or x_ras,y_ras,z_ras / x_lps,y_lps,z_lps "
                         f"for x,y,z), got {','.join(header) or 'nothing'}")
    to_ras = _csv_to_ras(frames, columns)
    labels, points, confidence = [], [], []
    for row in rows[1:]:
        if len(row) != len(header):
            raise _Malformed(f"row {row!r} has {len(row)} fields, the header {len(header)}")
        label = _label(row[0].strip())
        if row[1].strip() and _label(row[1].strip()) != label:
            raise _Malformed(f"label {row[0]} and name {row[1]!r} disagree")
        labels.append(label)
        points.append(to_ras * [_number(v, f"coordinate of {vertebrae.name(label)}") for v in row[2:5]])
        if len(header) == 6:
            confidence.append(_number(row[5], f"confidence of {vertebrae.name(label)}"))
    return _centroids(labels, points, confidence if len(header) == 6 else None)


def _write_csv(centroids: Centroids, path: Path, reference) -> None:
    header = "label,name,x,y,z" + (",confidence" if centroids.confidence is not None else "")
    lines = [_CSV_FRAME_LINE, header]
    for i, (label, xyz) in enumerate(zip(centroids.labels, centroids.world)):
        fields = [str(int(label)), vertebrae.name(label), *(_num(v) for v in xyz)]
        if centroids.confidence is not None:
            fields.append(_num(centroids.confidence[i]))
        lines.append(",".join(fields))
    write_text(path, "\n".join(lines) + "\n")


# ----------------------------------------------------------------------------------------------------------------
# Dispatch

_READERS = {
    "verse": _read_verse, "verse19": _read_verse_mm(VERSE19_AXES),
    "verse20-miccai": _read_verse_mm(VERSE20_MICCAI_AXES), "csi2014": _read_lml, "landmarks": _read_landmarks, "vid": _read_vid, "slicer": _read_slicer, "csv": _read_csv,
}
_WRITERS = {
    "verse": _write_verse, "verse19": _write_verse_mm(VERSE19_AXES),
    "verse20-miccai": _write_verse_mm(VERSE20_MICCAI_AXES), "csi2014": _write_lml, "landmarks": _write_landmarks,
    "slicer": _write_slicer, "csv": _write_csv,
}


def _reason(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _guarded(path: Path, fmt: str, action):
    """Run a reader; content problems become one-line SpinelabErrors naming the file."""
    if not path.is_file():
        raise SpinelabError(f"{path}: no such file")
    try:
        return action()
    except _Malformed as exc:
        raise SpinelabError(f"{path}: {_reason(exc)}") from None
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        detail = f"missing {exc}" if isinstance(exc, KeyError) else _reason(exc)
        raise SpinelabError(f"{path}: malformed {fmt} centroid file ({detail})") from None


def detect_format(path: str | Path) -> str:
    """The format of an existing centroid file, from its name and (for JSON and CSV) its content."""
    path = Path(path)
    name = path.name.lower()
    if name.endswith(".lml"):
        return "csi2014"
    if name.endswith(".mrk.json"):
        return "slicer"
    if name.endswith(".json"):
        data = _guarded(path, "JSON", lambda: _load_json(path))
        if isinstance(data, dict) and "markups" in data:
            return "slicer"
        if isinstance(data, list) and data and all(isinstance(entry, dict) for entry in data):
            if any("direction" in entry for entry in data):
                return "verse"
            if "coordinates" in data[0] and "type" in data[0]:
                return "vid"
            if "label" in data[-1]:
                return "verse20-miccai" if name.endswith("iso-ctd.json") else "verse19"
        raise SpinelabError(f"{path}: unrecognized JSON centroid file (not VerSe, VID or Slicer markups)")
    if name.endswith((".csv", ".txt")):
        lines = _guarded(path, "CSV", lambda: [line.strip() for line in _text_lines(path) if line.strip()])
        if lines and (lines[0].startswith("#") or lines[0].lower().startswith("label")):
            return "csv"
        return "landmarks"
    raise SpinelabError(f"{path}: unknown centroid file type (expected .json, .mrk.json, .lml or .csv)")


def _check_format(fmt: str, table: dict, path: Path) -> None:
    if fmt not in table:
        raise SpinelabError(f"{path}: cannot handle centroid format {fmt!r}; choose from {sorted(table)}")


def read_centroids(path: str | Path, reference: CTVolume | None = None, fmt: str | None = None) -> Centroids:
    """Centroids in RAS+ mm from any supported file; ``reference`` is the image grid of voxel formats."""
    path = Path(path)
    if not path.is_file():
        raise SpinelabError(f"{path}: no such file")
    fmt = fmt or detect_format(path)
    _check_format(fmt, _READERS, path)
    return _guarded(path, fmt, lambda: _READERS[fmt](path, reference))


def _format_for_writing(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".mrk.json"):
        return "slicer"
    for suffix, fmt in ((".json", "verse"), (".lml", "csi2014"), (".csv", "csv")):
        if name.endswith(suffix):
            return fmt
    raise SpinelabError(f"{path}: cannot tell the centroid format from the name; pass fmt (one of {sorted(_WRITERS)})")


def write_centroids(centroids: Centroids, path: str | Path, reference: CTVolume | None = None,
                    fmt: str | None = None) -> Path:
    """Write atomically in ``fmt`` (default: from the name: .mrk.json Slicer, .json VerSe, .lml CSI, .csv CSV)."""
    path = Path(path)
    fmt = fmt or _format_for_writing(path)
    _check_format(fmt, _WRITERS, path)
    _WRITERS[fmt](centroids, path, reference)
    return path
