"""Decoders shared by the methods: from per-detection class scores to VerSe labels."""

from spinelab.decoders.sequence import ALPHA, BETA, best_sequence, consecutive_labels

__all__ = ["ALPHA", "BETA", "best_sequence", "consecutive_labels"]
