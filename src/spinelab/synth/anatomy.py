"""The synthetic patient: skeleton, soft tissues and organs painted onto a canvas around a spine.

Everything hangs off the vertebrae's local frames (right, anterior, superior; see geometry.py), so
ribs, pelvis and skull follow the real spine's posture, scoliosis and axial rotation. Dimensions are
adult means in mm scaled by the patient's size; vertebral bodies use Busscher et al.'s per-level
sizes (``spinelab.vertebrae.BODY_SIZES``) and pedicle positions are the medians of the VID keypoint
sets. Hounsfield units are drawn per patient within the ranges real CTs show.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from spinelab.synth import kernels
from spinelab.synth.canvas import Canvas, polyline
from spinelab.synth.geometry import SACRUM, Spine, Vertebra
from spinelab.vertebrae import BODY_SIZES

PAINT, BONE, COVER = kernels.MODE_PAINT, kernels.MODE_BONE, kernels.MODE_COVER
#: Curvature radius of the diaphragm domes (mm): how far the lungs reach down behind and beside them.
DOME_RADIUS = 90.0
#: Bone materials: each has its own cortical HU, marrow HU and cortex thickness.
VERTEBRA, RIB, FLAT, LONG, SKULL, TOOTH, CARTILAGE = 1, 2, 3, 4, 5, 6, 7
N_MATERIALS = 8

#: Median half distance between the pedicles and their height above the body centre (mm) per level,
#: over the VID ground-truth keypoint sets (pedicle keypoints in each vertebra's own frame).
PEDICLE_HALF_SEPARATION = {2: 16.6, 3: 17.3, 4: 16.9, 5: 15.6, 6: 16.5, 7: 15.4, 8: 14.5, 9: 12.6, 10: 11.3,
                           11: 10.7, 12: 10.7, 13: 10.8, 14: 11.0, 15: 11.3, 16: 11.6, 17: 12.2, 18: 13.5,
                           19: 14.6, 28: 14.8, 20: 15.0, 21: 15.1, 22: 16.5, 23: 18.2, 24: 24.0, 25: 24.0}
PEDICLE_SUPERIOR = {2: -8.8, 3: 1.3, 4: 3.1, 5: 4.1, 6: 4.8, 7: 1.8, 8: 5.0, 9: 5.7, 10: 5.7, 11: 5.8, 12: 6.3,
                    13: 6.9, 14: 7.9, 15: 8.6, 16: 8.4, 17: 8.3, 18: 7.4, 19: 6.3, 28: 6.4, 20: 6.4, 21: 7.2,
                    22: 6.5, 23: 5.4, 24: 7.3, 25: 7.3}


@dataclass
class Patient:
    """Habitus and tissue values of one synthetic patient."""

    width: float  # trunk width factor
    depth: float  # trunk depth factor
    fat: float  # subcutaneous fat thickness (mm)
    fat_fraction: float  # shifts the abdominal fat/organ mix (-1 lean .. +1 obese)
    gas: float  # amount of bowel gas (0..0.8)
    head_flexion: float  # degrees, nodding the head about C1
    arms: str  # ``ARM_POSITIONS``: raised over the head, down at the sides, or crossed over the belly
    contrast: str | None  # contrast phase (``CONTRAST_PHASES``), None without contrast agent
    tissue: dict  # HU of air, fat, muscle, soft, lung, gas, blood, liver, kidney, disc, csf, brain, bladder, ...
    cortical: np.ndarray  # (N_MATERIALS,) HU
    cancellous: np.ndarray  # (N_MATERIALS,) HU
    cortex: np.ndarray  # (N_MATERIALS,) mm

    def paint(self, tissue: str) -> dict:
        """Keyword arguments painting ``tissue``: its HU and its class in the tissue map."""
        kinds = {"air": kernels.AIR, "gas": kernels.AIR, "fat": kernels.FAT, "lung": kernels.LUNG}
        kind = kinds.get(tissue, kernels.SOFT)
        return {"value": self.tissue[tissue], "material": kind}


#: Contrast phases and the HU of arterial blood in each (low, high). ``venous_bolus``: an arterial
#: scan with the injected arm's veins, subclavian and brachiocephalic veins and the superior vena
#: cava still full of undiluted agent (1000-3071 HU, saturating); ``excretory``: agent in the renal
#: pelves and ureters.
CONTRAST_PHASES = {"arterial": (250.0, 600.0), "portal": (150.0, 260.0), "venous_bolus": (200.0, 500.0),
                   "excretory": (90.0, 160.0)}
#: The scanner's ceiling: undiluted contrast agent saturates here in real CTs.
SCANNER_MAX_HU = 3071.0
#: Arm positions and how often each is drawn: raised for most chest and abdomen scans, down (humeral
#: heads and scapulae in a chest scan's top slices), crossed over the belly.
ARM_POSITIONS = {"raised": 0.65, "down": 0.25, "crossed": 0.1}


def sample_patient(rng: np.random.Generator, contrast: str | None) -> Patient:
    fat = float(rng.gamma(3.0, 6.0)) + 4.0
    blood = float(rng.uniform(*CONTRAST_PHASES[contrast])) if contrast else float(rng.uniform(35, 50))
    tissue = {
        "air": float(rng.uniform(-1010, -990)), "fat": float(rng.uniform(-115, -85)),
        "muscle": float(rng.uniform(40, 60)) + (10.0 if contrast else 0.0), "soft": float(rng.uniform(25, 45)),
        "lung": float(rng.uniform(-915, -860)), "gas": float(rng.uniform(-1000, -960)), "blood": blood,
        "myocardium": float(rng.uniform(90, 130)) if contrast else float(rng.uniform(35, 50)),
        "liver": float(rng.uniform(95, 125)) if contrast else float(rng.uniform(50, 65)),
        "kidney": float(rng.uniform(140, 200)) if contrast else float(rng.uniform(28, 40)),
        "spleen": float(rng.uniform(100, 130)) if contrast else float(rng.uniform(40, 50)),
        "disc": float(rng.uniform(70, 100)), "csf": float(rng.uniform(10, 25)), "brain": float(rng.uniform(30, 40)),
        "bladder": float(rng.uniform(0, 15)),
    }
    tissue["vein"] = (tissue["blood"] + tissue["soft"]) / 2  # portal-venous phase lags the arteries
    # The two sides of the heart fill unevenly in the early phases (unmixed agent in one chamber).
    tissue["blood_right_heart"] = blood * float(rng.uniform(0.4, 1.6)) if contrast else blood
    tissue["bolus"] = min(float(rng.uniform(1000, 4000)), SCANNER_MAX_HU)
    tissue["urine"] = float(rng.uniform(600, 3071)) if contrast == "excretory" else float(rng.uniform(0, 15))
    tissue["calcium"] = float(rng.uniform(300, 1200))
    density = rng.uniform(0.0, 1.0)  # bone mineral density of this patient, 0 = osteoporotic
    cortical = np.zeros(N_MATERIALS)
    cancellous = np.zeros(N_MATERIALS)
    cortex = np.ones(N_MATERIALS)
    # Vertebral marrow from osteoporotic (about 50 HU) to dense (about 350 HU), as real spines show.
    cortical[VERTEBRA], cancellous[VERTEBRA], cortex[VERTEBRA] = 500 + 700 * density, 50 + 300 * density, 1.0
    cortical[RIB], cancellous[RIB], cortex[RIB] = 650 + 450 * density, 140 + 120 * density, 0.8
    cortical[FLAT], cancellous[FLAT], cortex[FLAT] = 700 + 450 * density, 150 + 120 * density, 0.9
    cortical[LONG], cancellous[LONG], cortex[LONG] = 1000 + 500 * density, 180 + 150 * density, 2.0
    cortical[SKULL], cancellous[SKULL], cortex[SKULL] = 1100 + 600 * density, 600 + 300 * density, 2.0
    cortical[TOOTH], cancellous[TOOTH], cortex[TOOTH] = 2400 + 600 * density, 1400, 1.5
    cartilage = float(rng.uniform(90, 250))
    cortical[CARTILAGE], cancellous[CARTILAGE], cortex[CARTILAGE] = cartilage + 60, cartilage, 1.0
    return Patient(
        width=float(np.clip(rng.normal(1.0, 0.07), 0.82, 1.2)), depth=float(np.clip(rng.normal(1.0, 0.08), 0.8, 1.25)),
        fat=fat, fat_fraction=float(np.clip((fat - 20) / 25, -1, 1)), gas=float(rng.uniform(0.0, 0.8)),
        head_flexion=float(rng.normal(0, 8)), arms=_arm_position(rng.random()), contrast=contrast,
        tissue=tissue, cortical=cortical, cancellous=cancellous, cortex=cortex)


# ----------------------------------------------------------------------------------------------
# Vertebrae


def _region(label: int) -> str:
    if label <= 7:
        return "cervical"
    if label <= 19 or label == 28:
        return "thoracic"
    return "lumbar"


@dataclass(frozen=True)
class Arch:
    """Posterior element sizes of one level (mm)."""

    pedicle_width: float
    pedicle_height: float
    pedicle_length: float
    lamina_depth: float
    lamina_height: float
    lamina_thickness: float
    spinous_length: float
    spinous_angle: float  # degrees below the horizontal
    spinous_height: float
    transverse_length: float
    transverse_direction: tuple[float, float, float]  # right side; (right, anterior, superior)
    transverse_radius: float
    facet_radius: float


def arch(label: int) -> Arch:
    """Typical adult posterior elements: short bifid cervical, long sloping thoracic, broad lumbar."""
    region = _region(label)
    if region == "cervical":
        spinous = {2: (22, 15, 13), 7: (30, 20, 10)}.get(label, (13 + 1.5 * (label - 3), 20, 8))
        return Arch(5.5, 7.5, 6.0, 14.0, 10.0, 3.5, *spinous, 20.0 if label == 7 else 13.0, (1.0, 0.35, -0.1), 4.0, 6.0)
    if region == "thoracic":
        t = 12 if label == 28 else label - 7
        width = {1: 7.0, 10: 6.5, 11: 7.5, 12: 8.0}.get(t, 5.0 if t < 5 else 5.5)
        spinous = {1: (35, 30), 2: (40, 40), 3: (40, 40), 4: (40, 45), 9: (38, 40), 10: (36, 35), 11: (33, 25),
                   12: (30, 15)}.get(t, (42, 55))
        transverse = {1: 22.0, 11: 12.0, 12: 8.0}.get(t, 20.0)
        return Arch(width, 9 + 0.45 * (t - 1), 9.0, 12.0, 14 + 0.4 * t, 5.0, *spinous, 14.0 if t >= 11 else 8.0,
                    transverse, (1.0, -0.55, 0.2), 4.5 if t >= 11 else 5.5, 4.5)
    number = label - 19
    width = {1: 8.5, 2: 9.0, 3: 10.5, 4: 12.0}.get(number, 16.0)
    transverse = {1: 18.0, 2: 24.0, 3: 28.0, 4: 25.0}.get(number, 22.0)
    return Arch(width, 15.0, 12.0, 12.0, 20.0, 6.0, 24.0 if number >= 5 else 30.0, 5.0, 16.0 if number >= 5 else 20.0,
                transverse, (1.0, -0.2, 0.05), 4.5, 6.0)


def _size_scale(vertebra: Vertebra) -> float:
    nominal = BODY_SIZES[vertebra.label]
    return float(np.sqrt(vertebra.width * vertebra.depth / (nominal.width * nominal.depth)))


@dataclass(frozen=True)
class ArchPoints:
    """Key points of a vertebra's arch in world mm, per side (index 0 right, 1 left)."""

    junction: np.ndarray  # (2, 3) pedicle-lamina junction
    transverse_tip: np.ndarray  # (2, 3)
    spinous_base: np.ndarray  # (3,)
    canal: np.ndarray  # (3,) centre of the spinal canal


