"""Real spine geometry: the keypoint sets of real patients and a statistical shape model fitted on them.

Each real set gives vertebral body centres (RAS+ mm) for the levels its scan covered and, for the
VID sets, the left/right pedicles, from which each vertebra's axial rotation follows. The shape
model is a Gaussian over one vector per spine: the 22 body-to-body steps C2 -> C3 ... L4 -> L5, each
as its length (mm) and its forward and sideways lean from the scanner's long axis (degrees), so
posture, kyphosis, lordosis and scoliosis are in it, followed by the 23 axial rotations (degrees).
Lengths and angles, unlike step vectors, keep a sampled step as long as real ones whatever its
direction. The model is fitted by EM on all sets at once, each set seen only through the entries it
measured, so a partial spine is completed by the conditional Gaussian given its own levels.

C1 and the sacrum are not part of the vector: real sources disagree on where C1's "centre" is (VID
marks the anterior arch, VerSe the ring's centre of mass) and no set marks the sacrum; geometry.py
places both relative to their neighbours.

The fitted model is small and ships as ``spine_model.npz`` next to this file; rebuild it with
``python -m spinelab.synth.shape_model [DATA_DIR]``.
"""

from __future__ import annotations

import functools
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spinelab.errors import SpinelabError

#: VerSe labels the model describes, skull to tail: C2 .. L5 (C1 and sacrum are placed by rules).
MODEL_LEVELS: tuple[int, ...] = tuple(range(2, 25))
N_LEVELS = len(MODEL_LEVELS)
N_STEPS = N_LEVELS - 1
DIM = 3 * N_STEPS + N_LEVELS
MODEL_PATH = Path(__file__).with_name("spine_model.npz")
#: Variance of keypoint placement (mm², degrees²) assumed while fitting; when completing a real set,
#: its measured entries are kept (almost) exactly.
_FIT_NOISE = 1.0
_KEEP_NOISE = 0.01
_EXPLAINED_VARIANCE = 0.995


def default_data_dir() -> Path | None:
    """``$SPINELAB_DATA``, else ``../shared/data`` beside the repository checkout; None when absent."""
    configured = os.environ.get("SPINELAB_DATA")
    candidates = [Path(configured)] if configured else [Path(__file__).resolve().parents[3].parent / "shared" / "data"]
    for candidate in candidates:
        if (candidate / "vid").is_dir() or (candidate / "verse_landmarks").is_dir():
            return candidate
    return None


@dataclass(frozen=True)
class RealSpine:
    """One real keypoint set restricted to the modelled levels: which levels, where, how rotated."""

    source: str
    labels: np.ndarray  # (n,) VerSe labels, anatomical order, subset of MODEL_LEVELS
    centres: np.ndarray  # (n, 3) RAS+ mm
    rotation: np.ndarray  # (n,) axial rotation in degrees, NaN where pedicles are unknown

    @property
    def lateral_deviation(self) -> float:
        """Largest left-right distance (mm) of a body centre from the chord through the end centres."""
        if len(self.centres) < 3:
            return 0.0
        start, end = self.centres[0], self.centres[-1]
        axis = (end - start) / np.linalg.norm(end - start)
        offsets = self.centres - start
        offsets -= np.outer(offsets @ axis, axis)
        return float(np.abs(offsets[:, 0]).max())


def tangents(centres: np.ndarray) -> np.ndarray:
    """Unit cranial direction at each centre: central differences, one-sided at the ends."""
    previous = np.vstack([centres[:1], centres[:-1]])
    following = np.vstack([centres[1:], centres[-1:]])
    direction = previous - following
    return direction / np.linalg.norm(direction, axis=1, keepdims=True)


def reference_lateral(tangent: np.ndarray) -> np.ndarray:
    """Patient-right axis (+x) made perpendicular to each tangent: the zero of axial rotation."""
    right = np.broadcast_to([1.0, 0.0, 0.0], tangent.shape)
    lateral = right - tangent * (right * tangent).sum(-1, keepdims=True)
    return lateral / np.linalg.norm(lateral, axis=-1, keepdims=True)


