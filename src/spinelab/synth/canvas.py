"""The build grid: an axis-aligned RAS+ voxel grid and the fields the anatomy is painted into.

``soft`` holds soft-tissue Hounsfield units and ``classes`` their tissue class; bones are collected as
one signed-distance union (``sdf``, with the ``owner`` vertebra label and ``material`` of the nearest
part) and turned into HU only at the end, so cortical shells follow the outer surface of each bone and
partial-volume edges are correct at any voxel size. ``covers`` hold the fraction of each voxel filled
by a foreign material: ``metal`` (implants, electrodes) and ``cement`` (vertebroplasty), whose HU
``cover_hu`` records.
"""

from __future__ import annotations

import numpy as np

from spinelab.synth import kernels

AIR_HU = -1000.0
FAR = 1.0e4


class Canvas:
    def __init__(self, origin, spacing, shape):
        self.origin = np.asarray(origin, dtype=np.float64)
        self.spacing = np.asarray(spacing, dtype=np.float64)
        self.shape = tuple(int(n) for n in shape)
        self.soft = np.full(self.shape, AIR_HU, dtype=np.float32)
        self.sdf = np.full(self.shape, FAR, dtype=np.float32)
        self.owner = np.zeros(self.shape, dtype=np.int16)
        self.material = np.zeros(self.shape, dtype=np.uint8)
        self.classes = np.zeros(self.shape, dtype=np.uint8)
        self.covers: dict[str, np.ndarray] = {}
        self.cover_hu: dict[str, float] = {}
        self.voxel = float(np.prod(self.spacing) ** (1 / 3))
        self.inv_voxel = 1.0 / self.voxel

    @property
    def upper(self) -> np.ndarray:
        """World position of the last voxel centre."""
        return self.origin + (np.array(self.shape) - 1) * self.spacing

    def box(self, low, high) -> np.ndarray | None:
        """Voxel index box [i0, i1) x [j0, j1) x [k0, k1) covering world ``low``..``high``; None if outside."""
        margin = 1.5 * self.spacing
        start = np.floor((np.asarray(low) - margin - self.origin) / self.spacing).astype(np.int64)
        stop = np.ceil((np.asarray(high) + margin - self.origin) / self.spacing).astype(np.int64) + 1
        start = np.clip(start, 0, self.shape)
        stop = np.clip(stop, 0, self.shape)
        if np.any(stop <= start):
            return None
        return np.stack([start, stop], axis=1).reshape(-1)

    @property
    def metal(self) -> np.ndarray | None:
        return self.covers.get("metal")

    def _target(self, mode, cover: str):
        if mode == kernels.MODE_COVER:
            return self.covers.setdefault(cover, np.zeros(self.shape, dtype=np.float32))
        return self.soft

    def tubes(self, segments, mode=kernels.MODE_BONE, value=0.0, label=0, material=0, cover="metal") -> None:
        """Tapered elliptic tubes (rows: a, b, radius_a, radius_b, flatten_dir, flatten_ratio).

        ``material`` is the bone material when joining the bone union and the tissue class when painting;
        ``cover`` names the field a ``MODE_COVER`` tube fills.
        """
        segments = np.ascontiguousarray(np.atleast_2d(segments), dtype=np.float64)
        reach = segments[:, 6:8].max(axis=1)[:, None]
        low = np.minimum(segments[:, 0:3], segments[:, 3:6]) - reach
        high = np.maximum(segments[:, 0:3], segments[:, 3:6]) + reach
        boxes = [self.box(lo, hi) for lo, hi in zip(low, high)]
        keep = [i for i, b in enumerate(boxes) if b is not None]
        if not keep:
            return
        kernels.tubes(mode, self._target(mode, cover), self.sdf, self.owner, self.material, self.classes, self.origin,
                      self.spacing, np.array([boxes[i] for i in keep]), segments[keep], float(value), int(label),
                      int(material), self.inv_voxel)

    def ellipsoid(self, centre, frame, radii, mode=kernels.MODE_BONE, value=0.0, label=0, material=0, shell=0.0,
                  planes=None, hole=None, cover="metal") -> None:
        """Ellipsoid in a local frame; hollow with ``shell`` > 0, cut by ``planes`` and a ``hole``."""
        centre, frame, radii = np.asarray(centre, float), np.asarray(frame, float), np.asarray(radii, float)
        reach = np.abs(frame) @ radii
        box = self.box(centre - reach, centre + reach)
        if box is None:
            return
        planes = np.zeros((0, 4)) if planes is None else np.asarray(planes, float).reshape(-1, 4)
        hole = np.zeros(3) if hole is None else np.asarray(hole, float)
        kernels.ellipsoid(mode, self._target(mode, cover), self.sdf, self.owner, self.material, self.classes, self.origin,
                          self.spacing, box, centre, np.ascontiguousarray(frame), radii, float(shell), planes, hole,
                          float(value), int(label), int(material), self.inv_voxel)

    def body(self, centre, frame, half, exponent, mode=kernels.MODE_BONE, value=0.0, label=0, material=0,
             waist=0.06, concavity=0.6, fracture=0.0, fracture_kind=kernels.KIND_NONE) -> None:
        """Vertebral body (or disc, sternum segment): superelliptic cylinder along the frame's third axis."""
        centre, frame, half = np.asarray(centre, float), np.asarray(frame, float), np.asarray(half, float)
        reach = np.abs(frame) @ half
        box = self.box(centre - reach, centre + reach)
        if box is None:
            return
        kernels.body(mode, self._target(mode, "metal"), self.sdf, self.owner, self.material, self.classes, self.origin,
                     self.spacing, box, centre, np.ascontiguousarray(frame), half, float(exponent), float(waist),
                     float(concavity), float(fracture), int(fracture_kind), float(value), int(label), int(material),
                     self.inv_voxel)


def polyline(points, radius, flatten=None, ratio=1.0) -> np.ndarray:
    """Tube rows for a polyline: ``radius`` scalar or per point, ``flatten`` one direction or per point."""
    points = np.asarray(points, dtype=np.float64)
    count = len(points) - 1
    radius = np.broadcast_to(np.asarray(radius, float), (len(points),))
    if flatten is None:
        directions, ratio = np.tile([0.0, 0.0, 1.0], (count, 1)), 1.0
    else:
        directions = np.broadcast_to(np.asarray(flatten, float), (len(points), 3))
        directions = (directions[:-1] + directions[1:]) / 2
    axis = points[1:] - points[:-1]
    axis = axis / np.maximum(np.linalg.norm(axis, axis=1, keepdims=True), 1e-9)
    normal = directions - axis * (directions * axis).sum(1, keepdims=True)
    norm = np.linalg.norm(normal, axis=1, keepdims=True)
    fallback = np.cross(axis, [[0.31, 0.52, 0.79]])
    normal = np.where(norm > 1e-6, normal / np.maximum(norm, 1e-9),
                      fallback / np.linalg.norm(fallback, axis=1, keepdims=True))
    rows = np.empty((count, 12))
    rows[:, 0:3], rows[:, 3:6] = points[:-1], points[1:]
    rows[:, 6], rows[:, 7] = radius[:-1], radius[1:]
    rows[:, 8:11] = normal
    rows[:, 11] = ratio
    return rows
