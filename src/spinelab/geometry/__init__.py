"""Projection geometry of the multi-view DRRs: cone-beam views, world <-> pixel mapping and rays."""

from spinelab.geometry.projection import ConeBeamView, circular_views, views_for_volume

__all__ = ["ConeBeamView", "circular_views", "views_for_volume"]