def arch_points(vertebra: Vertebra) -> ArchPoints:
    a, s = arch(vertebra.label), _size_scale(vertebra)
    half = PEDICLE_HALF_SEPARATION[vertebra.label] * s
    up = PEDICLE_SUPERIOR[vertebra.label] * vertebra.height / BODY_SIZES[vertebra.label].height
    back = -vertebra.depth / 2
    junction_y = back - a.pedicle_length * s
    base_y = junction_y - a.lamina_depth * s
    direction = np.array(a.transverse_direction) / np.linalg.norm(a.transverse_direction)
    junctions, tips = [], []
    for side in (1.0, -1.0):
        junction = np.array([side * half, junction_y, up])
        tip = junction + a.transverse_length * s * direction * [side, 1.0, 1.0]
        junctions.append(vertebra.to_world(junction))
        tips.append(vertebra.to_world(tip))
    canal_ap = (a.pedicle_length + 0.5 * a.lamina_depth) * s / 2
    return ArchPoints(np.array(junctions), np.array(tips), vertebra.to_world([0.0, base_y, up - 2.0]),
                      vertebra.to_world([0.0, back - canal_ap - 1.0, up]))


def _add_arch(canvas: Canvas, vertebra: Vertebra) -> None:
    """Pedicles, laminae, spinous, transverse and articular processes of one vertebra."""
    a, s, v = arch(vertebra.label), _size_scale(vertebra), vertebra
    points = arch_points(v)
    back = -v.depth / 2
    up = PEDICLE_SUPERIOR[v.label] * v.height / BODY_SIZES[v.label].height
    rows = []
    for index, side in enumerate((1.0, -1.0)):
        junction = points.junction[index]
        pedicle_start = v.to_world([side * PEDICLE_HALF_SEPARATION[v.label] * s * 0.95, back + 3.0, up])
        rows.append(polyline([pedicle_start, junction], a.pedicle_height * s / 2, v.right,
                             a.pedicle_width / a.pedicle_height))
        lamina_normal = np.cross(points.spinous_base - junction, v.superior)
        rows.append(polyline([junction, points.spinous_base], a.lamina_height * s / 2, lamina_normal,
                             a.lamina_thickness / a.lamina_height))
        if _region(v.label) == "cervical":  # two bars around the foramen transversarium
            root = v.to_world([side * v.width / 2, 0.0, 0.0])
            rows.append(polyline([root, points.transverse_tip[index]], a.transverse_radius * s * 0.8))
        rows.append(polyline([junction, points.transverse_tip[index]],
                             [a.transverse_radius * s, a.transverse_radius * s * 0.8],
                             v.anterior if _region(v.label) == "lumbar" else None, 0.6))
        facet_up = junction + v.superior * (0.5 * v.height) + v.right * side * 2.0 - v.anterior * 3.0
        middle = (junction + points.spinous_base) / 2
        facet_down = middle - v.superior * (0.55 * v.height) + v.right * side * 1.0 - v.anterior * 3.0
        rows.append(polyline([junction, facet_up], a.facet_radius * s))
        rows.append(polyline([middle, facet_down], a.facet_radius * s))
    angle = np.radians(a.spinous_angle)
    tip = points.spinous_base + a.spinous_length * s * (-np.cos(angle) * v.anterior - np.sin(angle) * v.superior)
    rows.append(polyline([points.spinous_base, tip], [a.spinous_height * s / 2, a.spinous_height * s * 0.35],
                         v.right, 0.4))
    canvas.tubes(np.vstack(rows), BONE, label=v.label, material=VERTEBRA)


def _body_exponent(label: int) -> float:
    return {"cervical": 2.2, "thoracic": 2.3, "lumbar": 2.6}[_region(label)]


def add_vertebra(canvas: Canvas, spine: Spine, vertebra: Vertebra) -> None:
    """One mobile vertebra C2..L6 (C1 and the sacrum have their own builders)."""
    v = vertebra
    kind = {"": kernels.KIND_NONE, "wedge": kernels.KIND_WEDGE, "biconcave": kernels.KIND_BICONCAVE,
            "crush": kernels.KIND_CRUSH}[v.fracture_kind]
    if v.label == 2:
        body_height = 0.62 * v.height
        centre = v.to_world([0.0, 0.0, -v.height / 2 + body_height / 2])
        canvas.body(centre, v.frame, [v.width / 2, v.depth / 2, body_height / 2], 2.2, label=2, material=VERTEBRA)
        atlas = spine[1]
        dens_top = (atlas.centre - v.centre) @ v.superior + 6.0
        dens_base = v.to_world([0.0, -1.0, -v.height / 2 + body_height - 2.0])
        dens = polyline([dens_base, v.to_world([0.0, -1.0, dens_top])], [5.2, 4.2])
        canvas.tubes(dens, BONE, label=2, material=VERTEBRA)
    else:
        canvas.body(v.centre, v.frame, [v.width / 2, v.depth / 2, v.height / 2], _body_exponent(v.label),
                    label=v.label, material=VERTEBRA, fracture=v.fracture, fracture_kind=kind)
    _add_arch(canvas, v)


