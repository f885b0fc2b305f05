"""The Sequence Loss of Wu et al. (MICCAI 2023) and the dynamic programme behind it.

Input is a probability matrix ``P`` (n x c) of one DRR: row i holds the identification network's
class probabilities averaged over the square around the i-th detected vertebra, rows sorted from
superior to inferior, one column per vertebra class in anatomical order (no background; see
``spinelab.drr.targets``). A well-identified view has its row maxima on a staircase going one
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

Generalization (spinelab's vocabulary has the transitional T13 and L6): a path may also step
over a *skippable* column (T12 -> L1 past T13, L5 -> sacrum past L6), and the neighbours in D
are the classes one step away along these same transitions. With no skippable columns this is
eq. 1 verbatim. The maxima are hard (``torch.amax``/``torch.maximum``), as in the paper; the
gradient flows to the probabilities on the best path.

``gamma`` belongs to the training loss (eq. 3) and is not applied here: ``SEQUENCE_WEIGHT``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from spinelab.drr.targets import SKIPPABLE_COLUMNS
from spinelab.errors import SpinelabError

ALPHA = 0.1  # weight of a neighbouring class's probability (eq. 1)
BETA = 0.8  # weight of the path's own class (eq. 1) and the normalization of eq. 2
SEQUENCE_WEIGHT = 1.0  # gamma of eq. 3: L_id = L_ce + gamma * L_s


def _shift(values: torch.Tensor, by: int) -> torch.Tensor:
    """``out[..., j] = values[..., j - by]``, ``-inf`` where that column does not exist."""
    columns = values.shape[-1]
    if by > 0:
        return F.pad(values, (by, 0), value=-torch.inf)[..., :columns]
    return F.pad(values, (0, -by), value=-torch.inf)[..., -by:]


def _skip_masks(columns: int, skippable: Sequence[int], device) -> tuple[torch.Tensor, torch.Tensor]:
    """Per column j: may the path come from j-2 (j-1 skippable), may it go on to j+2 (j+1 skippable)."""
    skip = torch.zeros(columns + 2, dtype=torch.bool, device=device)
    for column in skippable:
        if not 0 <= int(column) < columns:
            raise SpinelabError(f"skippable column {column} is outside the {columns} classes of the matrix")
        skip[int(column) + 1] = True
    return skip[:columns], skip[2:]


def _accumulate(probabilities: torch.Tensor, alpha: float, beta: float, skippable: Sequence[int],
                restart: bool, gap_penalty: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 1 over (..., n, c); returns OPT and, per cell, how many columns the best path stepped (1 or 2).

    ``restart=True`` lets a path start at the first column on any row (the paper's ``j = 1`` case);
    ``False`` keeps only paths that start on the first row, as a label sequence must.
    ``gap_penalty`` also lets a path step over any one column at that cost (a missed vertebra).
    """
    columns = probabilities.shape[-1]
    from_two_back, to_two_ahead = _skip_masks(columns, skippable, probabilities.device)
    neighbours = torch.stack([
        _shift(probabilities, 1), _shift(probabilities, -1),
        torch.where(from_two_back, _shift(probabilities, 2), -torch.inf),
        torch.where(to_two_ahead, _shift(probabilities, -2), -torch.inf)]).amax(dim=0)
    gains = torch.maximum(beta * probabilities, alpha * neighbours)  # D of eq. 1
    rows = [probabilities[..., 0, :]]
    steps = [torch.zeros_like(rows[0], dtype=torch.int64)]
    first_column = torch.arange(columns, device=probabilities.device) == 0
    for i in range(1, probabilities.shape[-2]):
        one_back = _shift(rows[-1], 1)
        missed = -torch.inf if gap_penalty is None else _shift(rows[-1], 2) - gap_penalty
        two_back = torch.where(from_two_back, _shift(rows[-1], 2), missed)
        carried = torch.maximum(one_back, two_back) + gains[..., i, :]
        if restart:
            carried = torch.where(first_column, probabilities[..., i, :], carried)
        rows.append(carried)
        steps.append(torch.where(two_back > one_back, 2, 1))
    return torch.stack(rows, dim=-2), torch.stack(steps, dim=-2)