def axial_rotation(centres: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Degrees each vertebra is turned about its own cranial axis, from its pedicles (RAS+ mm)."""
    tangent = tangents(centres)
    lateral = right - left
    lateral -= tangent * (lateral * tangent).sum(-1, keepdims=True)
    lateral /= np.linalg.norm(lateral, axis=-1, keepdims=True)
    zero = reference_lateral(tangent)
    sine = (np.cross(zero, lateral) * tangent).sum(-1)
    return np.degrees(np.arctan2(sine, (zero * lateral).sum(-1)))


def _restrict(source: str, labels, centres, rotation) -> RealSpine | None:
    """Keep the modelled levels of a set without transitional vertebrae; None if fewer than two remain."""
    labels = np.asarray(labels, dtype=np.int64)
    if np.isin(labels, (25, 28)).any():
        return None  # L6/T13 spines number their levels differently; the variants are synthesized
    keep = np.isin(labels, MODEL_LEVELS)
    if keep.sum() < 2:
        return None
    order = np.argsort(labels[keep])
    return RealSpine(source, labels[keep][order], np.asarray(centres, float)[keep][order],
                     np.asarray(rotation, float)[keep][order])


def _vid_spines(data_dir: Path) -> list[RealSpine]:
    from spinelab.io.formats import read_vid_keypoints

    spines = []
    for path in sorted((data_dir / "vid" / "KeypointGroundTruthNoSacrum").glob("*/*.json")):
        keypoints = read_vid_keypoints(path)
        body = keypoints.body.sorted()
        rotation = np.full(len(body), np.nan)
        if keypoints.left is not None and len(body) > 1:
            order = np.argsort([list(keypoints.body.labels).index(v) for v in body.labels])
            rotation = axial_rotation(body.world, keypoints.left[order], keypoints.right[order])
        spine = _restrict(f"vid:{path.stem}", body.labels, body.world, rotation)
        if spine is not None:
            spines.append(spine)
    return spines


#: How far (mm) each level's vertebral body centre lies anterior of the whole-vertebra centre of mass
#: that Payer's VerSe tables hold, measured on the four VerSe masks in the shared data (C2's body
#: centre, whose body region includes the dens, also sits 2.3 mm higher).
_BODY_ANTERIOR_OF_MASS = {2: 10.0, 3: 8.4, 4: 7.7, 5: 8.2, 6: 8.2, 7: 12.1, 8: 13.3, 9: 13.3, 10: 14.5, 11: 15.4,
                          12: 15.3, 13: 14.0, 14: 13.0, 15: 12.0, 16: 11.6, 17: 10.1, 18: 9.1, 19: 10.6, 20: 13.3,
                          21: 11.9, 22: 12.0, 23: 11.5, 24: 10.6}
_C2_BODY_ABOVE_MASS = 2.3


def _body_centres_from_mass_centres(labels: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Move whole-vertebra centres of mass to body centres along each level's anterior direction."""
    tangent = tangents(centres)
    anterior = np.array([0.0, 1.0, 0.0]) - tangent * tangent[:, 1:2]
    anterior /= np.linalg.norm(anterior, axis=1, keepdims=True)
    shift = np.array([_BODY_ANTERIOR_OF_MASS[int(v)] for v in labels])[:, None] * anterior
    shift += np.where(labels == 2, _C2_BODY_ABOVE_MASS, 0.0)[:, None] * tangent
    return centres + shift


def _verse_spines(data_dir: Path) -> list[RealSpine]:
    from spinelab.io.formats import read_landmarks_table
    from spinelab.vertebrae import ANATOMICAL_ORDER

    spines = []
    table_labels = np.array([*range(1, 26), 28])  # table columns: C1..L6 then T13
    for path in sorted((data_dir / "verse_landmarks").glob("verse20[12][90]_landmarks.csv")):
        for case, points in read_landmarks_table(path).items():
            points = points * [-1.0, -1.0, 1.0]  # the tables are L, P, S millimetres
            present = np.isfinite(points).all(axis=1)
            labels = table_labels[present]
            order = np.argsort([ANATOMICAL_ORDER.index(v) for v in labels])
            spine = _restrict(f"verse:{case}", labels[order], points[present][order], np.full(present.sum(), np.nan))
            if spine is not None and len(spine.labels) > 1:
                centres = _body_centres_from_mass_centres(spine.labels, spine.centres)
                spines.append(RealSpine(spine.source, spine.labels, centres, spine.rotation))
    return spines


@functools.lru_cache(maxsize=4)
def load_real_spines(data_dir: str | Path) -> tuple[RealSpine, ...]:
    """All usable real sets under ``data_dir`` (VID ground truth, then VerSe tables); read once per process."""
    data_dir = Path(data_dir)
    spines = _vid_spines(data_dir) + _verse_spines(data_dir)
    if not spines:
        raise SpinelabError(f"{data_dir}: no VID keypoint sets or VerSe landmark tables found")
    return tuple(spines)


def steps_to_shape(vectors: np.ndarray) -> np.ndarray:
    """(n, 3) RAS+ step vectors (towards the tail) -> (n, 3) length, forward lean, sideways lean."""
    down = -vectors[:, 2]
    return np.stack([np.linalg.norm(vectors, axis=1), np.degrees(np.arctan2(vectors[:, 1], down)),
                     np.degrees(np.arctan2(vectors[:, 0], down))], axis=1)


def shape_to_steps(entries: np.ndarray) -> np.ndarray:
    """Inverse of ``steps_to_shape``."""
    direction = np.stack([np.tan(np.radians(entries[:, 2])), np.tan(np.radians(entries[:, 1])),
                          -np.ones(len(entries))], axis=1)
    return direction / np.linalg.norm(direction, axis=1, keepdims=True) * entries[:, :1]


def observation(spine: RealSpine) -> tuple[np.ndarray, np.ndarray]:
    """Which entries of the shape vector a real set measured, and their values (NaN elsewhere)."""
    index = np.searchsorted(MODEL_LEVELS, spine.labels)
    vector = np.full(DIM, np.nan)
    consecutive = np.flatnonzero(np.diff(index) == 1)
    steps = steps_to_shape(spine.centres[consecutive + 1] - spine.centres[consecutive])
    for step, entries in zip(index[consecutive], steps):
        vector[3 * step: 3 * step + 3] = entries
    vector[3 * N_STEPS + index] = spine.rotation
    return np.isfinite(vector), vector


@dataclass(frozen=True)
class ShapeModel:
    """Gaussian over shape vectors with a low-rank-plus-isotropic covariance (probabilistic PCA)."""

    mean: np.ndarray  # (DIM,)
    components: np.ndarray  # (DIM, k): covariance = components @ components.T + diag(noise)
    noise: np.ndarray  # (DIM,) residual variance per entry

    @property
    def covariance(self) -> np.ndarray:
        return self.components @ self.components.T + np.diag(self.noise)

    def sample(self, rng: np.random.Generator, spine: RealSpine | None = None) -> np.ndarray:
        """A full shape vector equal to ``spine``'s measured entries, drawn from the model elsewhere."""
        covariance = self.covariance
        known, vector = observation(spine) if spine is not None else (np.zeros(DIM, bool), np.zeros(DIM))
        mean, conditional = _conditional(self.mean, covariance, known, vector, _KEEP_NOISE)
        factor = np.linalg.cholesky((conditional + conditional.T) / 2 + 1e-6 * np.eye(DIM))
        # truncated at two standard deviations: the Gaussian's far tails hold postures no patient has
        return mean + factor @ np.clip(rng.standard_normal(DIM), -2.0, 2.0)

    def save(self, path: Path = MODEL_PATH) -> None:
        from spinelab.io.files import atomic_path

        with atomic_path(path) as tmp:
            np.savez_compressed(tmp, mean=self.mean, components=self.components, noise=self.noise)


def _conditional(mean, covariance, known, vector, noise):
    """Mean and covariance of the whole vector given its ``known`` entries (observed with ``noise``)."""
    if not known.any():
        return mean.copy(), covariance
    cross = covariance[:, known]
    gain = np.linalg.solve(cross[known] + noise * np.eye(known.sum()), cross.T).T
    return mean + gain @ (vector[known] - mean[known]), covariance - gain @ cross.T


def fit_shape_model(spines, iterations: int = 60) -> ShapeModel:
    """EM for a Gaussian with missing entries, then a probabilistic-PCA covariance.

    Sets that measured the same entries share one linear solve per iteration, so the fit on ~2,300
    sets takes about a second.
    """
    groups: dict[bytes, list[np.ndarray]] = {}
    patterns: dict[bytes, np.ndarray] = {}
    for spine in spines:
        known, vector = observation(spine)
        patterns[known.tobytes()] = known
        groups.setdefault(known.tobytes(), []).append(vector)
    stacked = {key: np.array(vectors) for key, vectors in groups.items()}
    count = sum(len(v) for v in stacked.values())
    observed = np.vstack(list(stacked.values()))
    mean = np.nanmean(observed, axis=0)
    covariance = np.diag(np.nanvar(observed, axis=0))
    for _ in range(iterations):
        first, second = np.zeros(DIM), np.zeros((DIM, DIM))
        for key, vectors in stacked.items():
            known = patterns[key]
            cross = covariance[:, known]
            gain = np.linalg.solve(cross[known] + _FIT_NOISE * np.eye(known.sum()), cross.T).T
            filled = mean + (np.nan_to_num(vectors[:, known]) - mean[known]) @ gain.T
            first += filled.sum(0)
            second += filled.T @ filled + len(vectors) * (covariance - gain @ cross.T)
        mean = first / count
        covariance = second / count - np.outer(mean, mean)
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    eigenvalues, eigenvectors = eigenvalues[::-1], eigenvectors[:, ::-1]
    rank = int(np.searchsorted(np.cumsum(eigenvalues) / eigenvalues.sum(), _EXPLAINED_VARIANCE)) + 1
    components = eigenvectors[:, :rank] * np.sqrt(eigenvalues[:rank])
    residual = np.clip(np.diag(covariance) - (components ** 2).sum(1), 1e-3, None)
    return ShapeModel(mean, components, residual)


@functools.lru_cache(maxsize=1)
def load_shape_model(path: Path = MODEL_PATH) -> ShapeModel:
    if not path.exists():
        raise SpinelabError(f"{path}: spine shape model missing; rebuild it with python -m spinelab.synth.shape_model")
    with np.load(path) as data:
        return ShapeModel(data["mean"], data["components"], data["noise"])


def shape_to_centres(shape: np.ndarray, spine: RealSpine | None = None) -> np.ndarray:
    """Body centres (N_LEVELS, 3) of a shape vector; with ``spine``, its measured levels sit exactly
    where they were measured and the levels between or beyond them follow the sampled steps."""
    steps = shape_to_steps(shape[: 3 * N_STEPS].reshape(N_STEPS, 3))
    centres = np.vstack([np.zeros(3), np.cumsum(steps, axis=0)])
    if spine is None:
        return centres
    index = np.searchsorted(MODEL_LEVELS, spine.labels)
    offsets = spine.centres - centres[index]
    levels = np.arange(N_LEVELS)
    return centres + np.stack([np.interp(levels, index, offsets[:, axis]) for axis in range(3)], axis=1)


def shape_rotations(shape: np.ndarray) -> np.ndarray:
    return shape[3 * N_STEPS:].copy()


def main(argv: list[str] | None = None) -> int:
    """Refit the shipped model from the real keypoint sets (default: the shared data folder)."""
    argv = sys.argv[1:] if argv is None else argv
    data_dir = Path(argv[0]) if argv else default_data_dir()
    if data_dir is None:
        raise SpinelabError("no real keypoint data found; pass the data folder or set SPINELAB_DATA")
    spines = load_real_spines(data_dir)
    model = fit_shape_model(spines)
    model.save()
    print(f"fitted on {len(spines)} real spines: {model.components.shape[1]} components; wrote {MODEL_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
