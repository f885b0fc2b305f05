"""The scnet method: learnable-sigma loss, the paper's sequence rules, the segmentation merge, training
and prediction end to end in the world frame."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spinelab.io.volume import CTVolume
from spinelab.methods.scnet.config import SCNetConfig
from spinelab.methods.scnet.losses import landmark_loss, target_heatmaps
from spinelab.methods.scnet.segmentation import merge_responses, response_on_grid
from spinelab.methods.scnet.sequence import Candidate, landmark_sequence, local_maxima
from spinelab.vertebrae import LABELS, VERTEBRA_CLASSES, class_index

from orientations import STORAGE_ORDERS


def test_learnable_sigma_loss_matches_hand_computed_values():
    """One class on a 1 x 1 x 3 grid, target centred on the middle voxel with sigma 1:
    target = (e^-0.5, 1, e^-0.5); output 0 everywhere; weights 1 + 2 x target."""
    output = torch.zeros(1, 1, 1, 1, 3)
    positions = torch.tensor([[[0.0, 0.0, 1.0]]])
    sigma = torch.tensor([1.0], requires_grad=True)
    loss = landmark_loss(output, positions, sigma, alpha=0.5, foreground_weight=2.0, min_sigma=0.5)
    side = np.exp(-0.5)
    expected = 2 * (1 + 2 * side) * side ** 2 + (1 + 2) * 1.0 + 0.5 * 1.0 ** 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    # d/dsigma: data term 2 x (1 + 2 t) x t x dt/dsigma at the two sides (t = e^-0.5, dt/dsigma = t, the weights
    # held fixed) plus alpha x 2 x sigma
    assert float(sigma.grad) == pytest.approx(2 * (1 + 2 * side) * 2 * side * side + 0.5 * 2, rel=1e-5)
    # an absent class (NaN position) has an all-zero target; sigma is clamped at its minimum
    absent = landmark_loss(torch.ones(1, 1, 1, 1, 3), torch.full((1, 1, 3), float("nan")), torch.tensor([0.1]),
                           alpha=1.0, foreground_weight=2.0, min_sigma=0.5)
    assert float(absent) == pytest.approx(3.0 + 0.25)
    assert target_heatmaps(torch.full((1, 1, 3), float("nan")), torch.tensor([1.0]), (2, 2, 2)).abs().sum() == 0


def _candidate(name: str, s_mm: float, value: float = 1.0, a_mm: float = 0.0) -> Candidate:
    return Candidate(class_index(LABELS[name]) - 1, np.array([0.0, a_mm, s_mm]), value)


def _names(chain: list[Candidate]) -> list[str]:
    from spinelab.vertebrae import NAMES, VERTEBRA_CLASSES

    return [NAMES[VERTEBRA_CLASSES[c.column]] for c in chain]


def test_sequence_rejects_a_candidate_too_close_to_its_neighbour():
    """L2's second maximum lies 8 mm below L1 (closer than 12.5 mm): the chain takes the one 30 mm below."""
    chain = landmark_sequence([_candidate("L1", 100), _candidate("L2", 92, 0.9), _candidate("L2", 70, 0.6),
                               _candidate("L3", 40)])
    assert _names(chain) == ["L1", "L2", "L3"]
    assert chain[1].world[2] == 70


def test_sequence_rejects_a_candidate_out_of_order():
    """An L3 response above L2 (a rib head, say) cannot follow it: the chain skips it and reaches L4."""
    chain = landmark_sequence([_candidate("L1", 100), _candidate("L2", 70), _candidate("L3", 80, 0.9),
                               _candidate("L4", 40)])
    assert _names(chain) == ["L1", "L2", "L4"]


def test_sequence_starts_at_the_strongest_response_near_the_top():
    """T11 and T12 both answer for the top vertebra: the stronger (T12) starts the chain; a class skipped in
    less than twice the least distance (T10 -> T12 in 20 mm) is no chain."""
    candidates = [_candidate("T12", 130, 0.9), _candidate("T11", 131, 0.4), _candidate("L1", 100), _candidate("L2", 70)]
    assert _names(landmark_sequence(candidates)) == ["T12", "L1", "L2"]
    assert _names(landmark_sequence([_candidate("T10", 150, 0.5), _candidate("T12", 130)])) == ["T12"]
    assert landmark_sequence([]) == []


def test_local_maxima_are_refined_below_a_voxel():
    heatmap = np.zeros((7, 7, 7), dtype=np.float32)
    heatmap[3, 3, 3], heatmap[3, 3, 4] = 1.0, 1.0 - 1e-3
    heatmap[0, 0, 0] = 0.2  # below the threshold
    (position, value), = local_maxima(heatmap, 0.5)
    assert value == 1.0 and position[2] == pytest.approx(3.5, abs=1e-3)


def test_segmentation_merge_gives_each_voxel_the_strongest_response():
    """Two toy vertebrae whose responses overlap in the middle row: the stronger takes the overlap, responses
    below 0.5 label nothing."""
    first = np.zeros((4, 4, 3), dtype=np.float32)
    first[:, :, :2] = 0.9
    first[:, :, 2] = 0.6  # overlap row, weaker
    second = np.zeros((4, 4, 3), dtype=np.float32)
    second[:, :, 0] = 0.7  # overlap row (volume row 2), stronger than 0.6
    second[:, :, 1:] = 0.4  # below 0.5: nothing
    labels = merge_responses((4, 4, 6), [(20, (slice(None), slice(None), slice(0, 3)), first),
                                         (21, (slice(None), slice(None), slice(2, 5)), second)])
    assert (labels[:, :, :2] == 20).all() and (labels[:, :, 2] == 21).all() and (labels[:, :, 3:] == 0).all()