def add_atlas(canvas: Canvas, atlas: Vertebra) -> None:
    """C1: lateral masses, anterior and posterior arches, transverse processes; its centroid is the
    ring's centre of mass (VerSe's convention), where C2's dens stands."""
    v, s = atlas, _size_scale(atlas)
    rows = []
    for side in (1.0, -1.0):
        canvas.ellipsoid(v.to_world([side * 19 * s, 0.0, 0.0]), v.frame, np.array([7.5, 9.5, 8.0]) * s, BONE,
                         label=1, material=VERTEBRA)
        anterior = [[side * 14, 11, 0], [side * 8, 18.5, 0.5], [0, 20.5, 1.0]]
        posterior = [[side * 16, -10, 0], [side * 13, -22, 0], [side * 6, -29, 0], [0, -30, 0]]
        rows.append(polyline(v.to_world(np.array(anterior) * s), 3.6 * s, v.superior, 1.4))
        rows.append(polyline(v.to_world(np.array(posterior) * s), 3.6 * s, v.superior, 1.3))
        rows.append(polyline(v.to_world(np.array([[side * 19, 0, 0], [side * 38, -3, 0]]) * s), [5 * s, 4 * s]))
    canvas.tubes(np.vstack(rows), BONE, label=1, material=VERTEBRA)


def _tilted(frame: np.ndarray, degrees: float) -> np.ndarray:
    """Frame turned about its own right axis (positive: superior axis towards posterior)."""
    angle = np.radians(degrees)
    right, anterior, superior = frame.T
    new_superior = superior * np.cos(angle) - anterior * np.sin(angle)
    new_anterior = np.cross(new_superior, right)
    return np.stack([right, new_anterior, new_superior], axis=-1)


#: The sacral column in S1's frame (right, anterior, superior; mm from the S1 body centre): it runs
#: down from S1 and curves forwards (the sacral kyphosis), S2..S5 then the coccyx.
SACRAL_COLUMN = np.array([[0, 0, -10], [0, 2.7, -25], [0, 6, -47], [0, 13, -64], [0, 22, -77]], dtype=float)
SACRAL_HALF_WIDTH = np.array([24, 19, 14, 10, 7], dtype=float)
COCCYX = np.array([[0, 22, -77], [0, 27, -84], [0, 34, -91], [0, 42, -96]], dtype=float)


def add_sacrum(canvas: Canvas, sacrum: Vertebra) -> None:
    """S1-S5 fused and curving forwards, the alae, the dorsal wall of the canal and an unlabelled coccyx."""
    v, s = sacrum, _size_scale(sacrum)
    canvas.body(v.centre, v.frame, [v.width / 2, v.depth / 2, v.height / 2], 2.4, label=SACRUM, material=VERTEBRA)
    column = v.to_world(SACRAL_COLUMN * s)
    canvas.tubes(polyline(column, SACRAL_HALF_WIDTH * s, v.anterior, 0.6), BONE, label=SACRUM, material=VERTEBRA)
    for centre, half in (([38, -4, -8], [19, 16, 15]), ([28, 2, -33], [14, 12, 12]), ([18, 9, -55], [9, 8, 9])):
        for side in (1.0, -1.0):  # the alae and lateral parts, beside the column
            at = v.to_world(np.array(centre) * [side, 1.0, 1.0] * s)
            canvas.body(at, v.frame, np.array(half) * s, 3.0, label=SACRUM, material=VERTEBRA)
    back = -v.depth / 2 / s
    dorsal = v.to_world(np.array([[0, back - 9, -2], [0, back - 7, -28], [0, back + 1, -52], [0, back + 13, -70]]) * s)
    canvas.tubes(polyline(dorsal, np.array([20, 18, 13, 8]) * s, v.anterior, 0.28), BONE, label=SACRUM,
                 material=VERTEBRA)
    facets = [polyline(v.to_world(np.array([[side * 18, back - 8, v.height / 2 / s - 4],
                                            [side * 20, back - 10, v.height / 2 / s + 10]]) * s), 5 * s)
              for side in (1.0, -1.0)]
    canvas.tubes(np.vstack(facets), BONE, label=SACRUM, material=VERTEBRA)
    canvas.tubes(polyline(v.to_world(COCCYX * s), np.array([6, 5, 4, 3]) * s), BONE, label=0, material=VERTEBRA)


def add_discs(canvas: Canvas, spine: Spine, patient: Patient) -> None:
    """Intervertebral discs between consecutive bodies C2-C3 .. last lumbar-S1 (soft tissue)."""
    chain = [v for v in spine.vertebrae if v.label != 1]
    for upper, lower in zip(chain[:-1], chain[1:]):
        bottom = upper.to_world([0.0, 0.0, -upper.height / 2])
        top = lower.to_world([0.0, 0.0, lower.height / 2])
        axis = bottom - top
        length = np.linalg.norm(axis)
        superior = axis / length
        right = upper.right + lower.right
        right -= superior * (right @ superior)
        right /= np.linalg.norm(right)
        frame = np.stack([right, np.cross(superior, right), superior], axis=-1)
        width = (upper.width + lower.width) / 2 * 0.98
        depth = (upper.depth + lower.depth) / 2 * 0.98
        canvas.body((bottom + top) / 2, frame, [width / 2, depth / 2, length / 2 + 1.5], _body_exponent(upper.label),
                    PAINT, **patient.paint("disc"), waist=-0.03, concavity=0.0)


def add_spine(canvas: Canvas, spine: Spine, patient: Patient, sacralized_l5: bool) -> None:
    for vertebra in spine.vertebrae:
        if vertebra.label == 1:
            add_atlas(canvas, vertebra)
        elif vertebra.label == SACRUM:
            add_sacrum(canvas, vertebra)
        else:
            add_vertebra(canvas, spine, vertebra)
    if sacralized_l5:
        _fuse_last_lumbar(canvas, spine)


def _fuse_last_lumbar(canvas: Canvas, spine: Spine) -> None:
    """Sacralized L5: broad transverse processes fused with the sacral alae (Castellvi type III)."""
    last, sacrum = spine.lumbar()[-1], spine[SACRUM]
    points = arch_points(last)
    rows = []
    for index, side in enumerate((1.0, -1.0)):
        ala = sacrum.to_world([side * 42 * sacrum.width / 52, -0.1 * sacrum.depth, sacrum.height * 0.15])
        rows.append(polyline([points.junction[index], points.transverse_tip[index], ala], [7.0, 9.0, 9.0]))
    canvas.tubes(np.vstack(rows), BONE, label=last.label, material=VERTEBRA)


# ----------------------------------------------------------------------------------------------
# Thorax: ribs, cartilage, sternum, shoulder girdle

#: Per rib 1..12: half width and half depth of its contour (mm), how far round it runs (degrees from
#: the back; 180 = front midline), how far its front end drops below its head (mm), tube radius (mm).
RIBS = {
    1: (58, 42, 150, 28, 5.0), 2: (82, 60, 148, 45, 5.2), 3: (100, 74, 146, 58, 5.4), 4: (114, 85, 144, 68, 5.5),
    5: (124, 94, 142, 76, 5.5), 6: (131, 100, 140, 82, 5.5), 7: (136, 104, 138, 86, 5.5), 8: (139, 107, 130, 86, 5.3),
    9: (140, 109, 120, 80, 5.0), 10: (138, 110, 110, 70, 4.8), 11: (132, 110, 85, 45, 4.3), 12: (124, 108, 60, 30, 4.0),
}


def _rib_numbers(spine: Spine, missing_twelfth: bool) -> list[tuple[Vertebra, int]]:
    """Rib-bearing vertebrae with the rib shape to use; a T13 spine's last two ribs float."""
    thoracic = spine.thoracic()
    pairs = []
    for position, vertebra in enumerate(thoracic, start=1):
        number = position if len(thoracic) <= 12 else min(position - (position >= 12), 12)
        if missing_twelfth and vertebra.label == 19:
            continue
        pairs.append((vertebra, number))
    return pairs


def _contour(number: int, patient: Patient, vertebra: Vertebra):
    """Half width, half depth and AP centre (local) of the thoracic contour a rib follows."""
    half_width, half_depth = RIBS[number][0] * patient.width, RIBS[number][1] * patient.depth
    centre_y = -vertebra.depth / 2 - 32.0 + half_depth
    return half_width, half_depth, centre_y


