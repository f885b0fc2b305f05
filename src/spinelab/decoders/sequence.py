"""The consecutive-label dynamic programme: label detections sorted superior -> inferior so that
the labels form a run of neighbouring vertebrae, scoring each path with eq. 1 of Wu et al. 2023::

    OPT[i, j] = P[i, j]                         if i = 1 or j = 1
    OPT[i, j] = OPT[i-1, j-1] + D[i, j]         otherwise
    D[i, j]   = max(alpha P[i, j-1], beta P[i, j], alpha P[i, j+1])

``P`` (n x c) holds one row of class scores per detection and one column per vertebra class of
``spinelab.vertebrae`` (no background): a path runs down one class per row and collects beta
times the score of its own class, or alpha times a neighbour's. A path may also step over a
*skippable* column (T12 -> L1 past T13, L5 -> sacrum past L6), and with a ``gap_penalty`` over
any one column at that cost (a vertebra that detection missed). Given the distances between the
detections, the mean steps of real spines (``vertebrae.MEAN_STEP_MM``) say how many levels each
step spans instead, so a run of missed vertebrae is stepped over and a vertebra found twice keeps
one label (``best_sequence``).

Any method that scores classes per detection decodes with ``consecutive_labels``; the multi-view
Sequence Loss is the same recursion made differentiable (``accumulate``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from spinelab.errors import SpinelabError
from spinelab.vertebrae import MEAN_STEP_MM, SKIPPABLE_COLUMNS, label_of_class

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


def _gains(probabilities: torch.Tensor, alpha: float, beta: float, skippable: Sequence[int]) -> torch.Tensor:
    """D of eq. 1: beta times a cell's own score or alpha times its best neighbour's (a skippable
    column's far side counts as a neighbour)."""
    from_two_back, to_two_ahead = _skip_masks(probabilities.shape[-1], skippable, probabilities.device)
    neighbours = torch.stack([
        _shift(probabilities, 1), _shift(probabilities, -1),
        torch.where(from_two_back, _shift(probabilities, 2), -torch.inf),
        torch.where(to_two_ahead, _shift(probabilities, -2), -torch.inf)]).amax(dim=0)
    return torch.maximum(beta * probabilities, alpha * neighbours)


def accumulate(probabilities: torch.Tensor, alpha: float, beta: float, skippable: Sequence[int],
               restart: bool) -> torch.Tensor:
    """OPT of eq. 1 over (..., n, c), differentiable (the multi-view Sequence Loss).

    ``restart=True`` lets a path start at the first column on any row (the paper's ``j = 1`` case);
    ``False`` keeps only paths that start on the first row, as a label sequence must.
    """
    columns = probabilities.shape[-1]
    from_two_back, _ = _skip_masks(columns, skippable, probabilities.device)
    gains = _gains(probabilities, alpha, beta, skippable)
    rows = [probabilities[..., 0, :]]
    first_column = torch.arange(columns, device=probabilities.device) == 0
    for i in range(1, probabilities.shape[-2]):
        two_back = torch.where(from_two_back, _shift(rows[-1], 2), -torch.inf)
        carried = torch.maximum(_shift(rows[-1], 1), two_back) + gains[..., i, :]
        if restart:
            carried = torch.where(first_column, probabilities[..., i, :], carried)
        rows.append(carried)
    return torch.stack(rows, dim=-2)


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
                  skippable: Sequence[int] = SKIPPABLE_COLUMNS, gap_penalty: float | None = None,
                  distances_mm=None) -> np.ndarray:
    """Columns (n,) of the consecutive class sequence with the highest OPT (eq. 1) for ``scores`` (n, c).

    Only complete paths count (every row gets a class, one step down per row, skippable columns
    optional); the path ends at the argmax of the last row, as in the paper's label correction.
    With ``gap_penalty`` a path may also step over one class at that cost, so a vertebra that
    detection missed does not shift every label on one side of it. Given ``distances_mm`` (n - 1,),
    the distances between consecutive detections, the spacing of real spines says how many levels
    each step spans instead (``level_steps``): a step over more or fewer levels than that costs
    ``gap_penalty`` per level, so several missed vertebrae in a row can be stepped over, and two
    detections nearer than half a step (one vertebra found twice) may get the same class.
    """
    scores = as_matrix(scores).detach().double()
    if scores.ndim != 2:
        raise SpinelabError("best_sequence takes one (n, c) matrix")
    if len(scores) == 0:
        return np.zeros(0, dtype=np.int64)
    n, columns = scores.shape
    if distances_mm is not None and (gap_penalty is None or len(distances_mm) != n - 1):
        raise SpinelabError(f"spacing-aware labels need a gap penalty and {n - 1} distances, "
                            f"got {gap_penalty} and {len(distances_mm)}")
    gains = _gains(scores, alpha, beta, skippable).numpy()
    levels = _levels_spanned(columns, skippable)
    expected = None if distances_mm is None else level_steps(columns, skippable, distances_mm)
    opt = np.full((n, columns), -np.inf)
    opt[0] = scores[0].numpy()
    back = np.zeros((n, columns), dtype=np.int64)
    for row in range(1, n):
        cost = _transition_costs(levels, gap_penalty, None if expected is None else expected[row - 1])
        candidates = opt[row - 1][:, None] - cost  # from column (axis 0) to column (axis 1)
        back[row] = columns - 1 - np.argmax(candidates[::-1], axis=0)  # ties: the nearer column
        opt[row] = candidates[back[row], np.arange(columns)] + gains[row]
    if not np.isfinite(opt[-1]).any():
        raise SpinelabError(f"{n} vertebrae cannot be labelled with {columns} consecutive classes")
    path = [int(np.argmax(opt[-1]))]
    for row in range(n - 1, 0, -1):
        path.append(int(back[row, path[-1]]))
    return np.array(path[::-1], dtype=np.int64)


