"""What varies between synthetic cases: options, pathologies, field of view, voxel grid and scanner.

``SynthOptions`` is the user's request; ``sample_plan`` turns it into one case's concrete choices with
the case's random generator, so a seed fully determines the case.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spinelab.errors import SpinelabError
from spinelab.synth.geometry import SACRUM, Spine

FOV_KINDS = ("cervical", "thoracic", "lumbar", "thoracolumbar", "whole", "partial")
#: How often each field of view is drawn when ``fov='random'``.
FOV_WEIGHTS = {"cervical": 0.12, "thoracic": 0.18, "lumbar": 0.25, "thoracolumbar": 0.15, "whole": 0.1, "partial": 0.2}
PATHOLOGIES = ("fracture", "metal", "l6", "t13", "sacralized_l5", "missing_rib12", "scoliosis")
#: Default probability of each pathology; scoliosis adds to the scoliotic spines among the real sets.
DEFAULT_PATHOLOGY = {"fracture": 0.12, "metal": 0.08, "l6": 0.05, "t13": 0.04, "sacralized_l5": 0.05,
                     "missing_rib12": 0.08, "scoliosis": 0.05}
#: Hardware drawn per case (on its own random stream, so cases without it stay as they were):
#: a total hip replacement, vertebroplasty cement, ECG electrodes with their wires.
HARDWARE = ("hip_prosthesis", "cement", "leads")
DEFAULT_HARDWARE = {"hip_prosthesis": 0.05, "cement": 0.04, "leads": 0.15}
#: How often each contrast phase is drawn for a contrast-enhanced case (HU per phase: ``anatomy.CONTRAST_PHASES``).
CONTRAST_PHASE_WEIGHTS = {"arterial": 0.3, "portal": 0.35, "venous_bolus": 0.2, "excretory": 0.15}
RESOLUTIONS = {
    # in-plane spacing, slice spacing (mm), build sub-slice target (mm), default voxel budget
    "full": ((0.3, 1.0), (0.6, 5.0), 1.25, 32_000_000),
    "test": ((2.0, 3.0), (2.0, 4.0), 4.0, 600_000),
}
_MAX_SPACING = {"full": (1.0, 5.0), "test": (4.0, 6.0)}
METAL_HU = 32767
_VALID_AXES = {frozenset("LR"), frozenset("AP"), frozenset("SI")}


@dataclass
class SynthOptions:
    """What to generate. Ranges are (low, high) and drawn uniformly per case.

    ``spacing`` fixes the voxel size along the world R-L, A-P and S-I axes (mm) whatever the stored
    axis order; ``orientation`` fixes the stored axis codes, e.g. ('L', 'P', 'S'). ``pathology`` maps
    a name from ``PATHOLOGIES`` to a probability or True/False (forced on/off); unnamed ones keep
    ``DEFAULT_PATHOLOGY``; it also takes the ``HARDWARE`` names. ``contrast`` is a bool or a probability; ``contrast_phase`` is 'random' or
    one of ``CONTRAST_PHASE_WEIGHTS`` (arterial, portal, venous_bolus, excretory). ``data_dir`` holds the real
    keypoint sets (default: ``$SPINELAB_DATA`` or ``../shared/data``); without them, spines are drawn
    from the shipped shape model alone.
    """

    fov: str = "random"
    spacing: tuple[float, float, float] | None = None
    orientation: tuple[str, str, str] | None = None
    resolution: str = "full"
    pathology: dict = field(default_factory=dict)
    contrast: bool | float = 0.4
    contrast_phase: str = "random"
    noise_hu: tuple[float, float] = (5.0, 30.0)
    blur_mm: tuple[float, float] = (0.3, 0.9)
    calibration_hu: tuple[float, float] = (-20.0, 20.0)
    max_voxels: int | None = None
    data_dir: str | Path | None = None

    def validate(self) -> None:
        if self.fov != "random" and self.fov not in FOV_KINDS:
            raise SpinelabError(f"unknown field of view {self.fov!r}; choose from random, {', '.join(FOV_KINDS)}")
        if self.contrast_phase != "random" and self.contrast_phase not in CONTRAST_PHASE_WEIGHTS:
            raise SpinelabError(f"unknown contrast phase {self.contrast_phase!r}; choose from random, "
                                f"{', '.join(CONTRAST_PHASE_WEIGHTS)}")
        if self.resolution not in RESOLUTIONS:
            raise SpinelabError(f"unknown resolution {self.resolution!r}; choose 'test' or 'full'")
        unknown = sorted(set(self.pathology) - set(PATHOLOGIES) - set(HARDWARE))
        if unknown:
            raise SpinelabError(f"unknown pathology {unknown}; choose from {', '.join(PATHOLOGIES + HARDWARE)}")
        for name, value in [*self.pathology.items(), ("contrast", self.contrast)]:
            if not isinstance(value, bool) and not 0.0 <= float(value) <= 1.0:
                raise SpinelabError(f"{name}: {value!r} is neither True/False nor a probability")
        forced = {name for name, value in self.pathology.items() if value is True}
        for pair in (("l6", "sacralized_l5"), ("t13", "missing_rib12")):
            if set(pair) <= forced:
                raise SpinelabError(f"pathologies {pair[0]} and {pair[1]} cannot both be forced")
        if self.spacing is not None:
            spacing = np.asarray(self.spacing, dtype=float)
            if spacing.shape != (3,) or not np.all(spacing > 0):
                raise SpinelabError(f"spacing {self.spacing!r} must be three positive millimetre values")
        if self.orientation is not None:
            codes = tuple(str(c).upper() for c in self.orientation)
            if len(codes) != 3 or {frozenset(axis) for axis in _axis_pairs(codes)} != _VALID_AXES:
                raise SpinelabError(f"orientation {self.orientation!r} is not three axis codes like ('L', 'P', 'S')")
        for name in ("noise_hu", "blur_mm", "calibration_hu"):
            low, high = getattr(self, name)
            if low > high or (name != "calibration_hu" and low < 0):
                raise SpinelabError(f"{name} {getattr(self, name)!r} is not a (low, high) range")
        if self.max_voxels is not None and self.max_voxels < 10_000:
            raise SpinelabError(f"max_voxels {self.max_voxels} is too small for a CT")


def _axis_pairs(codes):
    opposite = {"L": "R", "R": "L", "A": "P", "P": "A", "S": "I", "I": "S"}
    return [(c, opposite.get(c, "?")) for c in codes]


@dataclass
class Plan:
    """One case's choices before the anatomy exists."""

    fov: str
    variants: dict  # pathology name -> bool
    contrast: str | None  # contrast phase, None for a scan without contrast agent
    noise_hu: float
    blur_mm: float
    calibration: tuple[float, float]  # (slope, offset)
    padding: float | None  # HU outside the reconstruction circle, None = no circle
    table: bool
    axcodes: tuple[str, str, str]
    slice_axis: int  # world axis (0 R-L, 1 A-P, 2 S-I) with the slice spacing
    targeted: bool  # in-plane field of view tight around the spine rather than the whole body


