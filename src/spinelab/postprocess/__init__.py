"""From network outputs to labelled world centroids: peaks, multi-view fusion, voting and labels."""

from spinelab.postprocess.fusion import FusedVertebra, fuse_views, intersect_rays, ray_distances
from spinelab.postprocess.labeling import correct_sequence, identify, view_sequence_loss, view_weights
from spinelab.postprocess.labeling import weighted_vote
from spinelab.postprocess.peaks import find_peaks

__all__ = ["FusedVertebra", "correct_sequence", "find_peaks", "fuse_views", "identify", "intersect_rays",
           "ray_distances", "view_sequence_loss", "view_weights", "weighted_vote"]
