"""The I/O contract every method honours: a CT in any orientation in, world centroids out.

``Method.predict`` is the only entry point. It canonicalizes the volume (the one place orientation
is handled), lets the method work on the canonical copy and returns centroids in RAS+ world mm,
which are the same numbers in the input's frame because canonicalization never moves the world.
With ``suppress_contrast`` the method is handed the canonical copy without contrast agent (the bone
stage's call). Centroids outside the scanned volume, those the faces cut by more than the face
margin and, with a column test, those off the vertebral column are dropped here, for every method
(``MethodSettings``).
A method may also return a label map on any grid (its affine says where it lies); writers put it
back on the input's grid. Stage timings are collected so benchmarks can report where the time goes.
"""

from __future__ import annotations

import contextlib
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from spinelab.decoders.chain import smooth_chain
from spinelab.io.centroids import Centroids
from spinelab.io.volume import CTVolume
from spinelab.review import LOW_CONFIDENCE, review_reasons
from spinelab.settings import StoredSettings
from spinelab.vertebrae import BODY_SIZES

if TYPE_CHECKING:
    from spinelab.training.model_file import ModelFile


def within_volume(centroids: Centroids, ct: CTVolume, details: dict, face_margin: float = 0.0) -> Centroids:
    """The centroids a VerSe annotator would mark in the canonical volume ``ct``: inside the scanned
    box and, with ``face_margin`` > 0, at least that many half body sizes (of their level, along each
    canonical axis) from its faces, since a body cut there is mostly out of view and VerSe annotates
    whole vertebrae.

    The names of any dropped are noted in ``details["outside_volume"]`` and ``details["cut_by_face"]``.
    """
    inside = ct.distance_outside(centroids.world) == 0
    if not inside.all():
        details["outside_volume"] = centroids.take(~inside).names()
    kept = centroids.take(inside)
    if face_margin <= 0 or not len(kept):
        return kept
    whole = face_clearance(kept, ct) >= face_margin
    if not whole.all():
        details["cut_by_face"] = kept.take(~whole).names()
    return kept.take(whole)


def on_column(centroids: Centroids, details: dict, max_deviation_mm: float | None) -> Centroids:
    """The centroids that, in anatomical order, form one smooth column (``spinelab.decoders.chain``):
    a vertebra found in the heart or on a rib head is not a vertebra. None keeps all.

    The names of any dropped are added to ``details["off_column"]``.
    """
    if max_deviation_mm is None or len(centroids) < 3:
        return centroids
    ordered = centroids.sorted()
    scores = None if ordered.confidence is None else np.nan_to_num(ordered.confidence).clip(0.0, None)
    keep = smooth_chain(ordered.world, scores, max_deviation_mm=max_deviation_mm)
    if not keep.all():
        details.setdefault("off_column", []).extend(ordered.take(~keep).names())
    return ordered.take(keep)


def plausible(centroids: Centroids, ct: CTVolume, details: dict, face_margin: float = 0.0,
              column_deviation_mm: float | None = None) -> Centroids:
    """``within_volume``, then ``on_column``: what every method's ``predict`` returns."""
    return on_column(within_volume(centroids, ct, details, face_margin), details, column_deviation_mm)


def face_clearance(centroids: Centroids, ct: CTVolume) -> np.ndarray:
    """How far inside the canonical (R, A, S) volume ``ct`` each centroid lies, in half body sizes of its
    level (width along R, depth along A, height along S): below 1 the body is cut."""
    half = np.array([[size.width, size.depth, size.height] for size in
                     (BODY_SIZES[int(label)] for label in centroids.labels)]).reshape(-1, 3) / 2
    return (ct.face_distances(centroids.world) / half).min(axis=1)


@dataclass
class MethodSettings(StoredSettings):
    """Settings ``Method.predict`` applies around a method's own work, each chosen per packaged model on
    synthetic validation scans (benchmarks/column_test.py, benchmarks/shared_settings.py). A method's
    config dataclass inherits them."""

    column_deviation_mm: float | None = None  # ``on_column``: mm off its neighbours' segment a centroid may lie
    # the method sees the CT with every voxel above 150 HU that the bone stage (spinelab.bone) does not
    # call bone set to soft tissue: no contrast agent
    suppress_contrast: bool = False
    face_margin: float = 0.0  # ``within_volume``: half body sizes a centroid must lie inside the faces
    review_confidence: float = LOW_CONFIDENCE  # a vertebra labelled less surely needs review


