"""DRR rendering and the 2D training targets of the multi-view method."""

from spinelab.drr.render import MU_WATER, hu_to_mu, normalize_drr, render_drr, render_drr_torch, render_views
from spinelab.drr.targets import NUM_CLASSES, SKIPPABLE_COLUMNS, VERTEBRA_CLASSES, class_index, label_of_class
from spinelab.drr.targets import heatmap_targets, identification_targets

__all__ = ["MU_WATER", "NUM_CLASSES", "SKIPPABLE_COLUMNS", "VERTEBRA_CLASSES", "class_index", "heatmap_targets",
           "hu_to_mu", "identification_targets", "label_of_class", "normalize_drr", "render_drr", "render_drr_torch",
           "render_views"]
