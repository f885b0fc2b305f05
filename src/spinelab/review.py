"""Why a person should look at a result: the "needs review" reasons every scan gets, whatever the method.

A method adds reasons of its own (``Method.review``; multiview: its views disagree); these
are the ones any result can be judged by. ``Method.predict`` joins both, so every caller gets them. Thresholds were chosen on synthetic validation scans
(``benchmarks/review_thresholds.py``, tables in docs/REVIEW_THRESHOLDS.md), never on the real CTs.
"""

from __future__ import annotations


from spinelab import vertebrae
from spinelab.io.centroids import Centroids
from spinelab.io.volume import CTVolume

#: A vertebra whose label confidence is below this is doubtful, unless the method's settings give a
#: threshold for its own confidence scale (``review_confidence``, benchmarks/shared_settings.py).
LOW_CONFIDENCE = 0.5
#: Slices thicker than this blur the discs between vertebrae.
THICK_SLICE_MM = 5.0
#: Vertebrae that fix the count: C2 (the dens), the sacrum, and the rib-bearing thoracic vertebrae.
LANDMARKS = frozenset({vertebrae.LABELS["C1"], vertebrae.LABELS["C2"], vertebrae.LABELS["S"],
                       *(vertebrae.LABELS[f"T{i}"] for i in range(1, 13))})
_OPTIONAL = {vertebrae.LABELS["T13"], vertebrae.LABELS["L6"]}


def missing_between(labels) -> list[str]:
    """Names of vertebrae missing inside the run of ``labels`` (T13 and L6 are optional)."""
    ranks = sorted(vertebrae.rank(label) for label in labels)
    if not ranks:
        return []
    present = set(ranks)
    return [vertebrae.name(vertebrae.ANATOMICAL_ORDER[r]) for r in range(ranks[0], ranks[-1] + 1)
            if r not in present and vertebrae.ANATOMICAL_ORDER[r] not in _OPTIONAL]


def review_reasons(ct: CTVolume, centroids: Centroids, own: list[str], low_confidence: float = LOW_CONFIDENCE) -> list[str]:
    """The method's ``own`` reasons plus confidence below ``low_confidence``, gaps, thick slices and a
    field of view with no landmark."""
    reasons = list(own)
    if not len(centroids):
        return reasons
    if centroids.confidence is not None:
        doubtful = [name for name, c in zip(centroids.names(), centroids.confidence) if c < low_confidence]
        if doubtful:
            reasons.append(f"low confidence (< {low_confidence:g}): {' '.join(doubtful)}")
    gaps = missing_between(centroids.labels)
    if gaps:
        reasons.append(f"labels not consecutive: {' '.join(gaps)} missing")
    if ct.spacing.max() > THICK_SLICE_MM:
        reasons.append(f"slices thicker than {THICK_SLICE_MM:g} mm ({ct.spacing.max():.1f} mm)")
    if not LANDMARKS & set(centroids.labels.tolist()):
        reasons.append("no landmark in view (C2, sacrum or a rib-bearing vertebra): labels counted from shape alone")
    return reasons
