"""``spinelab train --method NAME``: train a registered method on a VerSe/CSI2014-layout dataset into one model file.

The options after the common ones belong to the method (``spinelab train --method NAME --help``
lists them); the CLI reads ``--method`` first and asks the registry for them.
"""

from __future__ import annotations

from spinelab.methods import DEFAULT_METHOD, METHODS, method_spec

COMMON = ("command", "func", "method", "data", "out", "seed", "device", "devices", "model_out")


def add_common_arguments(parser) -> None:
    """Arguments every method's ``train`` and ``pretrain`` take."""
    parser.add_argument("--method", default=DEFAULT_METHOD, choices=sorted(METHODS),
                        help="method to train (default: %(default)s); its own options follow")
    parser.add_argument("--data", required=True, help="dataset folder in VerSe or CSI2014 layout")
    parser.add_argument("--out", required=True, help="run folder: caches, checkpoints, model (resumable)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--devices", type=int, default=1,
                        help="train data-parallel in this many processes (torchrun; one GPU each with --device cuda, "
                             "gloo on CPUs); default: %(default)s")


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


def run_on_devices(args, step) -> int:
    """``step(device) -> message``, in this process or, with ``--devices N``, in N torchrun processes
    (this one then waits for them); only rank 0 prints."""
    import os
    import sys

    from spinelab.training.distributed import is_main, join_group, launch

    if args.devices > 1 and "LOCAL_RANK" not in os.environ:
        return launch(sys.argv[1:], args.devices)
    message = step(join_group(args.device))
    if is_main():
        print(message)
    return 0


def run(args) -> int:
    from spinelab.api import train

    return run_on_devices(args, lambda device: "model written to " + str(train(
        args.data, args.out, method=args.method, seed=args.seed, device=device, model_out=args.model_out,
        **method_options(args))))
