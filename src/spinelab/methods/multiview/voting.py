"""Multi-view identification: vote the views' probability matrices, then force a consecutive sequence.

Wu et al. (eq. 6) weight each view k by how sequential its own identification looks::

    V = sum_k W_k P_k,    W_k = (1 - L_s^k) / sum_a (1 - L_s^a)                    (6)

where ``P_k`` (n x c) holds view k's class probabilities for the n vertebrae and ``L_s^k`` its
Sequence Loss. The labels are then read from V with the same dynamic programme as the loss
(eq. 1, ``spinelab.decoders.sequence``): the best-scoring path fixes the last vertebra's class and,
stepping back one class per
row, every other label, so the result is always a consecutive run of vertebrae (T13 and L6 may be
present or skipped).

spinelab fuses the localization geometrically (``fusion.fuse_views``), so a view may lack some of
the fused vertebrae; ``weighted_vote`` then renormalizes the weights of each vertebra over the
views that saw it, which is eq. 6 exactly when every view saw every vertebra.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

from spinelab.decoders.sequence import best_sequence, labels_of_columns
from spinelab.errors import SpinelabError
from spinelab.methods.multiview.fusion import FusedVertebra
from spinelab.methods.multiview.sequence_loss import sequence_loss


def view_sequence_loss(probabilities, points_2d) -> float:
    """Sequence Loss of one view from its detections' probability rows (m, c) and pixels (m, 2).

    Rows are put in superior -> inferior order first (increasing detector row: images are head-up).
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    order = np.argsort(np.asarray(points_2d, dtype=np.float64).reshape(-1, 2)[:, 1], kind="stable")
    if len(order) != len(probabilities):
        raise SpinelabError(f"{len(probabilities)} probability rows for {len(order)} detections")
    return float(sequence_loss(torch.from_numpy(probabilities[order])))


def view_weights(sequence_losses) -> np.ndarray:
    """W_k of eq. 6: ``1 - L_s`` normalized to sum 1 (uniform if every view scored 0)."""
    quality = np.clip(1.0 - np.asarray(sequence_losses, dtype=np.float64).reshape(-1), 0.0, None)
    total = quality.sum()
    return quality / total if total > 0 else np.full(len(quality), 1.0 / max(len(quality), 1))


def weighted_vote(probabilities, sequence_losses, present=None) -> np.ndarray:
    """Voted identification map V (n, c) from per-view matrices (K, n, c) and Sequence Losses (K,).

    ``present`` (K, n) marks which view saw which vertebra (default: all); each vertebra's weights
    are renormalized over its views. A vertebra no view saw gets a row of zeros.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 3:
        raise SpinelabError(f"per-view probabilities must be (views, vertebrae, classes), got {probabilities.shape}")
    losses = np.asarray(sequence_losses, dtype=np.float64).reshape(-1)
    if len(losses) != len(probabilities):
        raise SpinelabError(f"{len(losses)} Sequence Losses for {len(probabilities)} views")
    present = np.ones(probabilities.shape[:2], bool) if present is None else np.asarray(present, bool)
    weights = view_weights(losses)[:, None] * present  # (K, n)
    unweighted = weights.sum(axis=0) == 0  # every view that saw it scored zero: plain average
    weights[:, unweighted] = present[:, unweighted]
    totals = weights.sum(axis=0)
    weights = np.divide(weights, totals, out=np.zeros_like(weights), where=totals > 0)
    return np.einsum("kn,knc->nc", weights, probabilities)


def identify(fused: list[FusedVertebra], view_probabilities, view_losses,
             gap_penalty: float | None = None, spacing: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Labels and confidences (n,) for fused vertebrae (sorted superior -> inferior).

    ``view_probabilities[k]`` (m_k, c) holds view k's probability rows for its own detections (the
    ones ``fuse_views`` indexed) and ``view_losses[k]`` its Sequence Loss. The confidence of a
    vertebra is the voted probability of the label it received. ``gap_penalty`` lets the label
    sequence skip one class where the votes say a vertebra between two detections was missed;
    with ``spacing`` the distances between the vertebrae say how many levels each step spans.
    """
    if len(view_probabilities) != len(view_losses):
        raise SpinelabError(f"{len(view_probabilities)} probability matrices for {len(view_losses)} views")
    if not fused:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    classes = next(np.shape(p)[1] for p in view_probabilities if np.size(p))
    stack = np.zeros((len(view_probabilities), len(fused), classes))
    present = np.zeros(stack.shape[:2], dtype=bool)
    for row, vertebra in enumerate(fused):
        for view, detection in zip(vertebra.views, vertebra.detections):
            stack[view, row] = np.asarray(view_probabilities[view])[detection]
            present[view, row] = True
    voted = weighted_vote(stack, view_losses, present)
    distances = np.linalg.norm(np.diff([v.point for v in fused], axis=0), axis=1) if spacing else None
    columns = best_sequence(voted, gap_penalty=gap_penalty, distances_mm=distances)
    return labels_of_columns(columns), voted[np.arange(len(fused)), columns]


def merge_repeats(fused: list[FusedVertebra], labels, confidence) -> tuple[list[FusedVertebra], np.ndarray, np.ndarray]:
    """Neighbours that ``identify`` gave one label (a vertebra found twice, say once per endplate: they lie
    nearer than half a step) become one vertebra at the mean of their points, with every ray behind
    them and the higher confidence."""
    merged, merged_labels, merged_confidence = [], [], []
    for label, group in itertools.groupby(zip(fused, labels, confidence), key=lambda item: int(item[1])):
        group = list(group)
        parts = [vertebra for vertebra, _, _ in group]
        merged.append(parts[0] if len(parts) == 1 else FusedVertebra(
            np.mean([part.point for part in parts], axis=0), *(np.concatenate([getattr(part, name) for part in parts])
                                                            for name in ("views", "detections", "residuals_mm"))))
        merged_labels.append(label)
        merged_confidence.append(max(c for _, _, c in group))
    return merged, np.array(merged_labels, dtype=np.int64), np.array(merged_confidence, dtype=np.float64)
