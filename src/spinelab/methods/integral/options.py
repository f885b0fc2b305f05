"""The integral options of ``spinelab train`` (argparse only: no torch import)."""

from __future__ import annotations


def add_train_arguments(parser) -> None:
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=4, help="crops per batch")
    parser.add_argument("--lr", type=float, default=0.01, help="Adam's initial rate (the paper's 0.01)")
    parser.add_argument("--no-bilstm", dest="bilstm", action="store_false",
                        help="classify presence with one fully connected layer instead of the Bi-LSTM (Table II)")
    parser.add_argument("--head-from", metavar="MODEL",
                        help="train only a new classification branch on this integral model's frozen encoder "
                             "(the Bi-LSTM ablation)")