def rib_curve(vertebra: Vertebra, number: int, side: float, patient: Patient, samples: int = 18) -> np.ndarray:
    """World points along one rib: head at the body, tubercle at the transverse process, then round
    the thoracic contour (boxy at the back, elliptic in front), dropping towards its front end."""
    half_width, half_depth, centre_y = _contour(number, patient, vertebra)
    _, _, end_angle, drop, _ = RIBS[number]
    points = arch_points(vertebra)
    tip = points.transverse_tip[0 if side > 0 else 1]
    local_tip = (tip - vertebra.centre) @ vertebra.frame
    head = [side * (vertebra.width / 2 + 1.0), -vertebra.depth * 0.3, vertebra.height / 2 - 3.0]
    tubercle = local_tip + [0.0, 4.0, -2.0]
    angles = np.radians(np.linspace(28.0, end_angle, samples))
    posterior = np.cos(angles) > 0
    exponent = np.where(posterior, 0.75, 1.0)  # superellipse-like: flatter back, round front
    x = side * half_width * np.abs(np.sin(angles)) ** exponent
    y = centre_y - half_depth * np.sign(np.cos(angles)) * np.abs(np.cos(angles)) ** np.where(posterior, 0.8, 1.0)
    fraction = (angles - angles[0]) / (angles[-1] - angles[0])
    z = tubercle[2] + 4.0 * np.sin(np.pi * np.minimum(fraction * 3, 1.0)) - drop * fraction ** 1.4
    shaft = np.stack([x, y, z], axis=1)
    return vertebra.to_world(np.vstack([head, tubercle, shaft]))


def add_ribs(canvas: Canvas, spine: Spine, patient: Patient, missing_twelfth: bool) -> dict:
    """Ribs, costal cartilages and sternum; returns where the sternum runs (for soft tissues)."""
    ends = {}
    rows, cartilage = [], []
    for vertebra, number in _rib_numbers(spine, missing_twelfth):
        radius = RIBS[number][4] * patient.width ** 0.5
        for side in (1.0, -1.0):
            curve = rib_curve(vertebra, number, side, patient)
            outward = np.gradient(curve, axis=0)
            outward = np.cross(outward, vertebra.superior)
            rows.append(polyline(curve, radius, outward * side, 0.55))
            if number <= 10:
                ends[(number, side)] = curve[-1], curve[-1] - curve[-2]
    if rows:
        canvas.tubes(np.vstack(rows), BONE, material=RIB)
    sternum = _sternum(spine, ends)
    if sternum is not None:
        for (number, side), (end, direction) in ends.items():
            attach = sternum["points"][min(number, 7) - 1] + side * sternum["right"] * 14.0
            if number > 7:
                attach = ends.get((number - 1, side), (end, None))[0] + [0.0, 0.0, 8.0]
            middle = end + direction / np.linalg.norm(direction) * 12.0
            cartilage.append(polyline([end, middle, attach], 4.5))
        canvas.tubes(np.vstack(cartilage), BONE, material=CARTILAGE)
        points = sternum["points"]
        widths = np.linspace(24, 14, len(points))
        widths[:2] = 27
        canvas.tubes(polyline(points, widths, sternum["anterior"], 0.3), BONE, material=FLAT)
        canvas.tubes(polyline([points[-1], points[-1] + (points[-1] - points[-2]) * 0.8], [10, 5],
                              sternum["anterior"], 0.4), BONE, material=CARTILAGE)
    return sternum or {}


def _sternum(spine: Spine, ends: dict):
    """Sternum points at the front ends of ribs 1..7 (midline, in front of the cartilages)."""
    pairs = [(ends.get((n, 1.0)), ends.get((n, -1.0))) for n in range(1, 8)]
    if any(a is None or b is None for a, b in pairs):
        return None
    mid = np.array([(a[0] + b[0]) / 2 for a, b in pairs])
    right = np.mean([a[0] - b[0] for a, b in pairs], axis=0)
    right /= np.linalg.norm(right)
    anterior = np.mean([v.anterior for v in spine.thoracic()[:7]], axis=0)
    points = mid + anterior * 22.0
    points[0] += anterior * -6.0 + np.array([0, 0, 10.0])
    return {"points": points, "right": right, "anterior": anterior}


def add_shoulders(canvas: Canvas, spine: Spine, patient: Patient, sternum: dict) -> None:
    """Clavicles, scapulae and the arm bones, in the patient's arm position."""
    t1, t2, t4 = spine[8], spine[9], spine[11]
    w = patient.width
    for side in (1.0, -1.0):
        if sternum:
            start = sternum["points"][0] + side * sternum["right"] * 22.0 + [0, 0, 6.0]
        else:
            start = t1.to_world([side * 25 * w, 95 * patient.depth, -5.0])
        acromion = t1.to_world([side * 160 * w, 5.0, 15.0])
        bend = t1.to_world([side * 95 * w, 60 * patient.depth, 12.0])
        canvas.tubes(polyline([start, bend, acromion], [8.0, 6.5, 6.0], t1.superior, 0.7), BONE, material=FLAT)
        blade = t4.to_world([side * 95 * w, -55 * patient.depth, 5.0])
        plane = t4.frame @ np.array([side * 0.35, -1.0, 0.0])
        plane /= np.linalg.norm(plane)
        lateral = np.cross(t4.superior, plane)
        frame = np.stack([lateral, plane, t4.superior], axis=-1)
        canvas.ellipsoid(blade, frame, [48 * w, 3.0, 70.0], BONE, material=FLAT)
        glenoid = t2.to_world([side * 150 * w, -25.0, 5.0])
        spine_of_scapula = [t4.to_world([side * 60 * w, -62 * patient.depth, 45.0]), glenoid + [0, 0, 12.0], acromion]
        canvas.tubes(polyline(spine_of_scapula, [5.0, 6.0, 7.0]), BONE, material=FLAT)
        canvas.ellipsoid(glenoid, t2.frame, [9.0, 14.0, 18.0], BONE, material=FLAT)
        arm = arm_path(spine, patient, side)
        canvas.ellipsoid(arm[0], t2.frame, [24.0, 24.0, 24.0], BONE, material=LONG)
        canvas.tubes(polyline(arm[:2], [14.0, 10.0]), BONE, material=LONG)
        for offset, radius in ((-6.0, 7.0), (6.0, 6.0)):  # radius and ulna
            shift = t2.anterior * offset
            canvas.tubes(polyline(arm[1:] + shift, [radius, radius * 0.8]), BONE, material=LONG)


def _arm_position(draw: float) -> str:
    """The arm position for one uniform draw (one draw per patient, whatever the weights)."""
    edges = np.cumsum(list(ARM_POSITIONS.values()))
    return list(ARM_POSITIONS)[min(int(np.searchsorted(edges, draw, side="right")), len(edges) - 1)]


def arm_path(spine: Spine, patient: Patient, side: float) -> np.ndarray:
    """Humeral head, elbow and wrist (3, 3) world mm of one arm in the patient's arm position."""
    t2, up, right = spine[9], spine[9].superior, spine[9].right
    head = t2.to_world([side * 176 * patient.width, -25.0, 5.0])
    if patient.arms == "raised":  # beside the head, forearms crossed above it
        elbow = head + up * 290.0 - right * side * 45.0
        return np.stack([head, elbow, elbow + up * 60.0 - right * side * 190.0])
    elbow = head - up * 300.0 + right * side * 25.0
    if patient.arms == "down":
        return np.stack([head, elbow, elbow - up * 240.0 + t2.anterior * 40.0])
    # Crossed: the forearm lies on the front of the belly, reaching past the midline.
    levels, _ = trunk_levels(spine, patient)
    row = levels[np.argmin(np.abs(levels[:, 0] - elbow[2]))]
    front = row[2] + row[4] + patient.fat + 20.0
    elbow = np.array([elbow[0], max(elbow[1], row[2]), elbow[2]])
    wrist = np.array([row[1] - side * 90.0 * patient.width, front, elbow[2] + 40.0])
    return np.stack([head, elbow, wrist])


def add_arm_soft_tissue(canvas: Canvas, spine: Spine, patient: Patient) -> None:
    for side in (1.0, -1.0):
        arm = arm_path(spine, patient, side)
        canvas.tubes(polyline(arm, [50.0, 38.0, 28.0]), PAINT, **patient.paint("fat"))
        canvas.tubes(polyline(arm, [42.0, 30.0, 21.0]), PAINT, **patient.paint("muscle"))


# ----------------------------------------------------------------------------------------------
# Pelvis and hips


