"""The dense options of ``spinelab train`` (argparse only: no torch import)."""

from __future__ import annotations


def add_train_arguments(parser) -> None:
    parser.add_argument("--iterations", type=int, default=1500, help="iterations of the detection network")
    parser.add_argument("--identification-iterations", type=int,
                        help="iterations of the identification network (default: --iterations)")
    parser.add_argument("--batch-size", type=int, default=8, help="detection patches per batch")
    parser.add_argument("--identification-batch-size", type=int, default=16, help="identification slabs per batch")
    parser.add_argument("--lr", type=float, default=1e-3)
