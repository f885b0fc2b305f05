"""``spinelab train``: train the multi-view networks on a VerSe/CSI2014-layout dataset into one model file."""

from __future__ import annotations

from pathlib import Path


def add_data_arguments(parser) -> None:
    """Arguments shared by ``pretrain`` and ``train``: both read the same cached DRRs."""
    parser.add_argument("--data", required=True, help="dataset folder in VerSe or CSI2014 layout")
    parser.add_argument("--out", required=True, help="run folder: DRR cache, checkpoints, model (resumable)")
    parser.add_argument("--views-per-case", type=int, default=10, help="DRRs rendered per training CT")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--depth", type=int, default=18, choices=(18, 34, 50), help="ResNet depth")
    parser.add_argument("--width", type=float, default=0.5, help="ResNet width factor")


def register(sub) -> None:
    parser = sub.add_parser("train", help="train the multi-view localization and identification networks")
    add_data_arguments(parser)
    parser.add_argument("--encoder", help="SimSiam-pretrained encoder from 'spinelab pretrain' (default: none)")
    parser.add_argument("--iterations", type=int, default=1500, help="iterations per network")
    parser.add_argument("--identifier-iterations", type=int, help="iterations of the identifier (default: --iterations)")
    parser.add_argument("--identifier-scale", type=int, default=2,
                        help="the identifier sees DRRs average-pooled by this factor (1 = full resolution)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--sequence-loss-weight", type=float, default=1.0, help="gamma; 0 trains with CE only")
    parser.add_argument("--model-out", help="model file to write (default: OUT/model.pt)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from spinelab.methods.multiview.config import MultiViewConfig
    from spinelab.methods.multiview.train import train_model

    config = MultiViewConfig(depth=args.depth, width=args.width, sequence_loss_weight=args.sequence_loss_weight,
                             identifier_scale=args.identifier_scale)
    path = train_model(
        data=args.data, out=Path(args.out), config=config, encoder=args.encoder,
        views_per_case=args.views_per_case, iterations=args.iterations, batch_size=args.batch_size, lr=args.lr,
        seed=args.seed, device=args.device, model_out=args.model_out,
        identifier_iterations=args.identifier_iterations)
    print(f"model written to {path}")
    return 0