#: Nominal sacral slope built into the sacrum's frame; undoing it gives the pelvis its upright frame.
SACRAL_TILT = 35.0
#: Landmarks of the right hemipelvis in the upright pelvic frame (right, anterior, superior; mm from
#: the S1 body centre) of an average adult: iliac crest from the posterior to the anterior superior
#: iliac spine, base of the iliac fan above the acetabulum, hip joint centre, pubis, ischium.
ILIAC_CREST = np.array([[40, -52, 8], [78, -42, 42], [112, -8, 50], [124, 35, 32], [118, 72, 6]], dtype=float)
ILIAC_BASE = np.array([72, 18, -52], dtype=float)
HIP = np.array([85, 42, -82], dtype=float)
PUBIS = np.array([[80, 52, -70], [45, 72, -85], [6, 78, -95]], dtype=float)
ISCHIUM = np.array([[6, 76, -112], [35, 55, -125], [55, 20, -128], [75, 18, -95]], dtype=float)
SACROILIAC = np.array([[46, -22, 8], [44, -28, -20], [40, -26, -45]], dtype=float)


def _pelvis_frame(spine: Spine) -> tuple[np.ndarray, np.ndarray]:
    """Origin (S1 centre) and the upright pelvic frame, which tilts with the sacrum."""
    sacrum = spine[SACRUM]
    return sacrum.centre, _tilted(sacrum.frame, SACRAL_TILT)


def _hemipelvis(spine: Spine, side: float, size):
    """World position of landmarks given for the right hemipelvis, on ``side``, scaled by ``size`` per axis."""
    origin, frame = _pelvis_frame(spine)
    mirror = np.array([side, 1.0, 1.0])

    def at(local):
        return (np.asarray(local, float) * mirror * size) @ frame.T + origin

    return at


def add_pelvis(canvas: Canvas, spine: Spine, patient: Patient) -> None:
    """Iliac wings (a fan of flattened struts under the crest), sacroiliac joints, acetabula, pubic
    and ischial rami, femoral heads, necks, trochanters and shafts."""
    _, frame = _pelvis_frame(spine)
    size = np.array([patient.width, patient.depth, 1.0]) * spine.scale

    for side in (1.0, -1.0):
        mirror = np.array([side, 1.0, 1.0])
        at = _hemipelvis(spine, side, size)
        crest = at(ILIAC_CREST)
        base = at(ILIAC_BASE)
        rows = [polyline(crest, [9.0, 7.0, 6.5, 6.5, 8.0])]
        dense = np.array([np.interp(np.linspace(0, 4, 17), np.arange(5), crest[:, axis]) for axis in range(3)]).T
        for index, tip in enumerate(dense):
            neighbours = dense[min(index + 1, 16)] - dense[max(index - 1, 0)]
            normal = np.cross(neighbours, tip - base)
            rows.append(polyline([base, tip], [10.0, 11.0], normal, 0.4))
        rows.append(polyline(at(SACROILIAC), [14.0, 14.0, 11.0]))
        rows.append(polyline([at(SACROILIAC[1]), base, at(HIP) + frame[:, 2] * 20.0], [12.0, 16.0, 20.0]))
        rows.append(polyline(at(PUBIS), [13.0, 9.0, 10.0]))
        rows.append(polyline(at(ISCHIUM), [9.0, 10.0, 16.0, 16.0]))
        canvas.tubes(np.vstack(rows), BONE, material=FLAT)
        hip = at(HIP)
        cup = frame * mirror
        canvas.ellipsoid(hip, cup, [29.0, 29.0, 29.0], BONE, material=FLAT, shell=7.0, planes=[[0.9, 0.0, -0.45, 6.0]])
        canvas.ellipsoid(hip, frame, np.full(3, 23.0 * spine.scale), BONE, material=LONG)
        trochanter = at([125, 35, -95])
        canvas.tubes(polyline([hip, trochanter], [16.0, 17.0]), BONE, material=LONG)
        canvas.ellipsoid(trochanter, frame, [13.0, 16.0, 22.0], BONE, material=LONG)
        knee = at([98, 42, -520])
        canvas.tubes(polyline([trochanter - frame[:, 2] * 12.0, knee], [15.0, 13.0]), BONE, material=LONG)


# ----------------------------------------------------------------------------------------------
# Head: skull, face, mandible


def _skull_frame(spine: Spine, patient: Patient) -> tuple[np.ndarray, np.ndarray]:
    """Centre and frame of the cranium: on top of C1, its axis halfway between the neck's and the
    table's long axis (the head rests on the head holder), nodded by the patient's head flexion."""
    atlas = spine[1]
    superior = atlas.superior + np.array([0.0, 0.0, 1.0])
    superior /= np.linalg.norm(superior)
    right = atlas.right - superior * (atlas.right @ superior)
    right /= np.linalg.norm(right)
    frame = _tilted(np.stack([right, np.cross(superior, right), superior], axis=-1), -patient.head_flexion)
    centre = atlas.centre + frame @ np.array([0.0, 12.0, 78.0])
    return centre, frame


def add_head_soft_tissue(canvas: Canvas, spine: Spine, patient: Patient) -> None:
    centre, frame = _skull_frame(spine, patient)

    def at(local):
        return np.asarray(local, float) @ frame.T + centre

    canvas.ellipsoid(centre, frame, [78.0, 98.0, 78.0], PAINT, **patient.paint("soft"))
    canvas.ellipsoid(at([0, 58, -48]), frame, [60.0, 50.0, 66.0], PAINT, **patient.paint("soft"))
    canvas.ellipsoid(at([0, 50, -108]), frame, [58.0, 50.0, 34.0], PAINT, **patient.paint("soft"))
    canvas.ellipsoid(centre, frame, [64.0, 84.0, 64.0], PAINT, **patient.paint("brain"))
    for side in (1.0, -1.0):
        canvas.ellipsoid(at([side * 26, 68, -46]), frame, [14.0, 16.0, 18.0], PAINT, **patient.paint("air"))
        canvas.ellipsoid(at([side * 33, 74, -8]), frame, [17.0, 18.0, 16.0], PAINT, **patient.paint("fat"))
    canvas.ellipsoid(at([0, 78, -40]), frame, [9.0, 26.0, 22.0], PAINT, **patient.paint("air"))
    canvas.ellipsoid(at([0, 30, -58]), frame, [16.0, 14.0, 14.0], PAINT, **patient.paint("air"))  # nasopharynx


def add_skull(canvas: Canvas, spine: Spine, patient: Patient) -> None:
    """Cranial vault with skull base, foramen magnum, petrous ridges, facial arches, mandible and teeth."""
    centre, frame = _skull_frame(spine, patient)

    def at(local):
        return np.asarray(local, float) @ frame.T + centre

    canvas.ellipsoid(centre, frame, [71.0, 91.0, 71.0], BONE, material=SKULL, shell=6.5, hole=[0.0, -12.0, 17.0])
    rows = []
    for side in (1.0, -1.0):
        rows.append(polyline([at([side * 14, -8, -62]), at([side * 46, -22, -52])], [8.0, 6.0]))
        rows.append(polyline([at([side * 45, 62, -44]), at([side * 64, 18, -50])], 4.5))
        rows.append(polyline([at([side * 50, 4, -70]), at([side * 46, 12, -118]), at([side * 30, 52, -128]),
                              at([0, 82, -126])], [7.0, 8.0, 8.0, 9.0], frame[:, 0], 0.5))
        rows.append(polyline([at([side * 32, 42, -82]), at([side * 20, 70, -84]), at([0, 80, -84])], 7.5))
    rows.append(polyline([at([0, 4, -66]), at([0, 26, -40])], 7.0))
    canvas.tubes(np.vstack(rows), BONE, material=SKULL)
    teeth = []
    for angle in np.linspace(-70, 70, 12):
        radians = np.radians(angle)
        spot = np.array([38 * np.sin(radians), 48 + 32 * np.cos(radians), 0.0])
        teeth.append(polyline([at(spot + [0, 0, -88]), at(spot + [0, 0, -98])], 3.2))
        teeth.append(polyline([at(spot + [0, -2, -101]), at(spot + [0, -2, -111])], 3.0))
    canvas.tubes(np.vstack(teeth), BONE, material=TOOTH)


# ----------------------------------------------------------------------------------------------
# Trunk soft tissues


