"""Synthetic spine CTs whose spine geometry comes from real patients (see docs/SYNTH.md)."""

from spinelab.synth.generator import SynthCase, case_seed, generate_case, generate_dataset
from spinelab.synth.variants import FOV_KINDS, PATHOLOGIES, SynthOptions

__all__ = ["FOV_KINDS", "PATHOLOGIES", "SynthCase", "SynthOptions", "case_seed", "generate_case", "generate_dataset"]
