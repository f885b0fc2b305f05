"""``spinelab synth --n N --out DIR [--seed S]``: synthetic spine CTs in the VerSe layout (see docs/SYNTH.md)."""

from __future__ import annotations

from spinelab.errors import SpinelabError


def _pathology(text: str) -> tuple[str, bool | float]:
    """'metal' -> forced on, 'metal=0' -> off, 'metal=0.3' -> probability."""
    name, _, value = text.partition("=")
    if not value:
        return name, True
    try:
        probability = float(value)
    except ValueError:
        raise SpinelabError(f"--pathology {text!r}: expected NAME or NAME=PROBABILITY") from None
    if probability in (0.0, 1.0):
        return name, bool(probability)
    return name, probability


def register(sub) -> None:
    from spinelab.synth.variants import CONTRAST_PHASE_WEIGHTS, FOV_KINDS, HARDWARE, PATHOLOGIES

    parser = sub.add_parser(
        "synth", help="generate synthetic spine CTs with vertebra labels and centroids",
        description="Generate synthetic CTs whose spines come from real patients' keypoints, with their VerSe "
                    "label maps and body centroids, written as a VerSe dataset (rawdata/, derivatives/). "
                    "The same seed gives byte-identical files. Writes OUT/rawdata/sub-*/<case>_ct.nii.gz and "
                    "OUT/derivatives/sub-*/<case>_seg-vert_msk.nii.gz and <case>_seg-subreg_ctd.json.")
    parser.add_argument("--n", type=int, required=True, help="number of cases")
    parser.add_argument("--out", required=True, help="dataset folder to write")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (default: %(default)s)")
    parser.add_argument("--fov", default="random", choices=["random", *FOV_KINDS], help="field of view")
    parser.add_argument("--resolution", default="full", choices=["full", "test"],
                        help="full: 0.3-1 mm in-plane; test: 2-4 mm voxels, well under a second per case")
    parser.add_argument("--pathology", action="append", default=[], metavar="NAME[=P]",
                        help=f"force a pathology or hardware on (NAME), off (NAME=0) or set its probability; "
                             f"names: {', '.join(PATHOLOGIES + HARDWARE)} (repeatable)")
    parser.add_argument("--contrast", type=float, default=None, help="probability of contrast (default 0.4)")
    parser.add_argument("--contrast-phase", default="random", choices=["random", *CONTRAST_PHASE_WEIGHTS],
                        help="phase of contrast-enhanced cases (venous_bolus: undiluted agent in the arm veins "
                             "and superior vena cava; excretory: in the urinary tract)")
    parser.add_argument("--spacing", type=float, nargs=3, default=None, metavar=("RL", "AP", "SI"),
                        help="fixed voxel size in mm along the world axes")
    parser.add_argument("--orientation", default=None, help="fixed stored axis codes, e.g. LPS")
    parser.add_argument("--max-voxels", type=int, default=None, help="voxel budget per case")
    parser.add_argument("--data", default=None, help="folder of real keypoint sets (default: ../shared/data)")
    parser.add_argument("--workers", type=int, default=1, help="parallel processes (default: %(default)s)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from spinelab.synth import SynthOptions, generate_dataset

    options = SynthOptions(
        fov=args.fov, resolution=args.resolution, pathology=dict(_pathology(p) for p in args.pathology),
        spacing=tuple(args.spacing) if args.spacing else None,
        orientation=tuple(args.orientation.upper()) if args.orientation else None,
        max_voxels=args.max_voxels, data_dir=args.data, contrast_phase=args.contrast_phase)
    if args.contrast is not None:
        options.contrast = args.contrast
    if args.workers < 1:
        raise SpinelabError(f"--workers must be at least 1, got {args.workers}")
    cases = generate_dataset(args.out, args.n, seed=args.seed, options=options, workers=args.workers)
    print(f"wrote {len(cases)} synthetic case(s) to {args.out} ({cases[0]} .. {cases[-1]})")
    return 0