def trunk_levels(spine: Spine, patient: Patient) -> tuple[np.ndarray, dict[int, int]]:
    """The body outline (before fat) at each vertebra: rows (z, centre x, centre y, half width, half
    depth) in world mm; and the rib number of each rib-bearing level."""
    w, d = patient.width, patient.depth
    rows = []
    thoracic = {v.label: n for v, n in _rib_numbers(spine, False)}
    for v in spine.vertebrae:
        region = "sacral" if v.label == SACRUM else _region(v.label)
        back_muscle = {"cervical": 70.0, "thoracic": 80.0, "lumbar": 88.0, "sacral": 75.0}[region] * d
        if v.label in thoracic:
            half_width, half_depth, centre_y = _contour(thoracic[v.label], patient, v)
            half_width += 12.0 if thoracic[v.label] > 3 else 45.0 * w  # shoulders over the upper ribs
            front = max(centre_y + half_depth + 14.0, 80.0 * d)  # manubrium and pectorals over the small upper ribs
        elif region == "cervical":
            half_width, front = 52.0 * w, 55.0 * d
        else:
            half_width = (148.0 if region == "lumbar" else 158.0) * w
            front = (140.0 if region == "lumbar" else 125.0) * d + 25.0 * patient.fat_fraction
        back = -v.depth / 2 - back_muscle
        centre = v.to_world([0.0, (front + back) / 2, 0.0])
        rows.append((v.centre[2], centre[0], centre[1], half_width, (front - back) / 2))
    levels = np.array(rows)
    return levels, thoracic


def slice_table(canvas: Canvas, spine: Spine, patient: Patient) -> np.ndarray:
    """One row of ``kernels.SLICE_COLUMNS`` per build slice, interpolated between vertebra levels."""
    columns = {name: i for i, name in enumerate(kernels.SLICE_COLUMNS)}
    z = canvas.origin[2] + np.arange(canvas.shape[2]) * canvas.spacing[2]
    levels, thoracic = trunk_levels(spine, patient)
    order = np.argsort(levels[:, 0])
    lz = levels[order, 0]
    table = np.zeros((len(z), len(columns)))

    def interp(values):
        return np.interp(z, lz, values[order])

    fat = patient.fat
    table[:, columns["body_x"]] = interp(levels[:, 1])
    table[:, columns["body_y"]] = interp(levels[:, 2])
    table[:, columns["body_ax"]] = interp(levels[:, 3]) + fat
    table[:, columns["body_ay"]] = interp(levels[:, 4]) + fat
    top = spine[1].centre[2] + 25.0  # the head's own soft tissue takes over above C1
    table[z > top, columns["body_ax"]] = 0.0
    table[:, columns["fat_depth"]] = fat * np.where(z > spine[8].centre[2], 0.5, 1.0)
    table[:, columns["wall_muscle"]] = 11.0
    table[:, columns["fat_fraction"]] = 0.9 - 0.5 * patient.fat_fraction
    abdomen_top = spine[17].centre[2]
    table[:, columns["gas_share"]] = np.where(z < abdomen_top, patient.gas, 0.0)
    _lungs(table, columns, z, spine, patient, thoracic)
    return table


def diaphragm(spine: Spine, patient: Patient) -> tuple[float, float]:
    """World z of the right and left diaphragm dome tops (the right one sits higher, over the liver)."""
    right = spine[17].centre[2] - 5.0 + 10.0 * (patient.depth - 1.0)
    return right, right - 12.0


def _lungs(table, columns, z, spine: Spine, patient: Patient, thoracic: dict) -> None:
    rib_levels = [v for v in spine.vertebrae if v.label in thoracic]
    apex = spine[8].centre[2] + 28.0
    levels = []
    for v in rib_levels:
        half_width, half_depth, centre_y = _contour(thoracic[v.label], patient, v)
        centre = v.to_world([0.0, centre_y, -12.0])
        right = v.to_world([0.52 * half_width, centre_y + 0.02 * half_depth, -12.0])
        left = v.to_world([-0.52 * half_width, centre_y + 0.02 * half_depth, -12.0])
        levels.append((centre[2], right[0], right[1], left[0], left[1], 0.5 * half_width - 2, 0.95 * half_depth,
                       centre[0], v.to_world([0.0, v.depth / 2, 0.0])[1], v.width / 2 + 3.0))
    levels = np.array(levels)
    order = np.argsort(levels[:, 0])
    names = ["lung_r_x", "lung_r_y", "lung_l_x", "lung_l_y", "lung_ax", "lung_ay", "mediastinum_x", "mediastinum_y",
             "mediastinum_w"]
    for index, name in enumerate(names, start=1):
        table[:, columns[name]] = np.interp(z, levels[order, 0], levels[order, index])
    taper = np.sqrt(np.clip((apex - z) / 55.0, 0.0, 1.0))
    table[:, columns["lung_extent"]] = np.where(z < apex, taper, 0.0)
    table[:, columns["dome_r_z"]], table[:, columns["dome_l_z"]] = diaphragm(spine, patient)
    table[:, columns["dome_r_x"]] = table[:, columns["lung_r_x"]]
    table[:, columns["dome_l_x"]] = table[:, columns["lung_l_x"]]
    table[:, columns["dome_y"]] = (table[:, columns["lung_r_y"]] + table[:, columns["lung_l_y"]]) / 2 + 35.0
    table[z < spine[21].centre[2], columns["lung_extent"]] = 0.0  # never into the abdomen


def texture_fields(rng: np.random.Generator, canvas: Canvas, step: float = 4.0):
    """Two smooth random fields on a coarse grid: the fat/organ mix and the lung vessel network."""
    shape = np.ceil((canvas.upper - canvas.origin) / step).astype(int) + 2
    mix = ndimage.gaussian_filter(rng.standard_normal(shape), 1.6)
    vessels = ndimage.gaussian_filter(rng.standard_normal(shape), 0.9)
    fields = np.stack([mix / mix.std(), vessels / vessels.std()]).astype(np.float64)
    return fields, canvas.origin - step / 2, step


def add_trunk(canvas: Canvas, rng: np.random.Generator, spine: Spine, patient: Patient) -> None:
    table = slice_table(canvas, spine, patient)
    t = patient.tissue
    tissue = np.array([t["air"], t["fat"], t["muscle"], t["soft"], t["lung"], t["gas"]])
    fields, origin, step = texture_fields(rng, canvas)
    kernels.trunk(canvas.soft, canvas.classes, canvas.origin, canvas.spacing, table, tissue, fields, origin, step,
                  DOME_RADIUS)


