"""Sparse-representation refinement of the landmark coordinates (Yang et al. §2.3, Algorithm 1).

The shape dictionary holds whole real spines: each atom is one real keypoint set (a VID ground-truth
set or a VerSe landmark table, ``spinelab.synth.shape_model``) completed to C1-sacrum by the shape
model's conditional distribution, as the generator completes them (``spinelab.synth.geometry``), some
with T13 or L6. Atoms are stored centred on their mean (mm, NaN where a spine has no such vertebra).

For one scan: the longest run of landmarks, in class order, whose S coordinates descend is found by
dynamic programming; each axis of that subset is fitted as a sparse non-negative combination of the
atoms (scikit-learn's Lasso, with an intercept for where the patient lies); the combination then
reconstructs every landmark, the outliers and any non-transitional vertebra missing between detected
ones included. Only atoms that hold every class involved take part.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Lasso

from spinelab.methods.di2in.message_passing import OPTIONAL
from spinelab.vertebrae import VERTEBRA_CLASSES, class_index

MIN_ATOMS = 10


def longest_descending(values) -> list[int]:
    """Indices of the longest strictly descending subsequence of ``values`` (the earliest one on ties)."""
    values = np.asarray(values, dtype=float)
    if not len(values):
        return []
    length = np.ones(len(values), dtype=int)
    previous = np.full(len(values), -1)
    for i in range(len(values)):
        for j in range(i):
            if values[j] > values[i] and length[j] + 1 > length[i]:
                length[i], previous[i] = length[j] + 1, j
    index, chosen = int(np.argmax(length)), []
    while index >= 0:
        chosen.append(index)
        index = int(previous[index])
    return chosen[::-1]


def build_dictionary(count: int, data_dir, seed: int = 0, transitional_share: float = 0.1) -> np.ndarray:
    """(count, classes, 3) centred atoms from the generator's spine configurations: real sets from
    ``data_dir`` (the shape model's own draws when it is None), ``transitional_share`` each with T13 or L6."""
    from spinelab.synth.geometry import sample_spine

    rng = np.random.default_rng(seed)
    atoms = np.full((count, len(VERTEBRA_CLASSES), 3), np.nan)
    for row in range(count):
        variants = {"t13": rng.random() < transitional_share, "l6": rng.random() < transitional_share}
        for vertebra in sample_spine(rng, data_dir, variants).vertebrae:
            atoms[row, class_index(vertebra.label) - 1] = vertebra.centre
    return atoms - np.nanmean(atoms, axis=1, keepdims=True)


def refine(classes: np.ndarray, world: np.ndarray, atoms: np.ndarray, strength: float, min_landmarks: int,
           replace_consistent: bool = True) -> tuple[np.ndarray, np.ndarray, dict]:
    """Algorithm 1 on one scan's landmarks: class indices (n,) and world mm (n, 3).

    Returns the classes and coordinates after refinement and what it did. With too few consistent
    landmarks or atoms holding them, the input comes back unchanged. ``replace_consistent=False`` keeps
    the landmarks of the descending subset where they were and reconstructs only the others.
    """
    order = np.argsort(classes)
    classes, world = np.asarray(classes)[order], np.asarray(world, dtype=float)[order]
    subset = longest_descending(world[:, 2])
    if len(subset) < min_landmarks:
        return classes, world, {"sparsity": f"skipped: {len(subset)} consistent landmarks"}
    first, last = classes[subset[0]], classes[subset[-1]]
    gaps = [k for k in range(first + 1, last) if k not in classes and k not in OPTIONAL]
    targets = np.concatenate([classes, np.array(gaps, dtype=classes.dtype)])
    usable = np.isfinite(atoms[:, targets, 0]).all(axis=1)
    if usable.sum() < MIN_ATOMS:
        return classes, world, {"sparsity": f"skipped: {int(usable.sum())} atoms hold these vertebrae"}
    chosen = atoms[usable]
    refined = np.zeros((len(targets), 3))
    for axis in range(3):
        lasso = Lasso(alpha=strength, positive=True, fit_intercept=True, max_iter=5000)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            lasso.fit(chosen[:, classes[subset], axis].T, world[subset, axis])
        refined[:, axis] = chosen[:, targets, axis].T @ lasso.coef_ + lasso.intercept_
    if not replace_consistent:
        refined[subset] = world[subset]
    outliers = [int(classes[i]) for i in range(len(classes)) if i not in subset]
    details = {"sparsity": f"{len(subset)} consistent landmarks, {len(outliers)} outliers moved, "
                           f"{len(gaps)} missing restored"}
    return targets, refined, details