def test_a_response_lands_on_the_ct_grid_where_its_affine_puts_it():
    """A 2 mm response crop whose two top voxels (ones, centred at world z = 10 and 12 mm) are put back on a
    1 mm grid: linear interpolation keeps z = 10-12 above 0.5, and the half-way points (9, 13) at 0.5 out."""
    grid = CTVolume(np.zeros((8, 8, 30), dtype=np.int16), np.eye(4))
    response = np.zeros((2, 2, 4), dtype=np.float32)
    response[:, :, 2:] = 1.0
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = [2.0, 2.0, 6.0]  # voxel (0, 0, 2) sits at z = 10 mm
    box, values = response_on_grid(CTVolume(response, affine), grid)
    labels = merge_responses(grid.shape, [(5, box, values)])
    z = np.flatnonzero(labels[3, 3])
    assert z.tolist() == [10, 11, 12]


TINY = SCNetConfig(spine_input=(32, 32, 32), spine_channels=(2, 2, 2, 2, 2), crop=(16, 16, 32), channels=(2, 2, 2, 2, 2),
                   spatial_channels=2, window_overlap_mm=64.0, segment_crop=(32, 32, 32), segment_channels=(2, 2, 2, 2, 2))
K = len(VERTEBRA_CLASSES)


class _BrightBlob(torch.nn.Module):
    """Stands in for a network: in output channel ``column`` of ``channels`` the bright voxels (above 0.3, about 600 HU)
    smoothed to a peak of 1 at their centre, every other channel empty; as a segmenter (``logits``), +10
    on the bright voxels and -10 elsewhere."""

    def __init__(self, channels: int, column: int = 0, logits: bool = False):
        super().__init__()
        self.channels, self.column, self.logits = channels, column, logits

    def forward(self, x):
        bright = (x[:, :1] > 0.3).float()
        if self.logits:
            return bright * 20.0 - 10.0
        for _ in range(3):
            bright = torch.nn.functional.avg_pool3d(bright, 5, stride=1, padding=2, count_include_pad=True)
        maps = torch.zeros(len(x), self.channels, *x.shape[2:])
        maps[:, self.column] = bright[:, 0] / bright.amax().clamp(min=1e-6)
        return maps


def _stand_in_method():
    from spinelab.methods.scnet.method import SCNetMethod

    l1 = class_index(LABELS["L1"]) - 1
    return SCNetMethod(_BrightBlob(1), _BrightBlob(K, l1), _BrightBlob(1, logits=True), TINY)


def test_scnet_reports_world_centroids_and_label_maps_in_any_storage_order(bright_cube_ct):
    """A bright cube in an anisotropic CT: the L1 the stand-ins find is its world centre and the label map,
    back on the CT's own grid, covers the cube, whichever way the CT is stored."""
    ct, centre = bright_cube_ct
    method = _stand_in_method()
    method.segment = True
    cube_voxels = int((ct.array > 500).sum())
    for codes in STORAGE_ORDERS:
        stored = ct.reoriented(codes)
        prediction = method.predict(stored)
        assert prediction.centroids.labels.tolist() == [LABELS["L1"]]
        np.testing.assert_allclose(prediction.centroids.world[0], centre, atol=4.0)
        labels = prediction.label_map.resampled_onto(stored, order=0).array
        found = np.argwhere(labels == LABELS["L1"])
        assert abs(len(found) - cube_voxels) < 0.35 * cube_voxels
        np.testing.assert_allclose(stored.to_world(found.mean(axis=0)[None])[0], centre, atol=2.0)


def test_an_empty_scan_gives_no_vertebra_and_says_why():
    prediction = _stand_in_method().predict(CTVolume(np.full((30, 30, 30), -1000.0, np.float32), np.eye(4)))
    assert len(prediction.centroids) == 0 and "no spine" in prediction.details["no_spine"]


def test_a_tiny_training_run_writes_a_model_that_predicts_in_the_world_frame(tiny_dataset, tmp_path):
    import dataclasses

    from spinelab.io.datasets import find_cases
    from spinelab.methods import load_method
    from spinelab.methods.scnet.train import train

    path = train(tiny_dataset, tmp_path / "run", iterations=2, spine_iterations=2, segment_iterations=2, batch_size=2,
                 progress=False, config=TINY)
    method = load_method("scnet", path)
    assert method.config == TINY and method.meta["training_cases"] == 2
    assert all((tmp_path / "run" / f"scnet_{stage}.ckpt").exists() for stage in ("spine", "landmarks", "segment"))
    method.config = dataclasses.replace(TINY, spine_min_peak=0.0, peak_threshold=-1.0)  # untrained: let all through
    method.segment = True
    ct, _, _ = find_cases(tiny_dataset)[0].load()
    results = [method.predict(ct.reoriented(codes)) for codes in STORAGE_ORDERS[:2]]
    assert len(results[0].centroids) > 0 and (ct.distance_outside(results[0].centroids.world) == 0).all()
    np.testing.assert_allclose(results[1].centroids.world, results[0].centroids.world, atol=0.5)
    assert results[1].centroids.labels.tolist() == results[0].centroids.labels.tolist()
    assert results[0].label_map is not None and results[0].label_map.shape == ct.canonical().shape
