"""Synthetic spine CTs whose spine geometry comes from real patients (see docs/SYNTH.md).

The public names load on first use, so importing the options (e.g. for the CLI) does not pull in the
numba kernels.
"""

import importlib

_EXPORTS = {"SynthCase": "generator", "case_seed": "generator", "generate_case": "generator",
            "generate_dataset": "generator", "SynthOptions": "variants", "FOV_KINDS": "variants",
            "PATHOLOGIES": "variants"}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'spinelab.synth' has no attribute {name!r}")
    return getattr(importlib.import_module(f"spinelab.synth.{_EXPORTS[name]}"), name)
