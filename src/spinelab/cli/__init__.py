"""``spinelab`` console script: a thin layer over the Python API with the same arguments.

Each sub-command lives in its own module exposing ``register(subparsers)``; the module's parser
sets ``func`` to a callable taking the parsed namespace. ``train`` and ``pretrain`` also take the
method named by ``--method`` on the command line, whose own options they add.

What reaches stderr is spinelab's own: third-party warnings and log records are silenced,
``SpinelabWarning`` becomes one ``spinelab: warning:`` line, and Ctrl-C at any point ends with
``spinelab: interrupted`` and exit status 130 (the console script also covers interpreter exit).
Every ``SpinelabError`` becomes one line on stderr and exit status 2; no traceback reaches the user
unless SPINELAB_DEBUG=1.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import warnings

from spinelab.errors import SpinelabError, SpinelabWarning
from spinelab.version import __version__

COMMANDS = ("demo", "predict", "show", "evaluate", "synth", "pretrain", "train", "train-bone", "benchmark")
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
    parser.add_argument("--version", action="version", version=f"spinelab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        module = importlib.import_module(f"spinelab.cli.{command.replace('-', '_')}")
        if command in METHOD_COMMANDS:
            module.register(sub, method)
        else:
            module.register(sub)
    return parser


def _print_warning(message, category, filename, lineno, file=None, line=None) -> None:
    from tqdm import tqdm

    tqdm.write(f"spinelab: warning: {message}", file=sys.stderr)  # on a line of its own, not after a progress bar


def main(argv: list[str] | None = None) -> int:
    """Run one command; the exit status is 0, 2 (a user error), 1 (an internal error) or 130 (interrupted)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.simplefilter("always", SpinelabWarning)
        warnings.showwarning = _print_warning
        logging.getLogger().addHandler(logging.NullHandler())  # no third-party log lines on stderr
        try:
            args = build_parser(argv).parse_args(argv)
            return int(args.func(args) or 0)
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


def _interrupted_at_exit(signum, frame) -> None:
    print("spinelab: interrupted", file=sys.stderr)
    os._exit(130)


def entry() -> None:
    """The console script: ``main``, then exit without tracebacks even if Ctrl-C comes during shutdown."""
    status = main()
    signal.signal(signal.SIGINT, _interrupted_at_exit)
    sys.stdout.flush()
    sys.exit(status)


if __name__ == "__main__":
    entry()
