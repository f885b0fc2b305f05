"""Every setting of the multi-view method in one dataclass, stored inside the model file."""

from __future__ import annotations

from dataclasses import dataclass

from spinelab.bone.stage import DRR_CUT_HU
from spinelab.errors import SpinelabError
from spinelab.review import LOW_CONFIDENCE
from spinelab.settings import StoredSettings


@dataclass
class MultiViewConfig(StoredSettings):
    views: int = 10  # K: DRRs every 360/K degrees around the long axis
    source_to_isocenter: float = 500.0  # mm, as in the paper
    source_to_detector: float = 1000.0  # mm
    detector_rows: int = 384  # detector pixels along the long axis (U-Nets: multiple of 32 x identifier_scale)
    detector_cols: int = 192  # detector pixels across
    pixel_mm: float = 1.8  # detector pixel size at the isocentre; grows only for very tall volumes
    content_radius_mm: float = 150.0  # half-width around the long axis that every view must show
    isocenter_jitter_mm: float = 20.0  # training only: random shift of the rotation centre
    volume_spacing: float = 2.0  # mm: CTs are block-averaged to about this before rendering
    bone_threshold_hu: float = DRR_CUT_HU  # only HU above this attenuate: bone DRRs, blind to soft tissue and contrast
    # ... and only voxels the bone stage (spinelab.bone) calls bone, so no dense contrast agent. A model
    # runs as it was trained: training sets this, files from before the bone stage existed read False.
    bone_stage: bool = False
    heatmap_sigma_mm: float = 5.0  # Gaussian heatmap sigma at the isocentre plane
    square_mm: float = 22.0  # identification squares (paper: 22 mm x 22 mm)
    peak_threshold: float = 0.3  # heatmap value a vertebra peak must reach
    peak_min_distance_mm: float = 12.0  # two peaks closer than this are one vertebra
    fusion_tolerance_mm: float = 10.0  # a ray farther than this from the fused point is an outlier
    min_view_fraction: float = 0.4  # a vertebra must be found in at least this share of the views
    depth: int = 18  # ResNet depth of both U-Net encoders (paper: 50)
    width: float = 0.5  # ResNet width factor (1.0 = standard widths)
    identifier_scale: int = 2  # the identification U-Net sees DRRs average-pooled by this (3.6 mm pixels)
    sequence_loss_weight: float = 1.0  # weight of the Sequence Loss next to cross-entropy
    weighted_voting: bool = True  # weight each view's vote by 1 - its Sequence Loss
    missed_vertebra_penalty: float | None = 0.5  # label sequence may skip a class at this cost (None: never)
    spacing_labels: bool = False  # ... or as many as the gap between two vertebrae holds (decoders.sequence)
    # mm a vertebra may lie off the segment joining its neighbours (spinelab.decoders.chain; None: no test),
    # tested before identification so that a false candidate takes no label (benchmarks/column_test.py)
    column_deviation_mm: float | None = None
    # Chosen on synthetic validation scans and no-spine volumes (benchmarks/review_thresholds.py):
    min_detection_score: float = 0.4  # a fused vertebra's mean heatmap peak must reach this, else it is dropped
    spine_detection_score: float = 0.7  # a spine needs a candidate the localizer scores at least this ...
    spine_label_confidence: float = 0.5  # ... and one the identifier labels this surely; else no vertebrae
    review_view_agreement: float = 0.5  # a vertebra fewer of whose views agree on its label needs review
    review_confidence: float = LOW_CONFIDENCE  # ... and so does one labelled less surely than this
    face_margin: float = 0.0  # half body sizes a centroid must lie inside the faces (benchmarks/model_settings.py)

    def __post_init__(self):
        if self.spacing_labels and self.missed_vertebra_penalty is None:
            raise SpinelabError("spacing_labels needs a missed_vertebra_penalty: it is the cost of each level off")
        multiple = 32 * self.identifier_scale  # five stride-2 stages after the identifier's pooling
        if self.identifier_scale < 1 or self.detector_rows % multiple or self.detector_cols % multiple:
            raise SpinelabError(f"detector {self.detector_rows}x{self.detector_cols} must be a multiple of "
                                f"{multiple} (32 x identifier scale {self.identifier_scale}) in both directions")

    @classmethod
    def from_dict(cls, values: dict) -> MultiViewConfig:
        # Files from before the pooled identifier ran it at full size.
        return super().from_dict({"identifier_scale": 1, **values})
