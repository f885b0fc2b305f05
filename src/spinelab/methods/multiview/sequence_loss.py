"""The Sequence Loss of Wu et al. (MICCAI 2023) and the dynamic programme behind it.

Input is a probability matrix ``P`` (n x c) of one DRR: row i holds the identification network's
class probabilities averaged over the square around the i-th detected vertebra, rows sorted from
superior to inferior, one column per vertebra class in anatomical order (no background; see
``spinelab.vertebrae``). A well-identified view has its row maxima on a staircase going one
class down per row. The paper scores this with a dynamic programme (eq. 1-3)::

    OPT[i, j] = P[i, j]                         if i = 1 or j = 1
    OPT[i, j] = OPT[i-1, j-1] + D[i, j]         otherwise
    D[i, j]   = max(alpha P[i, j-1], beta P[i, j], alpha P[i, j+1])              (1)
    L_s       = 1 - max_j OPT[n, j] / (beta n)                                   (2)
    L_id      = L_ce + gamma L_s                                                 (3)

with alpha = 0.1, beta = 0.8, gamma = 1: a path runs down one class per row and collects beta
times the probability of its own class, or alpha times that of a neighbouring class when the
network confused two adjacent vertebrae. A perfect one-hot staircase reaches ``1 + beta (n-1)``,
so its loss is ``-(1 - beta) / (beta n)``, slightly below zero, exactly as eq. 2 is written.

The recursion (eq. 1, with spinelab's skippable T13 and L6) is the shared decoder
``spinelab.decoders.sequence``; this module makes the loss of it. The maxima are hard
(``torch.amax``/``torch.maximum``), as in the paper; the gradient flows to the probabilities on
the best path.

``gamma`` belongs to the training loss (eq. 3): ``MultiViewConfig.sequence_loss_weight``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from spinelab.decoders.sequence import ALPHA, BETA, accumulate, as_matrix
from spinelab.errors import SpinelabError
from spinelab.vertebrae import SKIPPABLE_COLUMNS

def accumulated_probability(probabilities, alpha: float = ALPHA, beta: float = BETA,
                            skippable: Sequence[int] = SKIPPABLE_COLUMNS) -> torch.Tensor:
    """OPT of eq. 1 for a matrix (n, c) or a batch (B, n, c); differentiable."""
    return accumulate(as_matrix(probabilities), alpha, beta, skippable, restart=True)


def sequence_loss(probabilities, lengths=None, alpha: float = ALPHA, beta: float = BETA,
                  skippable: Sequence[int] = SKIPPABLE_COLUMNS) -> torch.Tensor:
    """Sequence Loss (eq. 2) of a matrix (n, c) -> scalar, or a batch (B, n, c) -> (B,).

    In a batch, view b uses its first ``lengths[b]`` rows (padding below is ignored); a view with
    no vertebra has loss 0. ``skippable=()`` gives the paper's plain chain of classes.
    """
    probabilities = as_matrix(probabilities)
    single = probabilities.ndim == 2
    batch = probabilities[None] if single else probabilities
    count = batch.shape[1]
    lengths = torch.full((len(batch),), count) if lengths is None else torch.as_tensor(lengths).reshape(-1)
    if len(lengths) != len(batch) or (lengths < 0).any() or (lengths > count).any():
        raise SpinelabError(f"lengths {lengths.tolist()} do not fit a batch of {len(batch)} views with {count} rows")
    if count == 0:
        losses = batch.sum(dim=(1, 2)) * 0.0
    else:
        opt = accumulate(batch, alpha, beta, skippable, restart=True)
        lengths = lengths.to(batch.device)
        last = opt[torch.arange(len(batch), device=batch.device), (lengths - 1).clamp(min=0)].amax(dim=-1)
        losses = torch.where(lengths > 0, 1.0 - last / (beta * lengths.clamp(min=1)), 0.0 * last)
    return losses[0] if single else losses


def probability_matrix(class_probabilities: torch.Tensor, points_2d, square_px: float) -> torch.Tensor:
    """``P`` (n, C-1): mean class probabilities (C, H, W) in a square around each point, background dropped.

    The square follows ``identification_targets`` (pixels whose column and row offsets are both at
    most ``square_px / 2``), so training targets and this average cover the same pixels. Rows
    follow the order of ``points_2d`` (column, row); sort them superior -> inferior (by row) before
    the Sequence Loss. Differentiable with respect to ``class_probabilities``.
    """
    if class_probabilities.ndim != 3:
        raise SpinelabError(f"class probabilities must be (C, H, W), got {tuple(class_probabilities.shape)}")
    _, height, width = class_probabilities.shape
    points = np.asarray(points_2d, dtype=np.float64).reshape(-1, 2)
    half = square_px / 2.0
    rows = []
    for col, row in points:
        c0, c1 = max(int(np.ceil(col - half)), 0), min(int(np.floor(col + half)), width - 1)
        r0, r1 = max(int(np.ceil(row - half)), 0), min(int(np.floor(row + half)), height - 1)
        if c1 < c0 or r1 < r0:
            raise SpinelabError(f"the square around ({col:.1f}, {row:.1f}) lies outside the {height}x{width} image")
        rows.append(class_probabilities[1:, r0:r1 + 1, c0:c1 + 1].mean(dim=(1, 2)))
    if not rows:
        return class_probabilities.new_zeros((0, class_probabilities.shape[0] - 1))
    return torch.stack(rows)
