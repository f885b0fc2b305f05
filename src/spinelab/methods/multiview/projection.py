"""Cone-beam projection geometry of the DRR views: world (RAS+ mm) <-> detector pixels.

A view is a point source and a flat detector. Pixel coordinates are ``(u, v) = (column, row)``,
continuous, with pixel centres at integers: pixel ``(0, 0)`` is the centre of the top-left pixel.
Everything is exact pinhole geometry, so ``rays(project(x))`` passes through ``x`` to rounding
error, which is what lets the multi-view fusion map 2D detections back to world millimetres.

``circular_views`` places K sources every 360/K degrees on a circle around the patient's long
axis (Wu et al. 2023 use K = 10, source-isocentre 500 mm, source-detector 1000 mm):

* view 0 (``start_angle=0``) is an AP radiograph: the source lies anterior of the isocentre and
  the detector posterior, so the beam runs anterior -> posterior;
* angles increase counter-clockwise seen from the head (right-handed about the superior axis):
  at +90 degrees the source is on the patient's left (a left-lateral view);
* the detector row axis ``v`` points inferior, so images display head-up, and the column axis
  ``u = v x n`` (``n`` = beam direction) completes a right-handed frame: in view 0 ``u`` points
  to the patient's left, i.e. the patient's right is on the left of the image as in a radiograph
  read facing the patient.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spinelab.errors import SpinelabError

#: World superior direction (RAS+): the CT table axis, the patient's long axis in a CT scanner.
SUPERIOR = np.array([0.0, 0.0, 1.0])
ANTERIOR = np.array([0.0, 1.0, 0.0])


def _unit(vector, what: str) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float64).reshape(3)
    norm = np.linalg.norm(vector)
    if not np.isfinite(norm) or norm < 1e-12:
        raise SpinelabError(f"{what} must be a finite non-zero 3-vector, got {vector.tolist()}")
    return vector / norm


@dataclass(frozen=True, eq=False)
class ConeBeamView:
    """One DRR view: point ``source``, flat detector centred at ``detector_center`` (world mm).

    ``u`` and ``v`` are the unit world directions of increasing column and row, ``pixel_size`` the
    (square) detector pixel pitch in mm, ``shape`` the detector ``(H, W)`` and ``isocenter`` the
    rotation centre the view looks at (it sets the magnification used to convert mm at the patient
    into detector pixels). The principal point is wherever the source's perpendicular meets the
    detector; ``circular_views`` puts it at the detector centre.
    """

    source: np.ndarray
    detector_center: np.ndarray
    u: np.ndarray
    v: np.ndarray
    pixel_size: float
    shape: tuple[int, int]
    isocenter: np.ndarray

    def __post_init__(self):
        for name in ("source", "detector_center", "isocenter"):
            value = np.asarray(getattr(self, name), dtype=np.float64).reshape(3)
            if not np.isfinite(value).all():
                raise SpinelabError(f"view {name} must be finite, got {value.tolist()}")
            object.__setattr__(self, name, value)
        u, v = _unit(self.u, "detector axis u"), _unit(self.v, "detector axis v")
        if abs(u @ v) > 1e-6:
            raise SpinelabError("detector axes u and v must be orthogonal")
        object.__setattr__(self, "u", u)
        object.__setattr__(self, "v", v)
        if not (np.isfinite(self.pixel_size) and self.pixel_size > 0):
            raise SpinelabError(f"detector pixel size must be positive, got {self.pixel_size}")
        object.__setattr__(self, "pixel_size", float(self.pixel_size))
        shape = tuple(int(n) for n in self.shape)
        if len(shape) != 2 or min(shape) < 1:
            raise SpinelabError(f"detector shape must be (H, W) with positive sizes, got {self.shape}")
        object.__setattr__(self, "shape", shape)
        if self.source_to_detector <= 0:
            raise SpinelabError("the detector must lie in front of the source (along u x v)")

    @property
    def normal(self) -> np.ndarray:
        """Unit detector normal pointing away from the source: the beam direction, ``u x v``."""
        return np.cross(self.u, self.v)

    @property
    def source_to_detector(self) -> float:
        """Perpendicular distance from the source to the detector plane (mm)."""
        return float(self.normal @ (self.detector_center - self.source))

    @property
    def magnification(self) -> float:
        """Detector size of an object at the isocentre divided by its true size."""
        return self.source_to_detector / float(self.normal @ (self.isocenter - self.source))

    @property
    def pixel_mm_at_isocenter(self) -> float:
        """Size at the patient (isocentre plane) of one detector pixel: converts mm to pixels."""
        return self.pixel_size / self.magnification

    @property
    def center_pixel(self) -> np.ndarray:
        """Continuous (column, row) of the detector centre."""
        height, width = self.shape
        return np.array([(width - 1) / 2.0, (height - 1) / 2.0])

    def projection_matrix(self) -> np.ndarray:
        """3x4 ``M`` with ``M @ [x, y, z, 1] = w * [u, v, 1]``; ``w`` is the depth along the beam (mm).

        For a point X: depth ``w = n.(X - S)``, the detector hit is ``S + (D / w)(X - S)`` with
        ``D`` the source-detector distance, and ``u = (D u.(X - S) - w u.(C - S)) / (p w) + cu``,
        which is linear in X once multiplied by ``w``. Use it for batched/torch projection.
        """
        normal, distance = self.normal, self.source_to_detector
        offset = self.detector_center - self.source
        centre_u, centre_v = self.center_pixel
        row_u = distance / self.pixel_size * self.u + (centre_u - self.u @ offset / self.pixel_size) * normal
        row_v = distance / self.pixel_size * self.v + (centre_v - self.v @ offset / self.pixel_size) * normal
        rows = np.stack([row_u, row_v, normal])
        return np.hstack([rows, -(rows @ self.source)[:, None]])

    def project(self, points_world) -> np.ndarray:
        """World points (N, 3) -> continuous pixel coordinates (N, 2) as (column, row)."""
        points = np.asarray(points_world, dtype=np.float64).reshape(-1, 3)
        homogeneous = np.hstack([points, np.ones((len(points), 1))]) @ self.projection_matrix().T
        depth = homogeneous[:, 2:3]
        if (depth <= 0).any():
            raise SpinelabError("cannot project points that lie behind the X-ray source")
        return homogeneous[:, :2] / depth

    def pixel_to_world(self, pixels) -> np.ndarray:
        """World position (N, 3) on the detector of continuous pixel coordinates (N, 2) (column, row)."""
        pixels = np.asarray(pixels, dtype=np.float64).reshape(-1, 2) - self.center_pixel
        return self.detector_center + self.pixel_size * (pixels[:, :1] * self.u + pixels[:, 1:] * self.v)

    def rays(self, pixels) -> tuple[np.ndarray, np.ndarray]:
        """Rays from the source through pixels (N, 2): origins (N, 3) and unit directions (N, 3)."""
        ends = self.pixel_to_world(pixels)
        directions = ends - self.source
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        return np.broadcast_to(self.source, directions.shape).copy(), directions

    def as_dict(self) -> dict:
        """JSON-ready description (lists of floats) to store next to rendered DRRs."""
        return {"source": self.source.tolist(), "detector_center": self.detector_center.tolist(),
                "u": self.u.tolist(), "v": self.v.tolist(), "pixel_size": self.pixel_size,
                "shape": list(self.shape), "isocenter": self.isocenter.tolist()}

    @classmethod
    def from_dict(cls, values: dict) -> ConeBeamView:
        return cls(**{key: values[key] for key in
                      ("source", "detector_center", "u", "v", "pixel_size", "shape", "isocenter")})


def circular_views(center_world, axis_world=SUPERIOR, k: int = 10, source_to_isocenter: float = 500.0,
                   source_to_detector: float = 1000.0, detector_shape=(256, 256), pixel_size: float | None = None,
                   extent_mm: float | None = None, start_angle: float = 0.0) -> list[ConeBeamView]:
    """K views every 360/K degrees around ``axis_world`` (pointing superior) through ``center_world``.

    Give either ``pixel_size`` (detector mm) or ``extent_mm``: the field of view at the isocentre
    plane that the longer detector side must cover (pixel size = extent x magnification / pixels).
    ``views_for_volume`` computes the extent that shows a whole volume. Angles are in degrees; see
    the module docstring for the orientation conventions.
    """
    if int(k) < 1:
        raise SpinelabError(f"need at least one view, got k={k}")
    if not 0 < source_to_isocenter < source_to_detector:
        raise SpinelabError("the isocentre must lie between the source and the detector")
    if (pixel_size is None) == (extent_mm is None):
        raise SpinelabError("give exactly one of pixel_size and extent_mm")
    center = np.asarray(center_world, dtype=np.float64).reshape(3)
    superior = _unit(axis_world, "rotation axis")
    anterior = ANTERIOR - (ANTERIOR @ superior) * superior
    if np.linalg.norm(anterior) < 0.1:
        raise SpinelabError("rotation axis must not point anterior-posterior (expected the patient's long axis)")
    anterior /= np.linalg.norm(anterior)
    left = np.cross(superior, anterior)  # +90 degrees counter-clockwise seen from the head
    height, width = (int(n) for n in detector_shape)
    if pixel_size is None:
        if not extent_mm > 0:
            raise SpinelabError(f"extent_mm must be positive, got {extent_mm}")
        pixel_size = extent_mm * source_to_detector / source_to_isocenter / max(height, width)
    views = []
    for angle in np.deg2rad(start_angle + np.arange(int(k)) * 360.0 / int(k)):
        towards_source = np.cos(angle) * anterior + np.sin(angle) * left
        source = center + source_to_isocenter * towards_source
        beam = -towards_source
        v_axis = -superior
        views.append(ConeBeamView(source=source, detector_center=source + source_to_detector * beam,
                                  u=np.cross(v_axis, beam), v=v_axis, pixel_size=pixel_size,
                                  shape=(height, width), isocenter=center))
    return views


def views_for_volume(volume, k: int = 10, source_to_isocenter: float = 500.0, source_to_detector: float = 1000.0,
                     detector_shape=(256, 256), margin: float = 1.05, start_angle: float = 0.0,
                     content_radius_mm: float | None = None) -> list[ConeBeamView]:
    """``circular_views`` about the world superior axis through the volume centre, sized to show it.

    The pixel size is the smallest that keeps the content on the detector in every view, times
    ``margin``. The content is the volume's bounding box (its 8 corners), or with
    ``content_radius_mm`` the cylinder of that radius around the rotation axis spanning the
    volume's height (e.g. the scanner's circular reconstruction field, or the body). The choice
    matters because a short source distance magnifies whatever lies near the source: with the
    paper's 500 mm a 400 x 400 mm box corner passes 217 mm from the source and is magnified 4.6x
    instead of 2x at the isocentre.
    """
    shape = np.array(volume.shape, dtype=np.float64)
    corners = volume.to_world(np.array(np.meshgrid(*[[0.0, n - 1] for n in shape], indexing="ij")).reshape(3, -1).T)
    center = volume.to_world((shape - 1) / 2.0)
    content = corners
    if content_radius_mm is not None:
        if not content_radius_mm > 0:
            raise SpinelabError(f"content radius must be positive, got {content_radius_mm}")
        heights = (corners - center) @ SUPERIOR
        angles = np.linspace(0.0, 2 * np.pi, 180, endpoint=False)
        left = np.cross(SUPERIOR, ANTERIOR)
        ring = content_radius_mm * (np.cos(angles)[:, None] * ANTERIOR + np.sin(angles)[:, None] * left)
        content = np.concatenate([center + ring + height * SUPERIOR for height in (heights.min(), heights.max())])
    unit_views = circular_views(center, SUPERIOR, k, source_to_isocenter, source_to_detector, detector_shape,
                                pixel_size=1.0, start_angle=start_angle)
    height, width = unit_views[0].shape
    half_extent = np.zeros(2)
    for view in unit_views:
        half_extent = np.maximum(half_extent, np.abs(view.project(content) - view.center_pixel).max(axis=0))
    pixel_size = margin * max(2 * half_extent[0] / width, 2 * half_extent[1] / height)
    return circular_views(center, SUPERIOR, k, source_to_isocenter, source_to_detector, detector_shape,
                          pixel_size=pixel_size, start_angle=start_angle)
