"""Training the bone stage on the synthetic generator's tissue maps (``spinelab train-bone``).

Each training case is a synthetic CT at about 2 mm (contrast-enhanced in most cases, every contrast
phase, pathology and field of view), block-averaged to about 4 mm like a real CT at inference, with
the share of bone in each coarse voxel from the generator's tissue map. Patches are randomized in
the SynthSeg spirit so that the network learns bone from its shape and texture rather than from the
generator's HU: bone is made denser or osteoporotic, bright tubes and blobs of up to 3071 HU are
painted into the soft tissue (vessels, bowel contrast, calcifications the generator does not have),
half of them against a bone surface, and a bias field, global HU scaling, blur and noise follow.
The threshold on the probability is then chosen on separate synthetic validation cases, never on a
real CT.
"""

from __future__ import annotations

import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from tqdm import tqdm

from spinelab.bone.stage import DRR_CUT_HU, BoneConfig, BoneStage, build_network, mask_share, network_input
from spinelab.errors import SpinelabError
from spinelab.inference import pad_to, random_patch_slices
from spinelab.training import Trainer
from spinelab.training.model_file import save_model_file

#: Patch edge at about 4 mm (about 26 cm: the whole trunk cross-section in one patch).
PATCH = 64
#: Share of contrast-enhanced training cases: contrast is what the stage is for.
CONTRAST_SHARE = 0.7
#: Distractors painted into the soft tissue: (radius, HU, segment length) ranges in coarse voxels. Dense
#: agent in veins and bowel; contrast-filled aorta, heart chambers and big veins as bright as marrow.
DISTRACTORS = (((0.6, 3.5), (700.0, 4000.0), (0.0, 25.0)), ((1.5, 5.0), (150.0, 700.0), (5.0, 40.0)),
               ((3.0, 8.0), (150.0, 600.0), (0.0, 6.0)))
DISTRACTOR_WEIGHTS = (0.4, 0.4, 0.2)
#: Share of distractors that start against a bone surface: real vessels run along bones (the aorta
#: beside the vertebral bodies, subclavian veins over the first rib, iliac vessels along the pelvis),
#: and agent touching bone is what a coarse bone mask keeps.
TOUCHING_BONE_SHARE = 0.5
#: Candidate probability thresholds tried on the validation cases.
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)


def training_case(seed: int, contrast: float = CONTRAST_SHARE) -> dict[str, np.ndarray]:
    """One synthetic case as the network sees it: coarse HU, coarse bone share, and the 2 mm originals."""
    from spinelab.synth import SynthOptions, generate_case
    from spinelab.synth.kernels import BONE

    rng = np.random.default_rng(seed)
    spacing = tuple(float(s) for s in rng.uniform(1.6, 2.4, size=3))
    case = generate_case(seed, SynthOptions(spacing=spacing, contrast=contrast, orientation=("R", "A", "S")))
    ct, tissue = case.ct, case.tissue
    coarse = ct.block_averaged(BoneConfig.spacing_mm)
    share = mask_share(tissue, tissue.array == BONE, BoneConfig.spacing_mm)
    return {"hu": coarse.array.astype(np.float16), "bone": share.array.astype(np.float16),
            "fine_hu": ct.array, "fine_bone": tissue.array == BONE,
            "fine_affine": ct.affine}


def _cache_case(job) -> None:
    path, seed = job
    torch.set_num_threads(1)
    case = training_case(seed)
    tmp = path.with_suffix(".part.npz")
    np.savez_compressed(tmp, hu=case["hu"], bone=case["bone"])
    tmp.replace(path)


def build_bone_cache(folder: Path, n: int, seed: int, workers: int, progress: bool = True) -> list[Path]:
    """``n`` training cases as ``folder/case_NNNN.npz`` (resumable: finished cases are kept)."""
    from spinelab.synth.generator import case_seed

    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"case_{index:04d}.npz" for index in range(n)]
    jobs = [(path, case_seed(seed, index)) for index, path in enumerate(paths) if not path.exists()]
    bar = tqdm(total=n, initial=n - len(jobs), desc="bone cases", unit="case", disable=not progress, file=sys.stderr)
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            for _ in pool.map(_cache_case, jobs):
                bar.update()
    else:
        for job in jobs:
            _cache_case(job)
            bar.update()
    bar.close()
    return paths


