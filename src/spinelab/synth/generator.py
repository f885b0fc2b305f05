"""Public API: one synthetic case from a seed, or a whole dataset in the VerSe layout."""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from spinelab.errors import SpinelabError
from spinelab.io.centroids import Centroids
from spinelab.io.volume import CTVolume
from spinelab.synth import anatomy, geometry, scanner, shape_model, variants
from spinelab.synth.canvas import Canvas
from spinelab.synth.geometry import SACRUM, Spine, Vertebra
from spinelab.synth.variants import SynthOptions

#: A vertebra is visible when its body centre lies in the field of view and at least this share of
#: its body does.
VISIBLE_FRACTION = 0.5
#: Seed suffix of the random stream hardware is drawn from (apart from the main one: see ``variants.HARDWARE``).
HARDWARE_STREAM = 7


@dataclass
class SynthCase:
    """A synthetic CT (int16 HU), its VerSe label map on the same grid, the visible vertebrae's body
    centroids (RAS+ mm), a record of every choice made (``info``) and the tissue class of every voxel
    (``tissue``, uint8, names in ``spinelab.synth.kernels.TISSUE_NAMES``)."""

    ct: CTVolume
    labels: CTVolume
    centroids: Centroids
    info: dict
    tissue: CTVolume


def _unit_body_samples() -> np.ndarray:
    """Fixed points filling a unit cylinder (radius 1, height 2), to measure how much of a body is in view."""
    rng = np.random.default_rng(0)
    points = rng.uniform(-1, 1, size=(4000, 3))
    return points[(points[:, :2] ** 2).sum(1) <= 1][:1000]


_BODY_SAMPLES = _unit_body_samples()


def _body_fraction_inside(vertebra: Vertebra, low: np.ndarray, high: np.ndarray) -> float:
    local = _BODY_SAMPLES * [vertebra.width / 2, vertebra.depth / 2, vertebra.height / 2]
    world = vertebra.to_world(local)
    return float(np.all((world >= low) & (world <= high), axis=1).mean())


def visibility(spine: Spine, low: np.ndarray, high: np.ndarray) -> tuple[list[int], list[int]]:
    """(visible labels, labels cut by the field of view) in anatomical order."""
    visible, cut = [], []
    for vertebra in spine.vertebrae:
        fraction = _body_fraction_inside(vertebra, low, high)
        centre_inside = bool(np.all((vertebra.centre >= low) & (vertebra.centre <= high)))
        if centre_inside and fraction >= VISIBLE_FRACTION:
            visible.append(vertebra.label)
        if 0.0 < fraction < 1.0:
            cut.append(vertebra.label)
    return visible, cut


def _field_of_view(rng, plan, spine: Spine, patient: anatomy.Patient, resolution: str, must_show):
    """World box (low, high) of the scan and the in-plane point to shrink towards (the spine)."""
    bottom, top = variants.z_range(rng, plan.fov, spine, must_show)
    inside = [v for v in spine.vertebrae if bottom <= v.centre[2] <= top] or [
        min(spine.vertebrae, key=lambda v: abs(v.centre[2] - (top + bottom) / 2))]
    columns = np.array([v.to_world([0.0, -15.0, 0.0])[:2] for v in inside])
    spine_xy = (columns.min(axis=0) + columns.max(axis=0)) / 2
    spine_span = (columns.max(axis=0) - columns.min(axis=0)).max() + 90.0  # bodies and arches all in view
    levels, _ = anatomy.trunk_levels(spine, patient)
    rows = levels[(levels[:, 0] >= bottom - 40) & (levels[:, 0] <= top + 40)]
    rows = rows if len(rows) else levels
    half_width = rows[:, 3].max() + patient.fat + (55.0 if patient.arms != "raised" else 0.0)
    body_low = np.array([rows[:, 1].min() - half_width, (rows[:, 2] - rows[:, 4]).min() - patient.fat])
    body_high = np.array([rows[:, 1].max() + half_width, (rows[:, 2] + rows[:, 4]).max() + patient.fat])
    if plan.targeted:
        side = max(rng.uniform(120, 260) if resolution == "full" else rng.uniform(110, 180), spine_span)
        centre = spine_xy
    else:
        side = (body_high - body_low).max() + rng.uniform(10, 50)
        centre = (body_low + body_high) / 2
    low = np.array([*(centre - side / 2), bottom])
    high = np.array([*(centre + side / 2), top])
    return low, high, spine_xy


def _metal_levels(rng, spine: Spine, visible: list[int]) -> list[int]:
    """Two to four consecutive visible levels, preferring the thoracolumbar and lumbar spine."""
    order = [v.label for v in spine.vertebrae if v.label in visible and v.label not in (1, 2, SACRUM)]
    if not order:
        return []
    preferred = [i for i, label in enumerate(order) if label >= 17 or label == 28] or list(range(len(order)))
    count = min(int(rng.integers(2, 5)), len(order))
    start = int(rng.choice(preferred))
    start = min(start, len(order) - count)
    return order[start: start + count]


