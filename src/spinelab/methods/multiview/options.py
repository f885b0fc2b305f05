"""The multiview options of ``spinelab train`` and ``spinelab pretrain`` (argparse only: no torch import)."""

from __future__ import annotations


def _add_common_arguments(parser) -> None:
    parser.add_argument("--views-per-case", type=int, default=10, help="DRRs rendered per training CT")
    parser.add_argument("--depth", type=int, default=18, choices=(18, 34, 50), help="ResNet depth")
    parser.add_argument("--width", type=float, default=0.5, help="ResNet width factor")
    parser.add_argument("--no-bone-stage", dest="bone_stage", action="store_false",
                        help="render the DRRs from every voxel above the HU cut, not only those the bone stage "
                             "calls bone (the model file records which)")


def add_train_arguments(parser) -> None:
    _add_common_arguments(parser)
    parser.add_argument("--encoder", help="SimSiam-pretrained encoder from 'spinelab pretrain' (default: none)")
    parser.add_argument("--iterations", type=int, default=1500, help="iterations per network")
    parser.add_argument("--identifier-iterations", type=int, help="iterations of the identifier (default: --iterations)")
    parser.add_argument("--identifier-scale", type=int, default=2,
                        help="the identifier sees DRRs average-pooled by this factor (1 = full resolution)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--sequence-loss-weight", type=float, default=1.0, help="gamma; 0 trains with CE only")


def add_pretrain_arguments(parser) -> None:
    _add_common_arguments(parser)
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=0.05, help="base learning rate for a batch of 256 (SGD)")
