"""The scnet options of ``spinelab train`` (argparse only: no torch import)."""

from __future__ import annotations


def add_train_arguments(parser) -> None:
    parser.add_argument("--iterations", type=int, default=2000, help="SC-Net (vertebra localization) iterations")
    parser.add_argument("--spine-iterations", type=int, default=300, help="spine localization U-Net iterations")
    parser.add_argument("--segment-iterations", type=int, default=2000, help="vertebra segmentation U-Net iterations")
    parser.add_argument("--batch-size", type=int, default=2, help="inputs per batch, for each network")
    parser.add_argument("--lr", type=float, default=1e-3, help="AdamW's initial rate (cosine decay)")
