"""A per-case cache of whatever a method derives from its training CTs (DRRs, resampled patches...).

Loading and preparing a full-resolution CT costs far more than a training step, so each case is
prepared once into ``cache_dir/<case>.npz``. A per-case seed keeps the cache identical however
often an interrupted build is resumed; a half-written file never counts. In distributed training only
rank 0 prepares cases; the other ranks wait for it and then read the same cache.
"""

from __future__ import annotations

import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from spinelab.errors import SpinelabError
from spinelab.io.centroids import Centroids
from spinelab.io.datasets import find_cases
from spinelab.io.volume import CTVolume
from spinelab.training.distributed import barrier, is_main

#: prepare(ct, centroids, mask or None, rng) -> arrays to store for one case.
PrepareCase = Callable[[CTVolume, Centroids, CTVolume | None, np.random.Generator], dict[str, np.ndarray]]


def build_cache(dataset: str | Path, cache_dir: str | Path, prepare: PrepareCase, seed: int = 0,
                progress: bool = True, desc: str = "prepare cases") -> list[Path]:
    """Prepare every case of a VerSe/CSI2014-layout dataset into ``cache_dir``, skipping cached ones."""
    cases = find_cases(dataset)
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    if not is_main():
        barrier()
        return [cache_dir / f"{case.case_id}.npz" for case in cases]
    paths = []
    for case in tqdm(cases, desc=desc, unit="case", disable=not progress, file=sys.stderr):
        path = cache_dir / f"{case.case_id}.npz"
        if not path.exists():
            ct, centroids, mask = case.load()
            rng = np.random.default_rng([seed, zlib.crc32(case.case_id.encode())])
            tmp = path.with_suffix(".part.npz")
            np.savez(tmp, **prepare(ct, centroids, mask, rng))
            tmp.replace(path)
        paths.append(path)
    barrier()
    return paths


def load_cache(cache_dir: str | Path) -> list[dict[str, np.ndarray]]:
    paths = [p for p in sorted(Path(cache_dir).glob("*.npz")) if not p.name.endswith(".part.npz")]
    if not paths:
        raise SpinelabError(f"{cache_dir}: no prepared cases found (run the cache build first)")
    return [dict(np.load(path)) for path in paths]


def prepared_cases(dataset: str | Path, cache_dir: str | Path, prepare: PrepareCase, seed: int = 0,
                   progress: bool = True, desc: str = "prepare cases") -> list[dict[str, np.ndarray]]:
    """``build_cache``, then ``load_cache``: what a method's training run starts from."""
    build_cache(dataset, cache_dir, prepare, seed, progress, desc)
    return load_cache(cache_dir)
