"""``spinelab pretrain --method NAME``: a method's self-supervised pretraining (multiview: SimSiam on DRR pairs)."""

from __future__ import annotations

from spinelab.cli.train import add_common_arguments, method_options, run_on_devices
from spinelab.methods import DEFAULT_METHOD, METHODS, method_spec


def register(sub, method: str = DEFAULT_METHOD) -> None:
    parser = sub.add_parser("pretrain", help="pretrain a method's encoder (multiview: SimSiam on pairs of DRR views)",
                            description="Pretrain METHOD's encoder on a dataset; writes OUT/encoder.pt for "
                                        "'spinelab train --encoder'.")
    add_common_arguments(parser)
    if method in METHODS and METHODS[method].pretrain_arguments:
        method_spec(method).resolve("pretrain_arguments")(parser.add_argument_group(f"{method} options"))
    parser.set_defaults(func=run)


def run(args) -> int:
    from spinelab.api import pretrain

    return run_on_devices(args, lambda device: "encoder written to " + str(pretrain(
        args.data, args.out, method=args.method, seed=args.seed, device=device, **method_options(args))))
