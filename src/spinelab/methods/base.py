"""The I/O contract every method honours: a CT in any orientation in, world centroids out.

``Method.predict`` is the only entry point. It canonicalizes the volume (the one place orientation
is handled), lets the method work on the canonical copy and returns centroids in RAS+ world mm,
which are the same numbers in the input's frame because canonicalization never moves the world.
Stage timings are collected so benchmarks can report where the time goes.
"""

from __future__ import annotations

import contextlib
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from spinelab.io.centroids import Centroids
from spinelab.io.volume import CTVolume


@dataclass
class Prediction:
    centroids: Centroids
    timings: dict[str, float] = field(default_factory=dict)
    details: dict = field(default_factory=dict)


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
    name: str = "method"

    @classmethod
    @abstractmethod
    def load(cls, model: str | None = None, device: str = "cpu") -> "Method":
        """Load trained weights (``None``: the model shipped in the package)."""

    def predict(self, ct: CTVolume) -> Prediction:
        timer = StageTimer()
        with timer("canonicalize"):
            canonical = ct.canonical()
        centroids, details = self.predict_canonical(canonical, timer)
        return Prediction(centroids.sorted(), timer.seconds, details)

    @abstractmethod
    def predict_canonical(self, ct: CTVolume, timer: StageTimer) -> tuple[Centroids, dict]:
        """Find vertebrae in a RAS-ordered volume; return world centroids and method-specific details."""