def add_organs(canvas: Canvas, spine: Spine, patient: Patient) -> None:
    """Heart and great vessels, airway, liver, spleen, stomach, kidneys, bladder, muscles, spinal canal."""
    t5, t7, t11, t12, l1 = spine[12], spine[14], spine[18], spine[19], spine[20]
    lumbar = spine.lumbar()
    w, d = patient.width, patient.depth
    heart_frame = _tilted(t7.frame, 35)
    heart = t7.to_world([-22 * w, 72 * d, -30.0])
    canvas.ellipsoid(heart, heart_frame, [50 * w, 42 * d, 55.0], PAINT, **patient.paint("myocardium"))
    for chamber, offset in (("blood_right_heart", [14, 8, 6]), ("blood", [-20, -2, -4])):
        canvas.ellipsoid(heart + t7.frame @ np.array(offset, float), heart_frame, [26 * w, 24 * d, 34.0], PAINT,
                         **patient.paint(chamber))
    trunk_start = heart + heart_frame @ np.array([5.0, 20.0, 40.0])
    for side in (1.0, -1.0):  # pulmonary arteries from the heart to each hilum
        hilum = t7.to_world([side * 55 * w, 30 * d, 22.0])
        canvas.tubes(polyline([trunk_start, t7.to_world([side * 20, 45 * d, 30.0]), hilum], [13.0, 11.0, 8.0]), PAINT,
                     **patient.paint("blood"))
    aorta = aorta_path(spine, patient)
    canvas.tubes(polyline(aorta, np.linspace(15, 10, len(aorta))), PAINT, **patient.paint("blood"))
    last = lumbar[-1]
    for side in (1.0, -1.0):
        canvas.tubes(polyline([aorta[-1], last.to_world([side * 35, last.depth / 2 + 15, -40])], [7.0, 6.0]), PAINT,
                     **patient.paint("blood"))
    vena = [v.to_world([22, v.depth / 2 + 12, 0]) for v in [t12, *lumbar[:-1]]]
    canvas.tubes(polyline(vena, 11.0), PAINT, **patient.paint("vein"))
    c5 = spine[5]
    carina = t5.to_world([0, t5.depth / 2 + 22, 5])
    airway = [spine[4].to_world([0, c5.depth / 2 + 22, 0]), spine[8].to_world([0, 28, 0]), carina]
    canvas.tubes(polyline(airway, 10.0), PAINT, **patient.paint("soft"))
    canvas.tubes(polyline(airway, 8.0), PAINT, **patient.paint("air"))
    for side in (1.0, -1.0):
        bronchus = carina + t5.frame @ np.array([side * 38, 0, -28.0])
        canvas.tubes(polyline([carina, bronchus], 6.0), PAINT, **patient.paint("air"))
    right_dome, left_dome = diaphragm(spine, patient)
    # Upper-abdominal organs sit right under the domes; their rounded tops shape the lung bases.
    liver_radii = np.array([85 * w, 90 * d, 95.0])
    liver = t11.to_world([78 * w, 45 * d, 0.0])
    liver[2] = right_dome - liver_radii[2] + 4.0
    canvas.ellipsoid(liver, np.eye(3), liver_radii, PAINT, **patient.paint("liver"))
    spleen = t11.to_world([-82 * w, -5 * d, 0.0])
    spleen[2] = left_dome - 55.0
    canvas.ellipsoid(spleen, np.eye(3), [26 * w, 48 * d, 55.0], PAINT, **patient.paint("spleen"))
    stomach = t12.to_world([-55 * w, 60 * d, 0.0])
    stomach[2] = left_dome - 50.0
    canvas.ellipsoid(stomach, np.eye(3), [48 * w, 40 * d, 52.0], PAINT, **patient.paint("soft"))
    canvas.ellipsoid(stomach + [0.0, 26 * d, 12.0], np.eye(3), [34 * w, 12 * d, 30.0], PAINT, **patient.paint("gas"))
    for side in (1.0, -1.0):
        kidney = l1.to_world([side * 72 * w, -8 * d, -8.0])
        canvas.ellipsoid(kidney, _tilted(l1.frame, -10), [28.0, 24.0, 56.0], PAINT, **patient.paint("kidney"))
    origin, pelvis = _pelvis_frame(spine)
    canvas.ellipsoid(origin + pelvis @ np.array([0, 50 * d, -75]), pelvis, [45 * w, 32 * d, 35.0], PAINT,
                     **patient.paint("bladder"))
    _muscles(canvas, spine, patient)
    canal = [arch_points(v).canal for v in spine.vertebrae if v.label not in (1, SACRUM)]
    canal.insert(0, spine[1].to_world([0, -10, 0]))
    canvas.tubes(polyline(canal, 7.5), PAINT, **patient.paint("csf"))


def aorta_path(spine: Spine, patient: Patient) -> list[np.ndarray]:
    """Centre line of the aorta: ascending from the heart, the arch over the left bronchus, down beside the spine."""
    t5, t7, d = spine[12], spine[14], patient.depth
    aorta = [t7.to_world([-5, 62 * d, 18]), spine[11].to_world([0, 50 * d, 25]), spine[10].to_world([-12, 30 * d, 10]),
             t5.to_world([-22, 12, 0])]
    aorta += [v.to_world([-18, 16 + 0.1 * v.depth, 0]) for v in spine.vertebrae if 13 <= v.label <= 19]
    aorta += [v.to_world([-10, v.depth / 2 + 10, 0]) for v in spine.lumbar()[:-1]]
    return aorta


def add_dense_agent(canvas: Canvas, rng: np.random.Generator, spine: Spine, patient: Patient) -> dict:
    """What is as bright as bone but is not: an undiluted venous bolus (``venous_bolus`` phase), agent
    in the renal pelves and ureters (``excretory``) and aortic wall calcification. Painted as soft
    tissue, so the tissue map says it is not bone."""
    details = {}
    w, d = patient.width, patient.depth
    if patient.contrast == "venous_bolus":
        t1, t3, t6 = spine[8], spine[10], spine[13]
        side = float(rng.choice([1.0, -1.0]))  # the injected arm
        cava = [t3.to_world([24 * w, 42 * d, 12.0]), t6.to_world([26 * w, 55 * d, 0.0]),
                spine[14].to_world([20 * w, 66 * d, -12.0])]
        junction = t1.to_world([side * 38 * w, 38 * d, -2.0])
        subclavian = [junction, t1.to_world([side * 100 * w, 22 * d, 8.0]), t1.to_world([side * 150 * w, 0.0, 0.0])]
        elbow = arm_path(spine, patient, side)[1]
        canvas.tubes(polyline([*subclavian, elbow], [6.0, 5.5, 5.0, 3.5]), PAINT, **patient.paint("bolus"))
        canvas.tubes(polyline([junction, cava[0]], 7.0), PAINT, **patient.paint("bolus"))
        filling = float(rng.uniform(0.4, 1.0))  # how far down the vena cava the undiluted agent reaches
        canvas.tubes(polyline([cava[0], cava[0] + (cava[1] - cava[0]) * filling], 9.0), PAINT, **patient.paint("bolus"))
        details["bolus_side"] = "right" if side > 0 else "left"
    if patient.contrast == "excretory":
        l1, lumbar = spine[20], spine.lumbar()
        origin, pelvis = _pelvis_frame(spine)
        bladder = origin + pelvis @ np.array([0, 50 * d, -75])
        for side in (1.0, -1.0):
            hilum = l1.to_world([side * 58 * w, -2 * d, -14.0])
            canvas.ellipsoid(hilum, _tilted(l1.frame, -10), [9.0, 7.0, 14.0], PAINT, **patient.paint("urine"))
            ureter = [hilum, *[v.to_world([side * (v.width / 2 + 14), 12.0, 0.0]) for v in lumbar[1:]], bladder]
            canvas.tubes(polyline(ureter, 2.5), PAINT, **patient.paint("urine"))
        canvas.ellipsoid(bladder + pelvis @ np.array([0, -12.0 * d, -10.0]), pelvis, [35 * w, 16 * d, 18.0], PAINT,
                         **patient.paint("urine"))  # agent layers at the bladder's back (the patient lies supine)
    if rng.random() < 0.35:  # calcified plaques in the aortic wall
        aorta = polyline(aorta_path(spine, patient), 1.0)
        plaques = []
        for _ in range(int(rng.integers(3, 15))):
            row = aorta[int(rng.integers(len(aorta)))]
            direction = rng.normal(size=3)
            direction /= np.linalg.norm(direction)
            centre = row[:3] + rng.random() * (row[3:6] - row[:3]) + direction * rng.uniform(9.0, 13.0)
            canvas.ellipsoid(centre, np.eye(3), rng.uniform(1.5, 4.0, size=3), PAINT, **patient.paint("calcium"))
            plaques.append(centre)
        details["aortic_plaques"] = len(plaques)
    return details


#: Erector spinae per region: distance of its centre beside the midline and its half thickness (mm).
ERECTOR_SPINAE = {"cervical": (22, 18), "thoracic": (30, 20), "lumbar": (38, 28), "sacral": (30, 16)}


def _muscles(canvas: Canvas, spine: Spine, patient: Patient) -> None:
    """Erector spinae along the whole back and psoas along the lumbar spine into the pelvis."""
    size = patient.depth
    for side in (1.0, -1.0):
        path, radius = [], []
        for v in spine.vertebrae:
            if v.label == 1:
                continue
            region = "sacral" if v.label == SACRUM else _region(v.label)
            back = -v.depth / 2 - 14.0 if region == "sacral" else (arch_points(v).spinous_base - v.centre) @ v.anterior
            lateral, across = ERECTOR_SPINAE[region]
            path.append(v.to_world([side * lateral, back - 8.0 - across * 0.5, 0.0]))
            radius.append(across * size)
        canvas.tubes(polyline(path, radius, spine[20].anterior, 0.75), PAINT, **patient.paint("muscle"))
        lumbar = spine.lumbar()
        psoas = [v.to_world([side * (v.width / 2 + 10 + 4 * i), 0.0, 0.0]) for i, v in enumerate(lumbar)]
        origin, frame = _pelvis_frame(spine)
        psoas.append(origin + frame @ np.array([side * 70 * patient.width, 45 * size, -75.0]))
        canvas.tubes(polyline(psoas, np.linspace(8, 24, len(psoas))), PAINT, **patient.paint("muscle"))