def _tube(shape, start, end, radius) -> tuple[tuple[slice, ...], np.ndarray]:
    """The voxels of ``shape`` within ``radius`` of the segment ``start``-``end``: a box and a mask in it."""
    low = np.clip(np.floor(np.minimum(start, end) - radius), 0, np.array(shape) - 1).astype(int)
    high = np.clip(np.ceil(np.maximum(start, end) + radius) + 1, 1, np.array(shape)).astype(int)
    box = tuple(slice(a, b) for a, b in zip(low, high))
    grid = np.stack(np.meshgrid(*[np.arange(a, b, dtype=np.float32) for a, b in zip(low, high)], indexing="ij"), -1)
    axis = end - start
    t = np.clip(((grid - start) @ axis) / max(float(axis @ axis), 1e-6), 0.0, 1.0)
    return box, np.linalg.norm(grid - start - t[..., None] * axis, axis=-1) <= radius


def randomize_intensities(hu: np.ndarray, bone: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """SynthSeg-style randomization of a coarse HU patch whose bone share is ``bone``; the labels stay."""
    hu = hu.astype(np.float32).copy()
    soft = float(rng.uniform(20, 60))
    if rng.random() < 0.8:  # denser or osteoporotic bone
        hu = np.where(bone > 0, hu + (hu - soft) * (rng.uniform(0.55, 1.35) - 1.0) * bone, hu)
    body = (hu > -300) & (bone < 0.05)
    if rng.random() < 0.8 and body.any():  # vessels, heart chambers, bowel contrast, calcifications
        candidates = np.argwhere(body)
        touching = np.argwhere(body & ndimage.binary_dilation(bone >= 0.25, iterations=2))
        for _ in range(int(rng.integers(1, 8))):
            starts = touching if len(touching) and rng.random() < TOUCHING_BONE_SHARE else candidates
            point = starts[rng.integers(len(starts))].astype(np.float32)
            radius, value, reach = DISTRACTORS[int(rng.choice(len(DISTRACTORS), p=DISTRACTOR_WEIGHTS))]
            radius, value = float(rng.uniform(*radius)), min(float(rng.uniform(*value)), 3071.0)
            texture = float(rng.uniform(10, 60))
            for _ in range(int(rng.integers(1, 5))):  # a bent tube; one short segment is a blob
                step = rng.normal(size=3).astype(np.float32)
                end = point + step / np.linalg.norm(step) * rng.uniform(*reach)
                box, tube = _tube(hu.shape, point, end, radius)
                inside = tube & (bone[box] < 0.05)
                hu[box][inside] = value + rng.normal(0, texture, int(inside.sum()))
                point = end
    if rng.random() < 0.6:  # smooth multiplicative bias on attenuation
        field = ndimage.zoom(rng.normal(0, 0.06, (3, 3, 3)), np.array(hu.shape) / 3, order=1)
        hu = (hu + 1000.0) * np.exp(field[tuple(slice(0, n) for n in hu.shape)]) - 1000.0
    hu = hu * rng.uniform(0.9, 1.1) + rng.uniform(-40, 40)
    if rng.random() < 0.5:
        hu = ndimage.gaussian_filter(hu, rng.uniform(0.3, 1.0))
    hu = hu + rng.normal(0, rng.uniform(0, 40), hu.shape)
    return np.clip(hu, -1024, 3071).astype(np.float32)


class BonePatches(torch.utils.data.Dataset):
    """Random randomized patches of the cached cases; a new draw every epoch."""

    def __init__(self, paths: list[Path], config: BoneConfig, seed: int, items_per_epoch: int = 2000):
        self.cases = []
        for path in paths:
            with np.load(path) as data:
                self.cases.append((data["hu"].astype(np.float32), data["bone"].astype(np.float32)))
        self.config, self.seed, self.items, self.epoch = config, seed, items_per_epoch, 0

    def __len__(self) -> int:
        return self.items

    def __getitem__(self, index: int):
        rng = np.random.default_rng([self.seed, self.epoch, index])
        hu, bone = self.cases[int(rng.integers(len(self.cases)))]
        patch = (PATCH,) * 3
        hu, _ = pad_to(hu, patch, value=-1000.0)
        bone, _ = pad_to(bone, patch, value=0.0)
        box = random_patch_slices(hu.shape, patch, rng, foreground=bone > 0.5, foreground_fraction=0.5)
        image = network_input(randomize_intensities(hu[box], bone[box], rng), self.config)
        target = (bone[box] >= self.config.bone_fraction).astype(np.float32)
        return torch.from_numpy(image[None]), torch.from_numpy(target[None])


class BoneTrainer(Trainer):
    name = "bone"

    def __init__(self, out, paths: list[Path], config: BoneConfig, **options):
        super().__init__(out, **options)
        self.paths, self.config = paths, config

    def build_network(self):
        return build_network(self.config)

    def build_dataset(self):
        return BonePatches(self.paths, self.config, self.seed)

    def loss(self, network, batch):
        image, target = batch
        logits = network(image).float()
        probability = torch.sigmoid(logits)
        dice = 1 - (2 * (probability * target).sum() + 1) / (probability.sum() + target.sum() + 1)
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, target) + dice


