"""spinelab: localize and identify vertebrae in CT scans (3D centroids in RAS+ mm, VerSe labels).

The public names load on first use, so that ``import spinelab`` (and the console script's start)
does not pay for torch before it is needed.
"""

import importlib

from spinelab.errors import SpinelabError, SpinelabWarning
from spinelab.version import __version__

_LAZY = {"predict": "spinelab.api", "pretrain": "spinelab.api", "train": "spinelab.api",
         "Centroids": "spinelab.io.centroids", "read_ct": "spinelab.io.images", "CTVolume": "spinelab.io.volume"}
__all__ = ["CTVolume", "Centroids", "SpinelabError", "SpinelabWarning", "__version__", "predict", "pretrain",
           "read_ct", "train"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'spinelab' has no attribute {name!r}")