def _chance(rng, value) -> bool:
    if isinstance(value, bool):
        return value
    return bool(rng.random() < float(value))


def sample_plan(rng: np.random.Generator, options: SynthOptions) -> Plan:
    kind = options.fov
    if kind == "random":
        kind = str(rng.choice(list(FOV_WEIGHTS), p=list(FOV_WEIGHTS.values())))
    wanted = {**DEFAULT_PATHOLOGY, **options.pathology}
    variants = {name: _chance(rng, wanted[name]) for name in PATHOLOGIES}
    if variants["l6"] and variants["sacralized_l5"]:
        variants["sacralized_l5" if wanted["l6"] is True or wanted["sacralized_l5"] is not True else "l6"] = False
    if variants["t13"] and variants["missing_rib12"]:
        variants["missing_rib12" if wanted["t13"] is True or wanted["missing_rib12"] is not True else "t13"] = False
    scoliosis = options.pathology.get("scoliosis", DEFAULT_PATHOLOGY["scoliosis"])
    variants["scoliosis"] = True if variants["scoliosis"] else (False if scoliosis is False else None)
    if options.orientation is not None:
        axcodes = tuple(str(c).upper() for c in options.orientation)
    elif rng.random() < 0.5:
        axcodes = tuple(str(rng.choice(["LPS", "LAS", "RAS", "LPI", "RPI", "PIR", "ASL"])))
    else:
        order = rng.permutation(3)
        axcodes = tuple(("RL", "AP", "SI")[axis][int(rng.integers(2))] for axis in order)
    slice_axis = int(rng.choice([2, 0, 1], p=[0.85, 0.1, 0.05]))
    targeted = bool(rng.random() < (0.5 if kind == "cervical" else 0.35 if options.resolution == "full" else 0.7))
    phase = options.contrast_phase
    if phase == "random":
        phase = str(rng.choice(list(CONTRAST_PHASE_WEIGHTS), p=list(CONTRAST_PHASE_WEIGHTS.values())))
    return Plan(
        fov=kind, variants=variants, contrast=phase if _chance(rng, options.contrast) else None,
        noise_hu=float(rng.uniform(*options.noise_hu)), blur_mm=float(rng.uniform(*options.blur_mm)),
        calibration=(float(rng.uniform(0.97, 1.03)), float(rng.uniform(*options.calibration_hu))),
        padding=float(rng.choice([-1024.0, -2048.0, -3024.0])) if rng.random() < 0.4 else None,
        table=bool(rng.random() < 0.7), axcodes=axcodes, slice_axis=slice_axis, targeted=targeted)


