"""Labelled vertebra centroids that always carry their frame: RAS+ world millimetres.

Voxel coordinates exist only at the edges (reading and writing formats that store them) and are
converted with an explicit affine, so a centroid can never silently change frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spinelab import vertebrae
from spinelab.errors import SpinelabError

WORLD_FRAME = "RAS+ mm"


@dataclass
class Centroids:
    """N vertebrae: VerSe ``labels`` (N,), ``world`` positions (N, 3) in RAS+ mm, optional ``confidence`` (N,)."""

    labels: np.ndarray
    world: np.ndarray
    confidence: np.ndarray | None = None
    frame: str = WORLD_FRAME

    def __post_init__(self):
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        self.world = np.asarray(self.world, dtype=np.float64).reshape(-1, 3)
        if self.confidence is not None:
            self.confidence = np.asarray(self.confidence, dtype=np.float64).reshape(-1)
        if len(self.labels) != len(self.world) or (self.confidence is not None and len(self.confidence) != len(self.labels)):
            raise SpinelabError("centroids: labels, coordinates and confidences differ in length")
        if self.frame != WORLD_FRAME:
            raise SpinelabError(f"centroids must be in {WORLD_FRAME}, got {self.frame!r}")
        unknown = sorted(set(self.labels.tolist()) - set(vertebrae.NAMES))
        if unknown:
            raise SpinelabError(f"centroids: unknown vertebra label(s) {unknown} (VerSe labels are 1-28)")
        if not np.isfinite(self.world).all():
            bad = self.labels[~np.isfinite(self.world).all(axis=1)]
            raise SpinelabError(f"centroids: NaN or infinite coordinates for label(s) {bad.tolist()}")
        if len(set(self.labels.tolist())) != len(self.labels):
            raise SpinelabError("centroids: a vertebra label appears more than once")

    @classmethod
    def empty(cls) -> Centroids:
        return cls(np.zeros(0, np.int64), np.zeros((0, 3)))

    @classmethod
    def from_voxel(cls, labels, ijk, affine, confidence=None) -> Centroids:
        """Centroids from voxel indices on a grid with the given voxel -> RAS+ affine."""
        ijk = np.asarray(ijk, dtype=np.float64).reshape(-1, 3)
        affine = np.asarray(affine, dtype=np.float64)
        return cls(labels, ijk @ affine[:3, :3].T + affine[:3, 3], confidence)

    @classmethod
    def from_dict(cls, positions: dict[int, object]) -> Centroids:
        labels = sorted(positions, key=vertebrae.rank)
        return cls(labels, [positions[label] for label in labels])

    def to_voxel(self, affine) -> np.ndarray:
        affine = np.asarray(affine, dtype=np.float64)
        return (self.world - affine[:3, 3]) @ np.linalg.inv(affine[:3, :3]).T

    def __len__(self) -> int:
        return len(self.labels)

    def as_dict(self) -> dict[int, np.ndarray]:
        return {int(label): xyz for label, xyz in zip(self.labels, self.world)}

    def names(self) -> list[str]:
        return [vertebrae.name(label) for label in self.labels]

    def sorted(self) -> Centroids:
        """Skull to tail (anatomical order, T13 before L1)."""
        order = np.argsort([vertebrae.rank(label) for label in self.labels], kind="stable")
        return self.take(order)

    def take(self, index) -> Centroids:
        index = np.asarray(index)
        conf = None if self.confidence is None else self.confidence[index]
        return Centroids(self.labels[index], self.world[index], conf)

    def select(self, labels) -> Centroids:
        wanted = set(int(v) for v in labels)
        return self.take(np.array([i for i, label in enumerate(self.labels) if int(label) in wanted], dtype=np.intp))

    def transformed(self, matrix: np.ndarray) -> Centroids:
        """Apply a 4x4 world -> world transform (e.g. a rigid motion in tests)."""
        matrix = np.asarray(matrix, dtype=np.float64)
        return Centroids(self.labels, self.world @ matrix[:3, :3].T + matrix[:3, 3], self.confidence)