def _as_matrix(probabilities) -> torch.Tensor:
    probabilities = torch.as_tensor(probabilities)
    if probabilities.ndim not in (2, 3) or probabilities.shape[-1] < 1:
        raise SpinelabError(f"probability matrix must be (n, c) or (batch, n, c), got {tuple(probabilities.shape)}")
    if not probabilities.is_floating_point():
        probabilities = probabilities.float()
    if not torch.isfinite(probabilities).all():
        raise SpinelabError("probability matrix holds NaN or infinite values")
    return probabilities


def accumulated_probability(probabilities, alpha: float = ALPHA, beta: float = BETA,
                            skippable: Sequence[int] = SKIPPABLE_COLUMNS) -> torch.Tensor:
    """OPT of eq. 1 for a matrix (n, c) or a batch (B, n, c); differentiable."""
    return _accumulate(_as_matrix(probabilities), alpha, beta, skippable, restart=True)[0]


def sequence_loss(probabilities, lengths=None, alpha: float = ALPHA, beta: float = BETA,
                  skippable: Sequence[int] = SKIPPABLE_COLUMNS) -> torch.Tensor:
    """Sequence Loss (eq. 2) of a matrix (n, c) -> scalar, or a batch (B, n, c) -> (B,).

    In a batch, view b uses its first ``lengths[b]`` rows (padding below is ignored); a view with
    no vertebra has loss 0. ``skippable=()`` gives the paper's plain chain of classes.
    """
    probabilities = _as_matrix(probabilities)
    single = probabilities.ndim == 2
    batch = probabilities[None] if single else probabilities
    count = batch.shape[1]
    lengths = torch.full((len(batch),), count) if lengths is None else torch.as_tensor(lengths).reshape(-1)
    if len(lengths) != len(batch) or (lengths < 0).any() or (lengths > count).any():
        raise SpinelabError(f"lengths {lengths.tolist()} do not fit a batch of {len(batch)} views with {count} rows")
    if count == 0:
        losses = batch.sum(dim=(1, 2)) * 0.0
    else:
        opt = _accumulate(batch, alpha, beta, skippable, restart=True)[0]
        lengths = lengths.to(batch.device)
        last = opt[torch.arange(len(batch), device=batch.device), (lengths - 1).clamp(min=0)].amax(dim=-1)
        losses = torch.where(lengths > 0, 1.0 - last / (beta * lengths.clamp(min=1)), 0.0 * last)
    return losses[0] if single else losses


def best_sequence(scores, alpha: float = ALPHA, beta: float = BETA,
                  skippable: Sequence[int] = SKIPPABLE_COLUMNS, gap_penalty: float | None = None) -> np.ndarray:
    """Columns (n,) of the consecutive class sequence with the highest OPT (eq. 1) for ``scores`` (n, c).

    Only complete paths count (every row gets a class, one step down per row, skippable columns
    optional); the path ends at the argmax of the last row, as in the paper's label correction.
    With ``gap_penalty`` a path may also step over one class at that cost, so a vertebra that
    detection missed does not shift every label on one side of it.
    """
    scores = _as_matrix(scores).detach().double()
    if scores.ndim != 2:
        raise SpinelabError("best_sequence takes one (n, c) matrix")
    if len(scores) == 0:
        return np.zeros(0, dtype=np.int64)
    opt, steps = _accumulate(scores, alpha, beta, skippable, restart=False, gap_penalty=gap_penalty)
    if not torch.isfinite(opt[-1]).any():
        raise SpinelabError(f"{len(scores)} vertebrae cannot be labelled with {scores.shape[1]} consecutive classes")
    columns = [int(opt[-1].argmax())]
    for row in range(len(scores) - 1, 0, -1):
        columns.append(columns[-1] - int(steps[row, columns[-1]]))
    return np.array(columns[::-1], dtype=np.int64)


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
