"""``spinelab evaluate PRED GT [--out metrics.json] [--reference CT_OR_MASK] [--label-maps]``: score centroids
(or, with ``--label-maps``, vertebra label maps: Dice and Hausdorff distance) against ground truth.

PRED and GT are two centroid files or two folders paired by case id; GT may also be a VerSe or CSI2014
dataset root (``spinelab.eval.pairing``).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from spinelab.eval.metrics import MAX_DISTANCE_MM


def _report_unmatched(kind: str, files: list[Path]) -> None:
    if files:
        shown = ", ".join(p.name for p in files[:10]) + (f", ... ({len(files) - 10} more)" if len(files) > 10 else "")
        print(f"spinelab: {len(files)} {kind} without a partner, not scored: {shown}", file=sys.stderr)


def _check_options(args) -> None:
    """Bad options and an unusable output location fail before any file is read."""
    import math

    from spinelab.errors import SpinelabError

    if not (math.isfinite(args.max_distance) and args.max_distance > 0):
        raise SpinelabError(f"--max-distance must be a positive number of mm, got {args.max_distance:g}")
    out = Path(args.out)
    if out.is_dir():
        raise SpinelabError(f"--out {out}: is a folder; give a JSON file name")
    folder = next(parent for parent in out.absolute().parents if parent.exists())
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise SpinelabError(f"--out {out}: {folder} is not a writable folder")


def run_label_maps(args) -> int:
    from spinelab.eval.segmentation import evaluate_label_maps, format_segmentation_table
    from spinelab.io.files import write_text

    metrics, unmatched_pred, unmatched_gt = evaluate_label_maps(args.pred, args.gt)
    _report_unmatched("predicted label map(s)", unmatched_pred)
    _report_unmatched("ground-truth label map(s)", unmatched_gt)
    print(f"{len(metrics.vertebrae)} case(s), {metrics.summary()['vertebrae']} ground-truth vertebrae")
    print(format_segmentation_table(metrics))
    write_text(args.out, json.dumps({"pred": str(args.pred), "gt": str(args.gt), **metrics.to_dict()}, indent=1) + "\n")
    print(f"metrics written to {args.out}")
    return 0


def run(args) -> int:
    from spinelab.eval.pairing import evaluate_paths
    from spinelab.io.files import write_text

    _check_options(args)
    if args.label_maps:
        return run_label_maps(args)
    metrics, unmatched_pred, unmatched_gt = evaluate_paths(args.pred, args.gt, args.reference, args.max_distance)
    _report_unmatched("prediction file(s)", unmatched_pred)
    _report_unmatched("ground-truth file(s)", unmatched_gt)
    overall = metrics.overall
    print(f"{len(metrics.scans)} case(s), {overall.n_gt} ground-truth and {overall.n_pred} predicted vertebrae")
    print(metrics.format_table())
    result = {"pred": str(args.pred), "gt": str(args.gt), **metrics.to_dict(),
              "unmatched": {"pred": [str(p) for p in unmatched_pred], "gt": [str(p) for p in unmatched_gt]}}
    write_text(args.out, json.dumps(result, indent=1) + "\n")
    print(f"metrics written to {args.out}")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="score predicted centroids (identification rates, errors) or label maps (Dice, Hausdorff) "
                         "against ground truth",
        description="Compare predicted vertebra centroids with ground truth: VerSe and CSI2014 identification "
                    "rates, localization error (mean/median/std/max), one-to-one detection precision/recall, per "
                    "region and overall. PRED and GT are two centroid files or two folders paired by case id (GT may be "
                    "a VerSe or CSI2014 dataset root). Prints a table per region and writes every metric, per case "
                    "and per vertebra, to OUT (JSON).")
    parser.add_argument("pred", help="predicted centroid file, or a folder of them")
    parser.add_argument("gt", help="ground-truth centroid file, a folder of them, or a VerSe/CSI2014 dataset root")
    parser.add_argument("--out", default="spinelab_metrics.json",
                        help="JSON file for all metrics, per case and per vertebra (default: %(default)s)")
    parser.add_argument("--reference", help="CT or mask whose grid voxel-coordinate files refer to "
                                            "(for folders: a folder of <case>_ct.nii.gz files)")
    parser.add_argument("--label-maps", action="store_true",
                        help="PRED and GT are vertebra label maps (VerSe numbering; files, or folders of "
                             "<case>_seg-vert_msk.nii.gz paired by case id; GT may be a dataset root): score Dice and "
                             "Hausdorff distance per vertebra instead")
    parser.add_argument("--max-distance", type=float, default=MAX_DISTANCE_MM,
                        help="hit/detection distance in mm (default: %(default)g)")
    parser.set_defaults(func=run)
