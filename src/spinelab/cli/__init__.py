"""``spinelab`` console script: a thin layer over the Python API with the same arguments.

Each sub-command lives in its own module exposing ``register(subparsers)``; the module's parser
sets ``func`` to a callable taking the parsed namespace. ``train`` and ``pretrain`` also take the
method named by ``--method`` on the command line, whose own options they add. Every ``SpinelabError`` becomes one line on
stderr and exit status 2; no traceback reaches the user unless SPINELAB_DEBUG=1.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from spinelab.errors import SpinelabError

COMMANDS = ("demo", "predict", "show", "evaluate", "synth", "pretrain", "train", "benchmark")
METHOD_COMMANDS = ("pretrain", "train")  # their options depend on --method


def requested_method(argv: list[str]) -> str:
    """The value of ``--method`` in ``argv`` (``--method X`` or ``--method=X``), else the default method."""
    from spinelab.methods import DEFAULT_METHOD

    for index, word in enumerate(argv):
        if word == "--method" and index + 1 < len(argv):
            return argv[index + 1]
        if word.startswith("--method="):
            return word.split("=", 1)[1]
    return DEFAULT_METHOD


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    method = requested_method(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="spinelab", description="Localize and identify vertebrae in CT scans.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        module = importlib.import_module(f"spinelab.cli.{command}")
        if command in METHOD_COMMANDS:
            module.register(sub, method)
        else:
            module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    try:
        status = args.func(args)
    except SpinelabError as exc:
        print(f"spinelab: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("spinelab: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - users get one line; developers set SPINELAB_DEBUG
        if os.environ.get("SPINELAB_DEBUG"):
            raise
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        print(f"spinelab: internal error: {type(exc).__name__}: {first_line} (set SPINELAB_DEBUG=1 for details)",
              file=sys.stderr)
        return 1
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