def add_table(canvas: Canvas, spine: Spine, patient: Patient, rng: np.random.Generator) -> None:
    """The scanner couch under the patient: a curved carbon plate with dense edges, constant along z."""
    levels, _ = trunk_levels(spine, patient)
    back = np.min(levels[:, 2] - levels[:, 4]) - patient.fat - rng.uniform(4, 25)
    x = canvas.origin[0] + np.arange(canvas.shape[0]) * canvas.spacing[0]
    y = canvas.origin[1] + np.arange(canvas.shape[1]) * canvas.spacing[1]
    centre_x = np.median(levels[:, 1])
    surface = back + ((x - centre_x) / 260.0) ** 2 * 40.0
    distance = y[None, :] - surface[:, None]
    plate = (distance < 0) & (distance > -6.0) & (np.abs(x - centre_x) < 240)[:, None]
    foam = (distance <= -6.0) & (distance > -40.0) & (np.abs(x - centre_x) < 235)[:, None]
    couch = np.where(plate, rng.uniform(150, 400), np.where(foam, rng.uniform(-950, -850), np.nan))
    mask = np.isfinite(couch)
    canvas.soft[mask, :] = couch[mask][:, None]
    canvas.classes[mask, :] = kernels.TABLE


# ----------------------------------------------------------------------------------------------
# Implants


def add_metal(canvas: Canvas, spine: Spine, labels: list[int], rng: np.random.Generator) -> list[dict]:
    """Pedicle screws through both pedicles of ``labels`` and a rod on each side joining their heads."""
    heads = {1.0: [], -1.0: []}
    screws = []
    for label in labels:
        v = spine[label]
        points = arch_points(v)
        radius = float(rng.uniform(2.6, 3.4)) * (0.8 if _region(label) == "thoracic" else 1.0)
        length = v.depth * rng.uniform(0.9, 1.1) + arch(label).pedicle_length
        up = PEDICLE_SUPERIOR[label] * v.height / BODY_SIZES[label].height
        for index, side in enumerate((1.0, -1.0)):
            entry = points.junction[index] - v.anterior * 6.0 + v.right * side * 2.0
            aim = v.to_world([side * 4.0, v.depth * 0.25, up * 0.5])
            direction = (aim - entry) / np.linalg.norm(aim - entry)
            canvas.tubes(polyline([entry, entry + direction * length], [radius, radius * 0.8]), COVER)
            head = entry - direction * 9.0
            canvas.ellipsoid(head, v.frame, [6.0, 6.0, 6.5], COVER)
            heads[side].append(head)
        screws.append({"label": int(label), "radius_mm": round(radius, 2)})
    for side, points in heads.items():
        if len(points) > 1:
            points = np.array(points)
            ends = [points[0] + (points[0] - points[1]) * 0.2, *points, points[-1] + (points[-1] - points[-2]) * 0.2]
            canvas.tubes(polyline(ends, 2.75), COVER)
    return screws


def add_hip_prosthesis(canvas: Canvas, spine: Spine, rng: np.random.Generator) -> list[dict]:
    """Total hip replacements: acetabular cup, ball head, neck and a stem down the femoral shaft, on
    one side or (a fifth of cases) both."""
    _, frame = _pelvis_frame(spine)
    sides = [1.0, -1.0] if rng.random() < 0.2 else [float(rng.choice([1.0, -1.0]))]
    implants = []
    for side in sides:
        mirror = np.array([side, 1.0, 1.0])
        at = _hemipelvis(spine, side, spine.scale)
        hip, neck_base = at(HIP), at([112, 38, -112])
        stem_end = at([110, 40, -112 - float(rng.uniform(110, 160))])
        canvas.ellipsoid(hip, frame * mirror, [27.0, 27.0, 27.0], COVER, shell=4.0, planes=[[0.9, 0.0, -0.45, 4.0]])
        head = float(rng.uniform(12.0, 16.0))
        canvas.ellipsoid(hip, frame, [head, head, head], COVER)
        canvas.tubes(polyline([hip, neck_base, stem_end], [6.0, 8.0, 4.0]), COVER)
        implants.append({"side": "right" if side > 0 else "left", "head_mm": round(2 * head, 1)})
    return implants


def add_cement(canvas: Canvas, spine: Spine, labels: list[int], rng: np.random.Generator) -> list[dict]:
    """Vertebroplasty: a few lobes of bone cement (1500-3071 HU) filling part of each treated body."""
    canvas.cover_hu["cement"] = float(rng.uniform(1500.0, SCANNER_MAX_HU))
    for label in labels:
        v = spine[label]
        half = np.array([v.width / 2, v.depth / 2, v.height / 2])
        for _ in range(int(rng.integers(2, 5))):
            centre = v.to_world(rng.uniform(-0.35, 0.35, 3) * half * [1.0, 1.0, 0.6])
            canvas.ellipsoid(centre, v.frame, half * rng.uniform(0.25, 0.5, 3), COVER, cover="cement")
    return [{"label": int(label)} for label in labels]


def add_leads(canvas: Canvas, spine: Spine, patient: Patient, rng: np.random.Generator) -> int:
    """ECG electrodes on the skin of the chest and upper belly, each with a thin wire running off to the
    side; returns how many were placed in the build grid."""
    levels, _ = trunk_levels(spine, patient)
    chest = [row for row, v in zip(levels, spine.vertebrae) if 9 <= v.label <= 20]  # T2 to L1
    placed = 0
    for _ in range(int(rng.integers(3, 7))):
        row = chest[int(rng.integers(len(chest)))]
        pad = _skin_front(canvas, row[1] + rng.uniform(-0.8, 0.8) * row[3], row[0] + rng.uniform(-15, 15))
        if pad is None:
            continue
        canvas.ellipsoid(pad, np.eye(3), [5.0, 1.2, 5.0], COVER)
        away = pad + [np.sign(pad[0] - row[1] + 1e-6) * rng.uniform(150, 300), rng.uniform(10, 60), rng.uniform(-80, 80)]
        canvas.tubes(polyline([pad, (pad + away) / 2 + [0, 25.0, 0], away], 0.6), COVER)
        placed += 1
    return placed


def _skin_front(canvas: Canvas, x: float, z: float) -> np.ndarray | None:
    """World point on the front skin of the painted body at (x, z); None outside the grid or the body."""
    i, k = np.rint((np.array([x, z]) - canvas.origin[[0, 2]]) / canvas.spacing[[0, 2]]).astype(int)
    if not (0 <= i < canvas.shape[0] and 0 <= k < canvas.shape[2]):
        return None
    body = np.flatnonzero(canvas.soft[i, :, k] > -500.0)
    if not len(body):
        return None
    return np.array([x, canvas.origin[1] + body[-1] * canvas.spacing[1] + 1.5, z])


def cement_levels(rng: np.random.Generator, visible: list[int], fractured: dict) -> list[int]:
    """Treated levels: the fractured vertebrae when there are any, else one or two of T8-L4 in view."""
    if fractured:
        return sorted(int(label) for label in fractured)
    candidates = [label for label in visible if 15 <= label <= 23]
    if not candidates:
        return []
    return sorted(int(x) for x in rng.choice(candidates, size=min(len(candidates), int(rng.integers(1, 3))),
                                             replace=False))


def build(canvas: Canvas, rng: np.random.Generator, spine: Spine, patient: Patient, variants: dict,
          metal_levels: list[int], table: bool, hardware: dict | None = None) -> dict:
    """Paint a whole patient; returns details worth recording (metal, hardware).

    ``hardware`` maps each drawn ``variants.HARDWARE`` name to what it needs (cement: its levels) and
    carries its own random generator under ``rng``, so adding hardware leaves the rest of a case as it was.
    """
    # Soft tissues first (later paint wins), then the bone union, then implants.
    add_trunk(canvas, rng, spine, patient)
    add_arm_soft_tissue(canvas, spine, patient)
    add_head_soft_tissue(canvas, spine, patient)
    add_organs(canvas, spine, patient)
    details = add_dense_agent(canvas, rng, spine, patient)
    add_discs(canvas, spine, patient)
    if table:
        add_table(canvas, spine, patient, rng)
    add_spine(canvas, spine, patient, bool(variants.get("sacralized_l5")))
    sternum = add_ribs(canvas, spine, patient, bool(variants.get("missing_rib12")))
    add_shoulders(canvas, spine, patient, sternum)
    add_pelvis(canvas, spine, patient)
    add_skull(canvas, spine, patient)
    if metal_levels:
        details["metal"] = add_metal(canvas, spine, metal_levels, rng)
    hardware = hardware or {}
    if "hip_prosthesis" in hardware:
        details["hip_prosthesis"] = add_hip_prosthesis(canvas, spine, hardware["rng"])
    if hardware.get("cement"):
        details["cement"] = add_cement(canvas, spine, hardware["cement"], hardware["rng"])
    if "leads" in hardware:
        details["leads"] = add_leads(canvas, spine, patient, hardware["rng"])
    return details
