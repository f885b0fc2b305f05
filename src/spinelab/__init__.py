"""spinelab: localize and identify vertebrae in CT scans (3D centroids in RAS+ mm, VerSe labels)."""

from spinelab.api import predict
from spinelab.errors import SpinelabError
from spinelab.io.centroids import Centroids
from spinelab.io.volume import CTVolume, read_ct

__version__ = "0.1.0"
__all__ = ["CTVolume", "Centroids", "SpinelabError", "predict", "read_ct"]
