"""Message passing between the heatmaps of neighbouring vertebrae (Yang et al. §2.2, eq. 1-2):

    P_{t+1}(v_i) = (alpha * mean_{j in N(i)} P_t(v_j) * k(v_i | v_j) + P_t(v_i)) / (1 + alpha)

over a chain graph of the vertebra classes. ``k(v_i | v_j)`` is learned from the ground-truth
relative positions: the Gaussian of the offsets v_i - v_j over the spines of the shape dictionary
(real keypoint sets completed to C1-sacrum, ``sparsity.build_dictionary``; ``fit_chain``).
It is scaled so that a target-sized blob of vertebra j sends a message of its own height (a kernel of
unit sum would flatten it), so Z = 1 + alpha keeps a channel its neighbours agree with at its height,
and a channel without response gets alpha / (1 + alpha) of its neighbours' height where they put it.
A neighbour counts (sends, and is counted in the mean) only while its own peak reaches the presence
threshold: a vertebra at the edge of the field of view, whose outer neighbour is out of view, keeps
its height. A message never exceeds its strongest sender's peak (a response broader than the target
blobs would otherwise be amplified). Averaging in the empty neighbour, as eq. 2 reads, cut such a channel's peak from 1 to
0.45 in 3 passes (alpha 0.5, tests/test_di2in.py).

T13 and L6 are optional nodes. T12's lower neighbour is L1 and L5's is the sacrum, with kernels learned
from spines without the transitional vertebra; when the T13 (L6) channel's own response passes the
presence threshold, the chain runs T12 - T13 - L1 (L5 - L6 - S) instead, with kernels learned from
the spines that have it.

A sender's message is the window of +-3 target sigmas around its peak, convolved with the pair's
kernel (scipy's FFT convolution): convolving whole maps, as eq. 2 reads, took 35 s per pass-set on a
whole-spine CT (27 maps of 114 x 114 x 192 voxels), and a response away from the peak would only
pass on a false position.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import signal

from spinelab.vertebrae import LABELS, VERTEBRA_CLASSES, class_index

T13, L6 = class_index(LABELS["T13"]) - 1, class_index(LABELS["L6"]) - 1
OPTIONAL = (T13, L6)
#: A pair's kernel needs this many spines showing both vertebrae; otherwise the pair passes nothing.
MIN_PAIRS = 5


@dataclass
class Chain:
    """Kernel parameters per directed pair: (receiver, sender) class indices (P, 2), the mean (P, 3)
    and covariance (P, 3, 3) in mm of receiver - sender."""

    pairs: np.ndarray
    mean: np.ndarray
    covariance: np.ndarray

    def to_state(self) -> dict[str, torch.Tensor]:
        return {"pairs": torch.from_numpy(self.pairs), "mean": torch.from_numpy(self.mean).float(),
                "covariance": torch.from_numpy(self.covariance).float()}

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor]) -> Chain:
        return cls(state["pairs"].numpy(), state["mean"].double().numpy(), state["covariance"].double().numpy())


def chain_edges(with_optional: tuple[bool, bool] = (False, False)) -> list[tuple[int, int]]:
    """Undirected neighbour pairs (upper, lower) of the class chain, T13 / L6 in it when flagged."""
    nodes = [k for k in range(len(VERTEBRA_CLASSES))
             if k not in OPTIONAL or with_optional[OPTIONAL.index(k)]]
    return list(zip(nodes[:-1], nodes[1:]))


def fit_chain(spines: list[tuple[np.ndarray, np.ndarray]]) -> Chain:
    """Kernels from spines: (class indices ascending, centroids in mm) per spine. A pair is
    counted where a spine shows both and is neighbours in that spine's own chain."""
    offsets: dict[tuple[int, int], list[np.ndarray]] = {}
    for classes, points in spines:
        order = np.argsort(classes)
        classes, points = classes[order], points[order]
        edges = set(chain_edges((T13 in classes, L6 in classes)))
        for a in range(len(classes) - 1):
            pair = (int(classes[a]), int(classes[a + 1]))
            if pair in edges:
                offsets.setdefault(pair, []).append(points[a + 1] - points[a])
    pairs, means, covariances = [], [], []
    for (upper, lower), values in sorted(offsets.items()):
        if len(values) < MIN_PAIRS:
            continue
        values = np.array(values)
        mean, covariance = values.mean(axis=0), np.cov(values.T) + np.eye(3)  # 1 mm^2 floor
        pairs += [(lower, upper), (upper, lower)]  # the lower one receives from above, and back
        means += [mean, -mean]
        covariances += [covariance, covariance]
    return Chain(np.array(pairs, dtype=np.int64).reshape(-1, 2), np.array(means).reshape(-1, 3),
                 np.array(covariances).reshape(-1, 3, 3))


