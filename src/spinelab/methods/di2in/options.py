"""The di2in options of ``spinelab train`` (argparse only: no torch import)."""

from __future__ import annotations


def add_train_arguments(parser) -> None:
    parser.add_argument("--iterations", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=4, help="crops per batch")
    parser.add_argument("--lr", type=float, default=1e-3, help="AdamW's initial rate (cosine decay)")
    parser.add_argument("--dictionary-spines", type=int, default=2000,
                        help="spines in the sparsity step's shape dictionary (real keypoint sets completed to C1-S)")
