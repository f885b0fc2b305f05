"""``spinelab train-bone --out DIR``: train the bone stage on synthetic tissue maps (writes DIR/bone.pt)."""

from __future__ import annotations


def register(sub) -> None:
    parser = sub.add_parser(
        "train-bone", help="train the bone stage (a 3D bone segmenter run before every method)",
        description="Generate synthetic CTs, train the 4 mm bone network on their tissue maps with heavy "
                    "intensity randomization, choose its threshold on synthetic validation cases and write "
                    "OUT/bone.pt (or --model-out). The packaged spinelab/models/bone.pt was written this way.")
    parser.add_argument("--out", required=True, help="run folder: case cache, checkpoint and bone.pt")
    parser.add_argument("--cases", type=int, default=240, help="synthetic training cases (default: %(default)s)")
    parser.add_argument("--validation-cases", type=int, default=12,
                        help="synthetic cases the threshold is chosen on (default: %(default)s)")
    parser.add_argument("--iterations", type=int, default=1500, help="training iterations (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=4, help="patches per iteration (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of cases and training (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=2, help="processes generating cases (default: %(default)s)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    parser.add_argument("--model-out", default=None, help="where to write the model (default: OUT/bone.pt)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from spinelab.bone.train import train_bone

    path = train_bone(args.out, cases=args.cases, iterations=args.iterations, batch_size=args.batch_size,
                      seed=args.seed, validation_cases=args.validation_cases, workers=args.workers,
                      device=args.device, model_out=args.model_out)
    print(f"bone model written to {path}")
    return 0