def signal_shares(hu: np.ndarray, bone: np.ndarray, keep: np.ndarray, cut_hu: float = DRR_CUT_HU) -> dict[str, float]:
    """What a bone radiograph rendered from ``keep`` is made of: the attenuation above ``cut_hu`` that
    DRRs integrate, split into bone and not bone. Returns the Dice of ``keep`` against ``bone``
    (counted over voxels above the cut, the only ones a DRR sees), the share of kept signal that is
    not bone, that share without the mask, and the share of the bone signal kept."""
    signal = np.maximum(hu.astype(np.float32) - cut_hu, 0.0)
    seen = signal > 0
    kept, ref = keep & seen, bone & seen
    total_kept = float(signal[keep].sum())
    return {
        "dice": float(2 * (kept & ref).sum() / max(kept.sum() + ref.sum(), 1)),
        "non_bone_share": float(signal[keep & ~bone].sum() / total_kept) if total_kept else 0.0,
        "non_bone_share_unmasked": float(signal[~bone].sum() / max(float(signal.sum()), 1e-6)),
        "bone_signal_kept": float(signal[keep & bone].sum() / max(float(signal[bone].sum()), 1e-6)),
    }


def validate(stage: BoneStage, seeds: list[int], thresholds=THRESHOLDS, progress: bool = True) -> dict[float, dict]:
    """Mean ``signal_shares`` on synthetic validation cases (all contrast-enhanced) per threshold,
    measured on their 2 mm grids, the resolution the DRRs are rendered from."""
    from spinelab.io.volume import CTVolume

    rows = {threshold: [] for threshold in thresholds}
    for seed in tqdm(seeds, desc="bone validation", unit="case", disable=not progress, file=sys.stderr):
        case = training_case(seed, contrast=1.0)
        fine = CTVolume(case["fine_hu"], case["fine_affine"])
        probability = stage.probability_on(fine)
        for threshold in thresholds:
            rows[threshold].append(signal_shares(case["fine_hu"], case["fine_bone"], probability >= threshold))
    return {threshold: {key: float(np.mean([r[key] for r in values])) for key in values[0]}
            for threshold, values in rows.items()}


def choose_threshold(table: dict[float, dict]) -> float:
    """The threshold whose mask best matches the bone signal (highest Dice) on validation cases."""
    return max(table, key=lambda threshold: table[threshold]["dice"])


def train_bone(out: str | Path, cases: int = 240, iterations: int = 1500, batch_size: int = 4, lr: float = 2e-3,
               seed: int = 0, validation_cases: int = 12, workers: int = 2, device: str = "cpu",
               model_out: str | Path | None = None, progress: bool = True) -> Path:
    """Generate, train, choose the threshold on validation cases and write ``out/bone.pt`` (or ``model_out``)."""
    if cases < 1 or iterations < 1 or validation_cases < 1:
        raise SpinelabError("train-bone: --cases, --iterations and --validation-cases must be at least 1")
    out = Path(out)
    config = BoneConfig()
    paths = build_bone_cache(out / "bone_cache", cases, seed, workers, progress)
    network = BoneTrainer(out, paths, config, iterations=iterations, batch_size=batch_size, lr=lr, seed=seed,
                          device=device, progress=progress).fit()
    stage = BoneStage(network, config, device)
    validation_seeds = [int(s) for s in np.random.SeedSequence([seed, 1]).generate_state(validation_cases)]
    table = validate(stage, validation_seeds, progress=progress)
    config.threshold = choose_threshold(table)
    meta = {"cases": cases, "iterations": iterations, "seed": seed, "batch_size": batch_size,
            "validation_cases": validation_cases, "validation": {f"{threshold:g}": row for threshold, row in table.items()}}
    path = Path(model_out) if model_out is not None else out / "bone.pt"
    return save_model_file(path, BoneStage.name, BoneStage.model_version, {"bone": network.cpu()}, config.to_dict(), meta)
