"""Vertebra vocabulary: VerSe label numbers, names, regions, anatomical order and typical sizes.

VerSe numbering is the one spinelab uses everywhere: 1-7 C1-C7, 8-19 T1-T12, 20-24 L1-L5,
25 L6, 26 sacrum, 27 coccyx, 28 T13. Label numbers are not in anatomical order (T13 = 28 sits
between T12 = 19 and L1 = 20), so code that walks the spine must use ``ANATOMICAL_ORDER``.

Networks that classify vertebrae share one class vocabulary: class 0 is background and
``class_index(label)`` numbers ``PREDICTED_LABELS`` from 1 in anatomical order, so neighbouring
classes are neighbouring vertebrae (T13 between T12 and L1, L6 between L5 and the sacrum).
Probability matrices without a background column (label sequences, votes) use column
``class_index(label) - 1``; ``SKIPPABLE_COLUMNS`` are the transitional vertebrae a normal spine
goes straight past (T12 -> L1, L5 -> sacrum).
"""

from __future__ import annotations

from dataclasses import dataclass

from spinelab.errors import SpinelabError

NAMES: dict[int, str] = {
    **{i: f"C{i}" for i in range(1, 8)},
    **{i + 7: f"T{i}" for i in range(1, 13)},
    **{i + 19: f"L{i}" for i in range(1, 7)},
    26: "S",
    27: "Cx",
    28: "T13",
}
LABELS: dict[str, int] = {name: label for label, name in NAMES.items()}
LABELS.update({"sacrum": 26, "S1": 26, "coccyx": 27, "Co": 27})

#: Labels from skull to tail; T13 after T12, L6 after L5.
ANATOMICAL_ORDER: tuple[int, ...] = (*range(1, 20), 28, *range(20, 26), 26, 27)
_RANK = {label: rank for rank, label in enumerate(ANATOMICAL_ORDER)}

#: Vertebrae the localization methods predict: C1-L6, T13 and the sacrum (no coccyx).
PREDICTED_LABELS: tuple[int, ...] = tuple(label for label in ANATOMICAL_ORDER if label != 27)

REGIONS = ("cervical", "thoracic", "lumbar", "sacral")

VERTEBRA_CLASSES: tuple[int, ...] = PREDICTED_LABELS
NUM_CLASSES = len(VERTEBRA_CLASSES) + 1  # background included
_CLASS = {label: index + 1 for index, label in enumerate(VERTEBRA_CLASSES)}
SKIPPABLE_COLUMNS: tuple[int, ...] = (_CLASS[LABELS["T13"]] - 1, _CLASS[LABELS["L6"]] - 1)


def class_index(label: int) -> int:
    """Network class (1..NUM_CLASSES-1) of a VerSe label; 0 is background."""
    try:
        return _CLASS[int(label)]
    except KeyError:
        raise SpinelabError(f"vertebra label {label} is not one spinelab predicts "
                            f"({', '.join(NAMES[v] for v in VERTEBRA_CLASSES)})") from None


def label_of_class(index: int) -> int:
    """VerSe label of a network class (1..NUM_CLASSES-1)."""
    if not 1 <= int(index) < NUM_CLASSES:
        raise SpinelabError(f"class {index} is not a vertebra class (1..{NUM_CLASSES - 1})")
    return VERTEBRA_CLASSES[int(index) - 1]


def name(label: int) -> str:
    """Short name of a VerSe label, e.g. 20 -> 'L1'."""
    try:
        return NAMES[int(label)]
    except KeyError:
        raise ValueError(f"unknown vertebra label {label!r} (VerSe labels are 1-28)") from None


def label(name_or_label: str | int) -> int:
    """VerSe label of a name ('L1', 'T13', 'sacrum') or a label number given as int or str."""
    if isinstance(name_or_label, (int,)) or str(name_or_label).strip().isdigit():
        value = int(name_or_label)
        if value not in NAMES:
            raise ValueError(f"unknown vertebra label {value} (VerSe labels are 1-28)")
        return value
    key = str(name_or_label).strip()
    for candidate in (key, key.upper(), key.capitalize(), key.lower()):
        if candidate in LABELS:
            return LABELS[candidate]
    raise ValueError(f"unknown vertebra name {name_or_label!r}")


