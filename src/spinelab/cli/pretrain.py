"""``spinelab pretrain``: SimSiam multi-view pretraining of the ResNet encoder on DRRs."""

from __future__ import annotations

from pathlib import Path

from spinelab.cli.train import add_data_arguments


def register(sub) -> None:
    parser = sub.add_parser("pretrain", help="SimSiam pretraining of the encoder on pairs of DRR views")
    add_data_arguments(parser)
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=0.05, help="base learning rate for a batch of 256 (SGD)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from spinelab.methods.multiview.config import MultiViewConfig
    from spinelab.methods.multiview.train import pretrain

    path = pretrain(data=args.data, out=Path(args.out), config=MultiViewConfig(depth=args.depth, width=args.width),
                    views_per_case=args.views_per_case, iterations=args.iterations, batch_size=args.batch_size,
                    lr=args.lr, seed=args.seed, device=args.device)
    print(f"encoder written to {path}")
    return 0