@dataclass
class Prediction:
    centroids: Centroids
    timings: dict[str, float] = field(default_factory=dict)
    details: dict = field(default_factory=dict)
    label_map: CTVolume | None = None  # VerSe-numbered vertebra labels (scnet), in world position
    review: list[str] = field(default_factory=list)  # why a person should check it (``spinelab.review``)


class StageTimer:
    """Accumulates wall time per named stage: ``with timer("drr"): ...``."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, stage: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start


class Method(ABC):
    """A trained localization + identification method; ``name`` and ``model_version`` tag its model files."""

    name: str = "method"
    model_version: int = 1
    can_segment: bool = False  # has ``segment_vertebrae``
    segment: bool = False  # ``predict`` also returns a vertebra label map (``spinelab predict --segment``)
    config: StoredSettings  # the method's settings, stored in its model file
    meta: dict  # training facts from the model file (data, cases, iterations...)
    written_by: dict  # spinelab version, date and command that wrote the model file

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> Method:
        """Read a model file written by this method (``spinelab.training.model_file``) onto ``device``."""
        from spinelab.devices import check_device
        from spinelab.training.model_file import load_model_file

        check_device(device)
        model = load_model_file(path, cls.name, cls.model_version)
        method = cls.from_model_file(model, device)
        method.meta, method.written_by = model.meta, model.written_by
        return method

    @classmethod
    @abstractmethod
    def from_model_file(cls, model: ModelFile, device: str) -> Method:
        """Build the networks from a checked model file."""

    def bone_stage(self):
        """The packaged bone stage (``spinelab.bone``), loaded once, for ``suppress_contrast``."""
        if getattr(self, "_bone_stage", None) is None:
            from spinelab.bone import BoneStage

            self._bone_stage = BoneStage.load(device=getattr(self, "device", "cpu"))
        return self._bone_stage

    def use_bone_stage(self, stage) -> None:
        """Use ``stage`` wherever this method uses the bone stage: to compare a newly trained one."""
        self._bone_stage = stage

    @property
    def face_margin(self) -> float:
        """``within_volume``: half body sizes a centroid must lie inside the faces, from the settings."""
        return getattr(self.config, "face_margin", 0.0)

    @property
    def review_confidence(self) -> float:
        """A vertebra labelled less surely than this needs review, on the method's own confidence scale."""
        return getattr(self.config, "review_confidence", LOW_CONFIDENCE)

    @property
    def column_deviation_mm(self) -> float | None:
        """``on_column``: mm a centroid may lie off its neighbours' segment (None: no test), from the settings."""
        return getattr(self.config, "column_deviation_mm", None)

    def predict(self, ct: CTVolume) -> Prediction:
        timer = StageTimer()
        with timer("canonicalize"):
            canonical = ct.canonical()
        if getattr(self.config, "suppress_contrast", False):
            with timer("bone stage"):
                canonical = self.bone_stage().without_contrast(canonical)
        result = self.predict_canonical(canonical, timer)
        centroids = plausible(result.centroids, canonical, result.details, self.face_margin, self.column_deviation_mm)
        label_map = result.label_map
        if self.segment and len(centroids):
            with timer("segmentation"):
                label_map = self.segment_vertebrae(canonical, centroids)
        prediction = Prediction(centroids.sorted(), timer.seconds, result.details, label_map)
        own = self.review(prediction)
        if result.details.get("off_column") and len(centroids):  # something vertebra-like beside the spine
            own.append(f"off the column, dropped: {', '.join(result.details['off_column'])}")
        prediction.review = review_reasons(ct, prediction.centroids, own, self.review_confidence)
        return prediction

    def review(self, prediction: Prediction) -> list[str]:
        """Reasons of the method's own why a person should check the final result (none by default)."""
        return []

    def segment_vertebrae(self, ct: CTVolume, centroids: Centroids) -> CTVolume:
        """The VerSe label map, on the canonical ``ct``'s grid, of the vertebrae at ``centroids`` (methods
        with ``can_segment``)."""
        raise NotImplementedError

    @abstractmethod
    def predict_canonical(self, ct: CTVolume, timer: StageTimer) -> Prediction:
        """Find vertebrae in an R-A-S ordered volume; return world centroids (timings are filled in by ``predict``)."""