def region(label: int) -> str:
    """'cervical', 'thoracic', 'lumbar' or 'sacral' (sacrum and coccyx)."""
    label = int(label)
    if 1 <= label <= 7:
        return "cervical"
    if 8 <= label <= 19 or label == 28:
        return "thoracic"
    if 20 <= label <= 25:
        return "lumbar"
    if label in (26, 27):
        return "sacral"
    raise ValueError(f"unknown vertebra label {label}")


def rank(label: int) -> int:
    """Position in ``ANATOMICAL_ORDER`` (0 = C1); compare ranks, never raw labels."""
    try:
        return _RANK[int(label)]
    except KeyError:
        raise ValueError(f"unknown vertebra label {label!r}") from None


def sort_anatomically(labels) -> list[int]:
    return sorted((int(v) for v in labels), key=rank)


@dataclass(frozen=True)
class BodySize:
    """Typical vertebral body dimensions in mm (adult mean)."""

    height: float  # cranio-caudal height of the body (mid-body)
    width: float  # left-right width of the endplate
    depth: float  # antero-posterior depth of the endplate


# Busscher et al. 2010 (Eur Spine J 19:1104) report mean adult vertebral body height, endplate
# width and depth per level (C2-L5); McCouat & Glocker use these sizes to build dense labels.
# Values are rounded means; C1 (no body) is given the size of its anterior arch/lateral masses,
# L6 and T13 copy their neighbours, the sacrum gives the S1 body.
_SIZES = {
    "C1": (10.0, 20.0, 10.0), "C2": (23.0, 17.0, 15.5), "C3": (14.0, 16.5, 15.5),
    "C4": (13.5, 17.0, 15.5), "C5": (13.0, 18.0, 16.0), "C6": (13.5, 20.0, 16.5),
    "C7": (14.5, 22.0, 16.5), "T1": (16.0, 25.0, 17.0), "T2": (17.5, 26.5, 18.0),
    "T3": (18.0, 26.5, 19.5), "T4": (18.5, 27.0, 21.5), "T5": (19.0, 28.0, 23.5),
    "T6": (19.5, 29.0, 25.5), "T7": (20.0, 30.5, 27.0), "T8": (20.5, 32.0, 28.0),
    "T9": (21.0, 34.0, 29.0), "T10": (22.0, 37.0, 30.5), "T11": (23.0, 40.0, 32.0),
    "T12": (24.0, 43.0, 33.0), "T13": (24.5, 44.5, 33.5), "L1": (25.0, 45.0, 34.0),
    "L2": (26.0, 47.0, 35.0), "L3": (26.5, 49.0, 36.0), "L4": (26.5, 51.0, 36.5),
    "L5": (26.0, 53.0, 36.0), "L6": (25.5, 53.0, 36.0), "S": (28.0, 52.0, 35.0),
    "Cx": (15.0, 25.0, 15.0),
}
BODY_SIZES: dict[int, BodySize] = {LABELS[k]: BodySize(*v) for k, v in _SIZES.items()}

# Mean distance (mm) from a vertebra's body centroid to the next one's, C2 -> C3 .. L4 -> L5 over the
# 2,240 real keypoint sets in ../shared/data (VID ground truth and VerSe tables, body centres; tested in
# tests/test_vertebrae.py); single steps are 0.7-1.3 times these (0.1-99.9th percentiles). C1 -> C2
# is the offset between their official VerSe centroids (spinelab.synth.geometry.C1_FROM_C2), L5 -> S
# half L5's and S1's heights plus a 10 mm disc; T13 and L6 step like T12 and L5.
_STEPS = {
    "C1": 17.6, "C2": 23.4, "C3": 17.4, "C4": 17.0, "C5": 16.7, "C6": 18.1, "C7": 19.4, "T1": 20.6,
    "T2": 20.9, "T3": 20.8, "T4": 21.2, "T5": 21.8, "T6": 22.2, "T7": 23.1, "T8": 23.9, "T9": 25.4,
    "T10": 27.2, "T11": 29.6, "T12": 32.3, "T13": 32.3, "L1": 34.5, "L2": 35.7, "L3": 36.5, "L4": 36.1,
    "L5": 37.0, "L6": 37.0,
}
MEAN_STEP_MM: dict[int, float] = {LABELS[k]: v for k, v in _STEPS.items()}