def sample_hardware(rng: np.random.Generator, options: SynthOptions) -> list[str]:
    """The ``HARDWARE`` this case carries (``options.pathology`` forces or weights each like a pathology)."""
    wanted = {**DEFAULT_HARDWARE, **{k: v for k, v in options.pathology.items() if k in HARDWARE}}
    return [name for name in HARDWARE if _chance(rng, wanted[name])]


def fracture_region(kind: str) -> tuple[int, ...]:
    """Levels where a forced fracture goes so that the field of view shows it."""
    return {"cervical": (3, 4, 5, 6), "thoracic": tuple(range(11, 19)), "lumbar": (20, 21, 22, 23)}.get(
        kind, (17, 18, 19, 20, 21, 22))


def _between(spine: Spine, upper: int, lower: int, fraction: float) -> float:
    """Height (world z) a ``fraction`` of the way from ``upper``'s centre down to ``lower``'s."""
    a, b = spine[upper].centre[2], spine[lower].centre[2]
    return a + (b - a) * fraction


def z_range(rng, kind: str, spine: Spine, must_show: float | None) -> tuple[float, float]:
    """(bottom, top) world z of the field of view; region-only views stop between two vertebrae so
    that no vertebra of the neighbouring region counts as visible."""
    last_thoracic = spine.thoracic()[-1].label
    first_lumbar, sacrum, top_of = spine.lumbar()[0].label, spine[SACRUM].centre[2], spine[1].centre[2]
    if kind == "cervical":
        return _between(spine, 7, 8, rng.uniform(0.6, 0.85)), top_of + rng.uniform(30, 80)
    if kind == "thoracic":
        return (_between(spine, last_thoracic, first_lumbar, rng.uniform(0.6, 0.85)),
                _between(spine, 7, 8, rng.uniform(0.15, 0.4)))
    if kind == "lumbar":
        return sacrum - rng.uniform(40, 140), _between(spine, last_thoracic, first_lumbar, rng.uniform(0.15, 0.4))
    if kind == "thoracolumbar":
        return sacrum - rng.uniform(20, 140), spine[int(rng.integers(8, 14))].centre[2] + rng.uniform(-10, 30)
    if kind == "whole":
        return sacrum - rng.uniform(60, 150), top_of + rng.uniform(30, 100)
    length = rng.uniform(80, 350)
    cut = [v for v in spine.vertebrae if v.label not in (1, SACRUM)]
    if must_show is not None:
        cut = [v for v in cut if 0 < v.centre[2] - must_show < length - 30] or cut
    vertebra = cut[int(rng.integers(len(cut)))]
    top = vertebra.centre[2] + rng.uniform(-0.35, 0.35) * vertebra.height
    return max(top - length, sacrum - 150), top


