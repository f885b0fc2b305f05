"""``spinelab train --method NAME``: train a registered method on a VerSe/CSI2014-layout dataset into one model file.

The options after the common ones belong to the method (``spinelab train --method NAME --help``
lists them); the CLI reads ``--method`` first and asks the registry for them.
"""

from __future__ import annotations

from spinelab.methods import DEFAULT_METHOD, METHODS, method_spec

COMMON = ("command", "func", "method", "data", "out", "seed", "device", "model_out")


def add_common_arguments(parser) -> None:
    """Arguments every method's ``train`` and ``pretrain`` take."""
    parser.add_argument("--method", default=DEFAULT_METHOD, choices=sorted(METHODS),
                        help="method to train (default: %(default)s); its own options follow")
    parser.add_argument("--data", required=True, help="dataset folder in VerSe or CSI2014 layout")
    parser.add_argument("--out", required=True, help="run folder: caches, checkpoints, model (resumable)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")


def method_options(args) -> dict:
    """The parsed options that belong to the method, as keyword arguments of its entry point."""
    return {key: value for key, value in vars(args).items() if key not in COMMON}


def register(sub, method: str = DEFAULT_METHOD) -> None:
    parser = sub.add_parser("train", help="train a method's networks into one model file",
                            description="Train METHOD on a dataset; writes checkpoints to OUT (an interrupted run "
                                        "resumes) and the model file to --model-out (default OUT/model.pt).")
    add_common_arguments(parser)
    parser.add_argument("--model-out", help="model file to write (default: OUT/model.pt)")
    if method in METHODS:
        method_spec(method).resolve("train_arguments")(parser.add_argument_group(f"{method} options"))
    parser.set_defaults(func=run)


def run(args) -> int:
    from spinelab.api import train

    path = train(args.data, args.out, method=args.method, seed=args.seed, device=args.device,
                 model_out=args.model_out, **method_options(args))
    print(f"model written to {path}")
    return 0
