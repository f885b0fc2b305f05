"""Spine configurations: real body centres and rotations, completed to C1-sacrum, with per-level sizes.

A configuration starts from one real keypoint set (its measured levels kept as they are), fills the
rest from the shape model's conditional distribution, then applies the skeletal variants that change
the vertebra count or shape (T13, L6, sacralized L5, fractures). Every vertebra gets a local frame:
columns ``right``, ``anterior``, ``superior`` in RAS+ world axes, the superior axis following the
curve of the body centres and the right axis turned by the vertebra's axial rotation.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from spinelab.synth import shape_model
from spinelab.vertebrae import BODY_SIZES

SACRUM = 26
#: Nominal disc height (mm) below each level, used with Busscher's body heights to split each real
#: centre-to-centre distance into bone and disc.
DISC_BELOW = {2: 3.5, 3: 3.5, 4: 3.5, 5: 3.5, 6: 3.5, 7: 4.0, 8: 3.5, 9: 3.5, 10: 3.5, 11: 3.5, 12: 3.5, 13: 3.5,
              14: 4.5, 15: 4.5, 16: 4.5, 17: 5.0, 18: 6.0, 19: 6.5, 28: 7.0, 20: 8.0, 21: 9.0, 22: 9.5, 23: 10.0,
              24: 10.0, 25: 10.0}
#: C1's centre (the ring's centre of mass, VerSe's convention) relative to C2's body centre, in C2's
#: frame (right, anterior, superior), from the official VerSe centroids of the two cervical masks.
C1_FROM_C2 = np.array([0.0, -10.4, 14.2])
#: Spines whose largest lateral deviation (mm) exceeds this count as scoliotic (top ~5 % of real sets).
SCOLIOSIS_MM = 14.0


@dataclass
class Vertebra:
    """One vertebra (or the sacrum): body centre = its centroid, local frame, body size in mm."""

    label: int
    centre: np.ndarray
    frame: np.ndarray  # (3, 3) columns: right, anterior, superior unit vectors (RAS+)
    height: float
    width: float
    depth: float
    fracture: float = 0.0  # fraction of body height lost where the collapse is deepest
    fracture_kind: str = ""  # 'wedge' (anterior), 'biconcave' (centre) or 'crush' (whole endplate)

    @property
    def right(self) -> np.ndarray:
        return self.frame[:, 0]

    @property
    def anterior(self) -> np.ndarray:
        return self.frame[:, 1]

    @property
    def superior(self) -> np.ndarray:
        return self.frame[:, 2]

    def to_world(self, local) -> np.ndarray:
        """Local (right, anterior, superior) mm offsets -> RAS+ world points."""
        return np.asarray(local, float) @ self.frame.T + self.centre


@dataclass
class Spine:
    """C1 .. last lumbar and the sacrum, skull to tail, plus where the configuration came from."""

    vertebrae: list[Vertebra]
    scale: float  # patient size factor applied to body widths/depths
    source: str
    real_labels: tuple[int, ...]
    variants: dict = field(default_factory=dict)

    def __getitem__(self, label: int) -> Vertebra:
        for vertebra in self.vertebrae:
            if vertebra.label == label:
                return vertebra
        raise KeyError(label)

    @property
    def labels(self) -> list[int]:
        return [v.label for v in self.vertebrae]

    def thoracic(self) -> list[Vertebra]:
        """Rib-bearing levels in order (T1..T12, T13 when present)."""
        return [v for v in self.vertebrae if 8 <= v.label <= 19 or v.label == 28]

    def lumbar(self) -> list[Vertebra]:
        return [v for v in self.vertebrae if 20 <= v.label <= 25]


def _rotate(vectors: np.ndarray, axis: np.ndarray, degrees) -> np.ndarray:
    """Rodrigues rotation of ``vectors`` (..., 3) about unit ``axis`` (..., 3) by ``degrees``."""
    angle = np.radians(degrees)[..., None] if np.ndim(degrees) else np.radians(degrees)
    cos, sin = np.cos(angle), np.sin(angle)
    dot = (vectors * axis).sum(-1, keepdims=True)
    return vectors * cos + np.cross(axis, vectors) * sin + axis * dot * (1 - cos)


def frames(centres: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """(n, 3, 3) local frames: superior = curve tangent, right = patient right turned by ``rotation``."""
    superior = shape_model.tangents(centres)
    right = _rotate(shape_model.reference_lateral(superior), superior, rotation)
    anterior = np.cross(superior, right)
    return np.stack([right, anterior, superior], axis=-1)


def _choose_source(rng: np.random.Generator, spines, scoliosis: bool | None):
    deviation = np.array([spine.lateral_deviation for spine in spines])
    if scoliosis is None:
        pool = np.arange(len(spines))
    else:
        pool = np.flatnonzero(deviation >= SCOLIOSIS_MM if scoliosis else deviation < SCOLIOSIS_MM * 0.7)
    return spines[int(rng.choice(pool))]


def _real_configuration(rng, data_dir: Path | None, scoliosis: bool | None):
    """Centres and rotations for C2..L5 (RAS+ mm, degrees), their source and its measured levels."""
    model = shape_model.load_shape_model()
    spines = shape_model.load_real_spines(data_dir) if data_dir is not None else None
    if spines:
        spine = _choose_source(rng, spines, scoliosis)
        shape = model.sample(rng, spine)
        centres = shape_model.shape_to_centres(shape, spine)
        return centres, shape_model.shape_rotations(shape), spine.source, tuple(int(v) for v in spine.labels)
    for _ in range(200):  # without real sets, draw whole spines from the model (scoliotic or not on request)
        shape = model.sample(rng)
        centres = shape_model.shape_to_centres(shape)
        candidate = shape_model.RealSpine("", np.array(shape_model.MODEL_LEVELS), centres, np.zeros(len(centres)))
        if scoliosis is None or (candidate.lateral_deviation >= SCOLIOSIS_MM) == scoliosis:
            break
    return centres, shape_model.shape_rotations(shape), "shape model", ()


def _insert_after(labels, centres, rotation, after: int, new_label: int, step_from: int):
    """Insert ``new_label`` one step below ``after`` (the step copied from ``step_from`` -> next level),
    moving every level below it down by that step."""
    labels = list(labels)
    at = labels.index(after) + 1
    source = labels.index(step_from)
    step = centres[source + 1] - centres[source]
    centres = np.vstack([centres[:at], centres[at - 1] + step, centres[at:] + step])
    rotation = np.concatenate([rotation[:at], [rotation[at - 1]], rotation[at:]])
    labels.insert(at, new_label)
    return labels, centres, rotation


def _nominal(label: int):
    size = BODY_SIZES[label]
    return size.height, size.width, size.depth


def _body_heights(labels, centres) -> np.ndarray:
    """Body heights that fill each real centre-to-centre distance with bone and a nominal disc."""
    heights = np.array([_nominal(v)[0] for v in labels])
    gaps = np.linalg.norm(np.diff(centres, axis=0), axis=1)
    nominal_gaps = heights[:-1] / 2 + np.array([DISC_BELOW[v] for v in labels[:-1]]) + heights[1:] / 2
    ratio = gaps / nominal_gaps
    per_level = np.concatenate([[ratio[0]], (ratio[:-1] + ratio[1:]) / 2, [ratio[-1]]])
    return heights * np.clip(per_level, 0.75, 1.3)


def _sacrum(rng, last_lumbar: Vertebra, previous: Vertebra, scale: float, disc: float) -> Vertebra:
    """S1 below the last lumbar vertebra: the lumbosacral step turns backwards, the sacrum tilts back."""
    width, depth = BODY_SIZES[SACRUM].width * scale, BODY_SIZES[SACRUM].depth * scale
    height = BODY_SIZES[SACRUM].height * scale
    down = last_lumbar.centre - previous.centre
    down /= np.linalg.norm(down)
    turn = rng.normal(22.0, 6.0)
    direction = _rotate(down, last_lumbar.right, -turn)
    centre = last_lumbar.centre + direction * (last_lumbar.height / 2 + disc + height / 2)
    superior = _rotate(last_lumbar.superior, last_lumbar.right, -rng.normal(20.0, 5.0))
    right = last_lumbar.right - superior * (last_lumbar.right @ superior)
    right /= np.linalg.norm(right)
    frame = np.stack([right, np.cross(superior, right), superior], axis=-1)
    return Vertebra(SACRUM, centre, frame, height, width, depth)


def sample_spine(rng: np.random.Generator, data_dir: Path | None, variants: dict) -> Spine:
    """A complete spine C1..sacrum for one synthetic patient.

    ``variants`` flags (bool): ``t13``, ``l6``, ``sacralized_l5``, ``scoliosis`` (True: a scoliotic
    real set, False: a straight one, None: any), ``fracture`` (True: one or two compression fractures
    among ``fracture_levels``).
    """
    centres, rotation, source, real_labels = _real_configuration(rng, data_dir, variants.get("scoliosis"))
    labels = list(shape_model.MODEL_LEVELS)
    if rng.random() < 0.5:  # mirror left-right: scoliosis to either side, rotations reversed
        centres = centres * [-1.0, 1.0, 1.0]
        rotation = -rotation
    if variants.get("t13"):
        labels, centres, rotation = _insert_after(labels, centres, rotation, 19, 28, step_from=19)
    if variants.get("l6"):
        labels, centres, rotation = _insert_after(labels, centres, rotation, 24, 25, step_from=23)
    scale = float(np.clip(rng.normal(1.0, 0.06), 0.85, 1.15))
    local_frames = frames(centres, rotation)
    heights = _body_heights(labels, centres)
    vertebrae = []
    for label, centre, frame, height in zip(labels, centres, local_frames, heights):
        _, width, depth = _nominal(label)
        jitter = rng.normal(1.0, 0.03, size=2)
        vertebrae.append(Vertebra(label, centre, frame, float(height), width * scale * jitter[0],
                                  depth * scale * jitter[1]))
    c2 = vertebrae[0]
    c1_centre = c2.to_world(C1_FROM_C2 + rng.normal(0, 1.2, 3))
    height, width, depth = _nominal(1)
    vertebrae.insert(0, Vertebra(1, c1_centre, c2.frame.copy(), height, width * scale, depth * scale))
    last = vertebrae[-1]
    disc = DISC_BELOW[last.label] * rng.uniform(0.8, 1.1) * (0.35 if variants.get("sacralized_l5") else 1.0)
    vertebrae.append(_sacrum(rng, last, vertebrae[-2], scale, disc))
    spine = Spine(vertebrae, scale, source, real_labels, {})
    if variants.get("fracture"):
        spine.variants["fracture"] = _fracture(rng, spine, variants["fracture_levels"])
    return spine


#: Share of the lost height taken from the body's rim (where the discs rest) for each fracture kind:
#: a crushed body loses it all around, a wedge only in front, a biconcave body only in its centre.
RIM_LOSS = {"wedge": 0.5, "biconcave": 0.0, "crush": 1.0}


def _fracture(rng, spine: Spine, levels) -> dict:
    """Collapse one or two bodies among ``levels``; the spine above settles by the height lost at the rim."""
    candidates = [v.label for v in spine.vertebrae if v.label in levels]
    count = 1 if rng.random() < 0.75 else 2
    chosen = sorted(rng.choice(candidates, size=count, replace=False).tolist(), key=spine.labels.index)
    details = {}
    for label in chosen:
        index = spine.labels.index(label)
        vertebra = spine.vertebrae[index]
        loss = float(rng.uniform(0.25, 0.5))
        kind = str(rng.choice(list(RIM_LOSS), p=[0.5, 0.3, 0.2]))
        settle = -vertebra.superior * vertebra.height * loss * RIM_LOSS[kind]
        for above in spine.vertebrae[:index]:
            above.centre = above.centre + settle
        spine.vertebrae[index] = replace(vertebra, centre=vertebra.centre + settle / 2, fracture=loss,
                                         fracture_kind=kind)
        details[int(label)] = {"height_loss": round(loss, 3), "kind": kind}
    return details