def _round(value):
    if isinstance(value, dict):
        return {str(k): _round(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_round(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return round(float(value), 3)
    if isinstance(value, np.integer):
        return int(value)
    return value


def generate_case(seed: int, options: SynthOptions | None = None) -> SynthCase:
    """One synthetic case; the same seed and options always give the same arrays."""
    options = options or SynthOptions()
    options.validate()
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    plan = variants.sample_plan(rng, options)
    data_dir = Path(options.data_dir) if options.data_dir is not None else shape_model.default_data_dir()
    if options.data_dir is not None and not data_dir.is_dir():
        raise SpinelabError(f"{data_dir}: real keypoint data folder not found")
    skeleton = dict(plan.variants)
    if skeleton["fracture"]:
        skeleton["fracture_levels"] = variants.fracture_region(plan.fov)
    spine = geometry.sample_spine(rng, data_dir, skeleton)
    patient = anatomy.sample_patient(rng, plan.contrast)
    fractured = spine.variants.get("fracture", {})
    must_show = spine[int(next(iter(fractured)))].centre[2] if fractured else None
    low, high, spine_xy = _field_of_view(rng, plan, spine, patient, options.resolution, must_show)
    grid = variants.voxel_grid(rng, options, plan, low, high, spine_xy)
    visible, cut = visibility(spine, grid.low, grid.high)
    metal_levels = _metal_levels(rng, spine, visible) if plan.variants["metal"] else []
    hardware_rng = np.random.default_rng([seed, HARDWARE_STREAM])
    hardware = {name: True for name in variants.sample_hardware(hardware_rng, options)}
    if "cement" in hardware:
        hardware["cement"] = anatomy.cement_levels(hardware_rng, visible, fractured)
    canvas = Canvas(grid.build_origin, grid.build_spacing, grid.build_shape)
    details = anatomy.build(canvas, rng, spine, patient, plan.variants, metal_levels, plan.table,
                            {**hardware, "rng": hardware_rng})
    image = scanner.render(canvas, grid, patient, plan, rng, seed)
    labels = scanner.label_map(canvas, grid, set(visible))
    tissue = scanner.tissue_map(canvas, grid, plan)
    affine = np.diag([*grid.spacing, 1.0])
    affine[:3, 3] = grid.origin
    ct = CTVolume(image, affine).reoriented(plan.axcodes)
    label_volume = CTVolume(labels, affine).reoriented(plan.axcodes)
    centroids = Centroids.from_dict({v.label: v.centre for v in spine.vertebrae if v.label in visible})
    info = {
        "seed": int(seed), "resolution": options.resolution, "fov": plan.fov, "targeted_fov": plan.targeted,
        "source": spine.source, "real_levels": list(spine.real_labels),
        "variants": {name: bool(value) for name, value in plan.variants.items()},
        "fracture": fractured, "metal": details.get("metal", []),
        "hardware": {name: details[name] for name in variants.HARDWARE if name in details},
        "visible": visible, "cut_by_fov": cut,
        "spacing_mm": grid.spacing.tolist(), "shape": list(grid.shape), "axcodes": "".join(plan.axcodes),
        "slice_axis": "RAS"[grid.slice_axis], "slice_subsamples": grid.subsamples,
        "contrast": plan.contrast, "noise_hu": plan.noise_hu, "blur_mm": plan.blur_mm,
        "calibration": {"slope": plan.calibration[0], "offset_hu": plan.calibration[1]},
        "padding_hu": plan.padding, "table": plan.table,
        "patient": {"scale": spine.scale, "width": patient.width, "depth": patient.depth, "fat_mm": patient.fat,
                    "arms": patient.arms, "vertebral_cancellous_hu": patient.cancellous[anatomy.VERTEBRA]},
        "seconds": time.perf_counter() - started,
    }
    return SynthCase(ct, label_volume, centroids, _round(info), CTVolume(tissue, affine).reoriented(plan.axcodes))


def case_seed(seed: int, index: int) -> int:
    """Seed of case ``index`` of a dataset: independent of the other cases, so any order gives the same data."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1, dtype=np.uint64)[0] % 2**63)


def _write_case(job) -> tuple[str, dict]:
    from spinelab.io.datasets import write_verse_case

    out_dir, index, seed, options, threads = job
    if threads:
        import numba

        numba.set_num_threads(threads)
    case = generate_case(case_seed(seed, index), options)
    written = write_verse_case(out_dir, f"synth{index:04d}", case.ct, case.centroids, case.labels)
    info = {key: value for key, value in case.info.items() if key != "seconds"}
    return written.case_id, info


def generate_dataset(out_dir: str | Path, n: int, seed: int = 0, options: SynthOptions | None = None,
                     workers: int = 1, progress: bool = True) -> list[str]:
    """Write ``n`` cases in the VerSe subject-based layout under ``out_dir`` and return their case ids.

    Case ``i`` depends only on (``seed``, ``i``), so the files are byte-identical for the same seed
    whatever ``workers`` is. Each case's ``info`` is collected in ``out_dir/synth_info.json``.
    """
    if n < 1:
        raise SpinelabError(f"number of cases must be at least 1, got {n}")
    options = options or SynthOptions()
    options.validate()
    out_dir = Path(out_dir)
    threads = max(1, (os.cpu_count() or 1) // workers) if workers > 1 else 0
    jobs = [(out_dir, index, seed, options, threads) for index in range(n)]
    bar = tqdm(total=n, desc="synth", unit="case", disable=not progress, file=sys.stderr)
    results = []
    if workers > 1:
        # spawn, not fork: the parent's OpenMP threads (numba kernels) make forking unsafe
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            for result in pool.map(_write_case, jobs):
                results.append(result)
                bar.update()
    else:
        for job in jobs:
            results.append(_write_case(job))
            bar.update()
    bar.close()
    from spinelab.io.files import write_text

    manifest = {"seed": int(seed), "options": _round(_options_record(options)), "cases": dict(results)}
    write_text(out_dir / "synth_info.json", json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return [case_id for case_id, _ in results]


def _options_record(options: SynthOptions) -> dict:
    record = dict(vars(replace(options)))
    record["data_dir"] = None if options.data_dir is None else str(options.data_dir)
    return record
