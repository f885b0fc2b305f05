"""spinelab: localize and identify vertebrae in CT scans (3D centroids in RAS+ mm, VerSe labels)."""

from spinelab.api import predict, pretrain, train
from spinelab.errors import SpinelabError
from spinelab.io.centroids import Centroids
from spinelab.io.images import read_ct
from spinelab.io.volume import CTVolume
from spinelab.version import __version__

__all__ = ["CTVolume", "Centroids", "SpinelabError", "__version__", "predict", "pretrain", "read_ct", "train"]