def _kernel(mean: np.ndarray, covariance: np.ndarray, spacing: float, reach: np.ndarray,
            blob_sigma: float) -> np.ndarray:
    """The pair's Gaussian on the voxel offsets -reach..reach, scaled so a blob of ``blob_sigma``
    (voxels) keeps its peak: sum 1 times sqrt(det(blob^2 I + cov)) / blob^3 (covariance in voxels)."""
    grids = np.meshgrid(*[np.arange(-r, r + 1) for r in reach], indexing="ij")
    offsets = np.stack(grids, axis=-1) * spacing - mean
    precision = np.linalg.inv(covariance)
    kernel = np.exp(-0.5 * np.einsum("...i,ij,...j->...", offsets, precision, offsets))
    kernel /= kernel.sum()
    voxel_cov = covariance / spacing**2
    return kernel * np.sqrt(np.linalg.det(blob_sigma**2 * np.eye(3) + voxel_cov)) / blob_sigma**3


def pass_messages(heatmaps: np.ndarray, chain: Chain, spacing: float, alpha: float, passes: int,
                  blob_sigma: float, threshold: float) -> np.ndarray:
    """``passes`` iterations of eq. 2 on (classes, R, A, S) heatmaps; neighbours count, and T13 / L6 join
    the chain, while their own peak reaches ``threshold``. Each sender's message is its window of
    +-3 blob sigmas around its peak convolved with the pair's kernel."""
    peaks = heatmaps.reshape(len(heatmaps), -1).max(axis=1)
    if passes <= 0 or not len(chain.pairs) or peaks.max() < threshold:
        return heatmaps
    edges = chain_edges(tuple(bool(peaks[k] >= threshold) for k in OPTIONAL))
    directed = {(lower, upper) for upper, lower in edges} | set(edges)
    active = [p for p, (receiver, sender) in enumerate(chain.pairs) if (sender, receiver) in directed]
    width = int(np.ceil(3 * blob_sigma))
    kernels = {}
    for p in active:
        reach = np.ceil((np.abs(chain.mean[p]) + 3 * np.sqrt(np.diagonal(chain.covariance[p]))) / spacing).astype(int)
        kernels[p] = (reach, _kernel(chain.mean[p], chain.covariance[p], spacing, reach, blob_sigma))
    passed = heatmaps.astype(np.float32, copy=True)
    shape = np.array(passed.shape[1:])
    for _ in range(passes):
        flat = passed.reshape(len(passed), -1)
        peaks = flat.max(axis=1)
        centres = np.array(np.unravel_index(flat.argmax(axis=1), passed.shape[1:])).T
        incoming: dict[int, list] = {}
        for p in active:
            receiver, sender = (int(k) for k in chain.pairs[p])
            if peaks[sender] < threshold:
                continue
            reach, kernel = kernels[p]
            low, high = np.maximum(centres[sender] - width, 0), np.minimum(centres[sender] + width + 1, shape)
            window = passed[(sender, *(slice(a, b) for a, b in zip(low, high)))]
            message = np.minimum(signal.fftconvolve(window, kernel, mode="full"), peaks[sender])
            incoming.setdefault(receiver, []).append((low - reach, message))
        for receiver, messages in incoming.items():
            passed[receiver] /= 1 + alpha
            share = alpha / (1 + alpha) / len(messages)
            for start, message in messages:
                low, high = np.maximum(start, 0), np.minimum(start + message.shape, shape)
                if (high <= low).any():
                    continue
                part = tuple(slice(a - s, b - s) for a, b, s in zip(low, high, start))
                passed[(receiver, *(slice(a, b) for a, b in zip(low, high)))] += share * np.maximum(message[part], 0)
    return passed
