"""Pictures for checking results by eye."""

from spinelab.viz.qc import render_qc

__all__ = ["render_qc"]
