"""Training losses of the multi-view method: the Sequence Loss of Wu et al. (MICCAI 2023)."""

from spinelab.losses.sequence import ALPHA, BETA, SEQUENCE_WEIGHT, accumulated_probability, best_sequence
from spinelab.losses.sequence import probability_matrix, sequence_loss

__all__ = ["ALPHA", "BETA", "SEQUENCE_WEIGHT", "accumulated_probability", "best_sequence", "probability_matrix",
           "sequence_loss"]
