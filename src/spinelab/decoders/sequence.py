"""The consecutive-label dynamic programme: label detections sorted superior -> inferior so that
the labels form a run of neighbouring vertebrae, scoring each path with eq. 1 of Wu et al. 2023::

    OPT[i, j] = P[i, j]                         if i = 1 or j = 1
    OPT[i, j] = OPT[i-1, j-1] + D[i, j]         otherwise
    D[i, j]   = max(alpha P[i, j-1], beta P[i, j], alpha P[i, j+1])

``P`` (n x c) holds one row of class scores per detection and one column per vertebra class of
``spinelab.vertebrae`` (no background): a path runs down one class per row and collects beta
times the score of its own class, or alpha times a neighbour's. A path may also step over a
*skippable* column (T12 -> L1 past T13, L5 -> sacrum past L6), and with a ``gap_penalty`` over
any one column at that cost (a vertebra that detection missed).

Any method that scores classes per detection decodes with ``consecutive_labels``; the multi-view
Sequence Loss is the same recursion made differentiable (``accumulate``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from spinelab.errors import SpinelabError
from spinelab.vertebrae import SKIPPABLE_COLUMNS, label_of_class

ALPHA = 0.1  # weight of a neighbouring class's score (eq. 1)
BETA = 0.8  # weight of the path's own class (eq. 1)


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


def accumulate(probabilities: torch.Tensor, alpha: float, beta: float, skippable: Sequence[int],
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


def as_matrix(probabilities) -> torch.Tensor:
    probabilities = torch.as_tensor(probabilities)
    if probabilities.ndim not in (2, 3) or probabilities.shape[-1] < 1:
        raise SpinelabError(f"probability matrix must be (n, c) or (batch, n, c), got {tuple(probabilities.shape)}")
    if not probabilities.is_floating_point():
        probabilities = probabilities.float()
    if not torch.isfinite(probabilities).all():
        raise SpinelabError("probability matrix holds NaN or infinite values")
    return probabilities


def best_sequence(scores, alpha: float = ALPHA, beta: float = BETA,
                  skippable: Sequence[int] = SKIPPABLE_COLUMNS, gap_penalty: float | None = None) -> np.ndarray:
    """Columns (n,) of the consecutive class sequence with the highest OPT (eq. 1) for ``scores`` (n, c).

    Only complete paths count (every row gets a class, one step down per row, skippable columns
    optional); the path ends at the argmax of the last row, as in the paper's label correction.
    With ``gap_penalty`` a path may also step over one class at that cost, so a vertebra that
    detection missed does not shift every label on one side of it.
    """
    scores = as_matrix(scores).detach().double()
    if scores.ndim != 2:
        raise SpinelabError("best_sequence takes one (n, c) matrix")
    if len(scores) == 0:
        return np.zeros(0, dtype=np.int64)
    opt, steps = accumulate(scores, alpha, beta, skippable, restart=False, gap_penalty=gap_penalty)
    if not torch.isfinite(opt[-1]).any():
        raise SpinelabError(f"{len(scores)} vertebrae cannot be labelled with {scores.shape[1]} consecutive classes")
    columns = [int(opt[-1].argmax())]
    for row in range(len(scores) - 1, 0, -1):
        columns.append(columns[-1] - int(steps[row, columns[-1]]))
    return np.array(columns[::-1], dtype=np.int64)


def consecutive_labels(scores, gap_penalty: float | None = None) -> np.ndarray:
    """VerSe labels (n,) of detections sorted superior -> inferior, from class scores (n, c).

    The labels form the best consecutive run under eq. 1: after T12 comes T13 or L1, after L5 L6
    or the sacrum; with ``gap_penalty`` the run may skip one vertebra at that cost.
    """
    return labels_of_columns(best_sequence(scores, gap_penalty=gap_penalty))


def labels_of_columns(columns) -> np.ndarray:
    return np.array([label_of_class(column + 1) for column in columns], dtype=np.int64)
