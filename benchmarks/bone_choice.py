"""Whether a newly trained bone stage replaces the packaged one, decided on synthetic validation only.

The stage serves two methods: multiview renders its DRRs from the voxels it calls bone, and dense
(``suppress_contrast``) sees the CT with the rest of the bright voxels set to soft tissue. The
candidate replaces the packaged stage when, on the synthetic validation sets, its own bone Dice (its
training run's validation cases, at its chosen threshold) is no more than 0.01 below the packaged
stage's, and the mean VerSe id-rate of those two methods over the sets is no more than 1 point below
(about three vertebrae of 30 scans, the sets' sampling noise). No real CT is used; the benchmark
reports what the real scans then show.

Run: ``python benchmarks/bone_choice.py CANDIDATE.pt VALIDATION_DIR [VALIDATION_DIR ...]``.
"""

from __future__ import annotations

import argparse
import sys

from spinelab.bone import BoneStage
from spinelab.eval.benchmark import evaluate_heldout
from spinelab.eval.report import metrics_table
from spinelab.methods import load_method

#: The methods whose packaged settings use the bone stage.
USERS = ("multiview", "dense")
DICE_TOLERANCE = 0.01
ID_RATE_TOLERANCE = 0.01


def stage_dice(stage: BoneStage) -> float:
    return stage.meta["validation"][f"{stage.config.threshold:g}"]["dice"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("candidate", help="bone model file written by spinelab train-bone")
    parser.add_argument("validation", nargs="+", help="synthetic validation sets (VerSe layout)")
    args = parser.parse_args()
    stages = {"packaged": BoneStage.load(), "candidate": BoneStage.load(args.candidate)}
    dice = {name: stage_dice(stage) for name, stage in stages.items()}
    methods = {name: load_method(name) for name in USERS}
    results = {}
    for name, stage in stages.items():
        for user, method in methods.items():
            method.use_bone_stage(stage)  # wherever the method uses the bone stage
            for folder in args.validation:
                results[name, user, folder] = evaluate_heldout(method, folder)[0]
    id_rate = {name: sum(results[name, m, f].overall.verse_id_rate or 0.0 for m in USERS for f in args.validation)
               / (len(USERS) * len(args.validation)) for name in stages}
    adopt = (dice["candidate"] >= dice["packaged"] - DICE_TOLERANCE
             and id_rate["candidate"] >= id_rate["packaged"] - ID_RATE_TOLERANCE)
    lines = [f"bone Dice on synthetic validation: packaged {dice['packaged']:.3f}, candidate {dice['candidate']:.3f}",
             f"mean VerSe id-rate of {', '.join(USERS)}: packaged {id_rate['packaged']:.3f}, "
             f"candidate {id_rate['candidate']:.3f}", ""]
    for method in USERS:
        for folder in args.validation:
            lines += [f"{method} on `{folder}`:", "", metrics_table(
                {name: results[name, method, folder] for name in stages}, first="bone stage"), ""]
    lines.append(f"**{'adopt' if adopt else 'keep the packaged stage'}**")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