def _levels_spanned(columns: int, skippable: Sequence[int]) -> np.ndarray:
    """Levels (c, c) a step from one column (row) down to another (column) spans: the columns it
    advances, less the skippable ones strictly between; 0 where it does not go down."""
    passed = np.cumsum(np.isin(np.arange(columns), [int(column) for column in skippable]))
    source, target = np.arange(columns)[:, None], np.arange(columns)[None, :]
    return np.where(target > source, (target - source) - (passed[np.maximum(target - 1, 0)] - passed[source]), 0)


def _transition_costs(levels: np.ndarray, gap_penalty: float | None, expected: np.ndarray | None) -> np.ndarray:
    """Cost (c, c) of stepping from one column to another between consecutive detections; ``inf`` where
    a path may not. ``levels`` is ``_levels_spanned``: one level costs nothing, two cost ``gap_penalty``
    (one missed vertebra) and more are barred, unless ``expected`` (c,), each column's likely level
    count for this step (``level_steps``), is given: every level more or fewer costs ``gap_penalty``,
    and two detections nearer than half a step may share a label."""
    down = np.triu(np.ones_like(levels, dtype=bool), k=1)
    if expected is None:
        cost = np.where(levels == 1, 0.0, np.inf)
        if gap_penalty is not None:
            cost = np.where(levels == 2, gap_penalty, cost)
        return np.where(down, cost, np.inf)
    cost = gap_penalty * np.abs(levels - expected[:, None]).astype(np.float64)
    return np.where(down | (np.eye(len(levels), dtype=bool) & (expected[:, None] == 0)), cost, np.inf)


def level_steps(columns: int, skippable: Sequence[int], distances_mm) -> np.ndarray:
    """For each distance (n,) and column, how many levels further down a detection that far away most
    likely is (n, c): the count whose summed real mean steps (``vertebrae.MEAN_STEP_MM``, skippable
    columns not walked) lie nearest the distance; 0 where it is nearer than half a step (the same
    vertebra)."""
    skipped = {int(column) for column in skippable}
    walk = [column for column in range(columns) if column not in skipped]
    steps = np.array([MEAN_STEP_MM.get(label_of_class(column + 1), 0.0) for column in walk])
    reach = np.concatenate([[0.0], np.cumsum(steps)])
    distances = np.asarray(distances_mm, dtype=np.float64).reshape(-1, 1)
    counts = np.zeros((len(distances), columns), dtype=np.int64)
    for rank, column in enumerate(walk):
        ahead = reach[rank:len(walk)] - reach[rank]  # distance to 0, 1, 2, ... levels further down
        counts[:, column] = np.argmin(np.abs(ahead[None] - distances), axis=1)
    for column in sorted(skipped):  # a transitional vertebra steps like its upper neighbour
        counts[:, column] = counts[:, column - 1] if column > 0 else 1
    return counts


def consecutive_labels(scores, gap_penalty: float | None = None) -> np.ndarray:
    """VerSe labels (n,) of detections sorted superior -> inferior, from class scores (n, c).

    The labels form the best consecutive run under eq. 1: after T12 comes T13 or L1, after L5 L6
    or the sacrum; with ``gap_penalty`` the run may skip one vertebra at that cost.
    """
    return labels_of_columns(best_sequence(scores, gap_penalty=gap_penalty))


def labels_of_columns(columns) -> np.ndarray:
    return np.array([label_of_class(column + 1) for column in columns], dtype=np.int64)