@dataclass
class Grid:
    """Output voxel grid (canonical RAS axes) and the finer build grid it is averaged from."""

    origin: np.ndarray  # world position of output voxel (0, 0, 0)
    spacing: np.ndarray  # output spacing along R, A, S
    shape: tuple[int, int, int]
    slice_axis: int
    subsamples: int  # build voxels per output voxel along the slice axis (odd)

    @property
    def build_spacing(self) -> np.ndarray:
        spacing = self.spacing.copy()
        spacing[self.slice_axis] /= self.subsamples
        return spacing

    @property
    def build_origin(self) -> np.ndarray:
        origin = self.origin.copy()
        origin[self.slice_axis] -= (self.subsamples - 1) / 2 * self.build_spacing[self.slice_axis]
        return origin

    @property
    def build_shape(self) -> tuple[int, int, int]:
        shape = list(self.shape)
        shape[self.slice_axis] *= self.subsamples
        return tuple(shape)

    @property
    def low(self) -> np.ndarray:
        """Outer corner of the first voxel (world)."""
        return self.origin - self.spacing / 2

    @property
    def high(self) -> np.ndarray:
        return self.origin + (np.array(self.shape) - 0.5) * self.spacing


def _slice_spacing(rng, low: float, high: float) -> float:
    band = rng.choice(3, p=[0.4, 0.3, 0.3])
    edges = np.array([low, min(1.25, high), min(3.0, high), high])
    return float(rng.uniform(edges[band], max(edges[band], edges[band + 1])))


def voxel_grid(rng, options: SynthOptions, plan: Plan, low: np.ndarray, high: np.ndarray,
               centre_xy: np.ndarray) -> Grid:
    """Spacing and extent for the box ``low``..``high``, within the voxel budget: spacings grow up to
    the range's upper end, then the in-plane extent shrinks around ``centre_xy`` (the spine)."""
    in_plane, through, build_step, budget = RESOLUTIONS[options.resolution]
    budget = options.max_voxels or budget
    max_in_plane, max_through = _MAX_SPACING[options.resolution]
    extent = np.asarray(high, float) - np.asarray(low, float)
    if options.spacing is not None:
        spacing = np.asarray(options.spacing, dtype=float)
        max_in_plane = max_through = np.inf
    else:
        spacing = np.full(3, rng.uniform(max(in_plane[0], extent[:2].max() / 768), in_plane[1]))
        spacing[plan.slice_axis] = _slice_spacing(rng, *through)
    for _ in range(200):
        count = np.prod(np.floor(extent / spacing) + 1)
        if count <= budget:
            break
        if options.spacing is None and (spacing < [max_in_plane if a != plan.slice_axis else max_through
                                                   for a in range(3)]).any():
            limit = np.array([max_in_plane if a != plan.slice_axis else max_through for a in range(3)])
            spacing = np.minimum(spacing * 1.05, limit)
        else:
            extent[:2] = np.maximum(extent[:2] * 0.95, 60.0)
    else:
        raise SpinelabError(f"a {plan.fov} field of view does not fit in {budget} voxels at spacing "
                            f"{np.round(spacing, 2).tolist()} mm; raise max_voxels or the spacing")
    shape = tuple(int(n) for n in np.floor(extent / spacing) + 1)
    centre = (np.asarray(low) + np.asarray(high)) / 2
    centre[:2] = np.where(extent[:2] < np.asarray(high)[:2] - np.asarray(low)[:2], centre_xy, centre[:2])
    origin = centre - (np.array(shape) - 1) / 2 * spacing
    count = int(np.prod(shape))
    subsamples = max(1, int(np.ceil(spacing[plan.slice_axis] / build_step)))
    subsamples += 1 - subsamples % 2
    while subsamples > 1 and count * subsamples > budget:
        subsamples -= 2
    return Grid(origin, spacing, shape, plan.slice_axis, subsamples)
