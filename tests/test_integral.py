"""The integral method (Qin et al.): integral regression, the balanced BCE, the presence branch's shape
and class order, crop tiling, world frame and a tiny end-to-end training run."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from spinelab.errors import SpinelabError
from spinelab.io.centroids import Centroids
from spinelab.io.volume import CTVolume
from spinelab.methods.integral.config import IntegralConfig
from spinelab.methods.integral.data import crop_targets
from spinelab.methods.integral.method import IntegralMethod, densest_cluster, tile_starts
from spinelab.methods.integral.network import IntegralNet, PresenceClassifier
from spinelab.methods.integral.train import balanced_bce, coordinate_loss
from spinelab.nets.integral import integral_coordinates
from spinelab.vertebrae import LABELS, VERTEBRA_CLASSES, class_index

from orientations import STORAGE_ORDERS

TINY = IntegralConfig(spacing_mm=4.0, crop=(32, 32, 48), encoder_channels=(4, 8, 8, 8, 8),
                      decoder_channels=(8, 8, 8, 8), lstm_hidden=8, border=(4, 4, 6))


def test_integral_regression_returns_a_gaussian_centre_to_sub_voxel_accuracy_and_passes_gradients():
    centre = np.array([7.3, 11.6, 4.45])
    grid = np.stack(np.meshgrid(*(np.arange(n) for n in (16, 20, 12)), indexing="ij"), axis=-1)
    logits = -((grid - centre) ** 2).sum(axis=-1) / (2 * 1.5**2) * 8.0  # a sharp log-Gaussian
    heatmaps = torch.tensor(logits, dtype=torch.float32)[None, None].requires_grad_(True)
    found = integral_coordinates(heatmaps)
    assert found.shape == (1, 1, 3)
    np.testing.assert_allclose(found[0, 0].detach().numpy(), centre, atol=0.05)
    found.sum().backward()
    assert heatmaps.grad is not None and heatmaps.grad.abs().sum() > 0


def test_the_balanced_bce_matches_hand_computed_values():
    logits = torch.tensor([[0.0, 2.0, -1.0]])
    presence = torch.tensor([[1.0, 0.0, 1.0]])
    sigmoid = 1 / (1 + np.exp(-np.array([0.0, 2.0, -1.0])))
    expected = -3.0 * math.log(sigmoid[0]) - math.log(1 - sigmoid[1]) - 3.0 * math.log(sigmoid[2])
    assert balanced_bce(logits, presence, 3.0).item() == pytest.approx(expected, rel=1e-6)


def test_the_coordinate_loss_counts_only_present_vertebrae():
    target = torch.zeros(1, 2, 3)
    predicted = torch.tensor([[[0.5, 0.0, 2.0], [40.0, 40.0, 40.0]]])
    loss = coordinate_loss(predicted, target, torch.tensor([[1.0, 0.0]]))
    assert loss.item() == pytest.approx(0.5 * 0.5**2 + (2.0 - 0.5))


def test_the_presence_branch_gives_one_logit_per_class_in_anatomical_order():
    assert len(VERTEBRA_CLASSES) == 27  # C1-C7, T1-T12, T13, L1-L6, sacrum
    for bilstm in (True, False):
        branch = PresenceClassifier(8, TINY.crop, len(VERTEBRA_CLASSES), bilstm, 8)
        assert branch(torch.randn(3, 8, 2, 2, 3)).shape == (3, 27)
    logits, coordinates = IntegralNet(TINY)(torch.randn(2, 1, *TINY.crop))
    assert logits.shape == (2, 27) and coordinates.shape == (2, 27, 3)
    # The column of a vertebra is its place along the spine: T13 between T12 and L1, L6 before the sacrum.
    classes = np.array([class_index(LABELS[name]) - 1 for name in ("T12", "T13", "L1", "L5", "L6", "S")])
    presence, _ = crop_targets(classes, np.full((6, 3), 5.0), np.zeros(3), TINY.crop)
    assert np.flatnonzero(presence).tolist() == [18, 19, 20, 24, 25, 26]


def test_crop_targets_keep_only_centroids_inside_the_crop():
    presence, coordinates = crop_targets(np.array([0, 1]), np.array([[10.0, 10.0, 10.0], [10.0, 40.0, 10.0]]),
                                         np.array([5, 5, 5]), (32, 32, 48))
    assert presence[:2].tolist() == [1.0, 0.0]
    np.testing.assert_allclose(coordinates[0], [5.0, 5.0, 5.0])


def test_tiles_cover_the_span_with_their_centres():
    for low, high in ((0, 10), (3, 200), (0, 25)):
        starts = tile_starts(low, high, 32, 4, 12)
        covered = np.zeros(high + 40, bool)
        for start in starts:
            covered[max(start + 4, 0):start + 28] = True
        assert covered[low:high].all()


def test_the_densest_cluster_ignores_a_stray_vote():
    points = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [60.0, 0.0, 0.0]])
    mass, position, confidence = densest_cluster(points, np.array([0.9, 0.8, 0.9, 0.95]), 8.0)
    assert mass == pytest.approx(2.6)
    assert abs(position[0]) < 1.0 and 0 < confidence < 1


class _BrightCubeNet(torch.nn.Module):
    """Stands in for the network: L1 is present in a crop whose centre holds bright voxels, and its
    coordinate is the integral regression of the bright voxels."""

    def __init__(self, config: IntegralConfig):
        super().__init__()
        self.config = config

    def forward(self, crops):
        bright = crops[:, 0] > 2.0
        border = self.config.border
        centre = bright[:, border[0]:-border[0], border[1]:-border[1], border[2]:-border[2]].flatten(1).any(dim=1)
        logits = torch.full((len(crops), len(VERTEBRA_CLASSES)), -10.0)
        logits[:, class_index(LABELS["L1"]) - 1] = torch.where(centre, 10.0, -10.0)
        heatmap = torch.where(bright, 50.0, 0.0)[:, None].expand(-1, len(VERTEBRA_CLASSES), -1, -1, -1)
        return logits, integral_coordinates(heatmap)


def test_the_integral_method_reports_world_centroids_in_any_storage_order(bright_cube_ct):
    """A bright 24 mm cube in an anisotropic CT: the L1 the stand-in finds is its world centre,
    whichever way the CT is stored."""
    ct, centre = bright_cube_ct
    method = IntegralMethod(_BrightCubeNet(TINY), TINY)
    results = [method.predict(ct.reoriented(codes)).centroids for codes in STORAGE_ORDERS]
    for found in results:
        assert found.labels.tolist() == [LABELS["L1"]]
        np.testing.assert_allclose(found.world[0], centre, atol=2.5)
        np.testing.assert_allclose(found.world, results[0].world, atol=1e-4)


def test_a_ct_without_a_patient_gives_no_vertebra():
    method = IntegralMethod(_BrightCubeNet(TINY), TINY)
    prediction = method.predict(CTVolume(np.full((30, 30, 30), -1000.0, np.float32), np.eye(4)))
    assert len(prediction.centroids) == 0 and "no spine" in prediction.details["no_spine"]


def test_a_crop_that_the_pools_cannot_halve_is_a_one_line_error():
    with pytest.raises(SpinelabError, match="multiple of 16"):
        IntegralConfig(crop=(80, 80, 104))


def test_a_tiny_training_run_writes_a_model_that_predicts_in_the_world_frame(tiny_dataset, tmp_path):
    from spinelab.io.datasets import find_cases
    from spinelab.methods import load_method
    from spinelab.methods.integral.train import train_model

    path = train_model(tiny_dataset, tmp_path / "run", TINY, iterations=2, batch_size=2, progress=False)
    method = load_method("integral", path)
    assert method.config == TINY and method.meta["training_cases"] == 2
    assert (tmp_path / "run" / "integral.ckpt").exists()
    head = train_model(tiny_dataset, tmp_path / "run", IntegralConfig(bilstm=False), iterations=2, batch_size=2,
                       progress=False, head_from=path, model_out=tmp_path / "fc_head.pt")
    fc_head = load_method("integral", head)
    assert fc_head.config.bilstm is False and fc_head.config.crop == TINY.crop
    for name, value in method.network.state_dict().items():  # the frozen encoder and localization are kept
        if not name.startswith("classifier."):
            torch.testing.assert_close(fc_head.network.state_dict()[name], value)
    ct, truth, _ = find_cases(tiny_dataset)[0].load()
    method.config.presence_threshold = 0.0  # an untrained network is unsure: let every class vote
    results = [method.predict(ct.reoriented(codes)).centroids for codes in STORAGE_ORDERS[:2]]
    assert len(results[0]) > 0 and (ct.distance_outside(results[0].world) == 0).all()
    assert isinstance(results[0], Centroids)
    np.testing.assert_allclose(results[1].world, results[0].world, atol=0.5)
    assert results[1].labels.tolist() == results[0].labels.tolist()


def test_two_classes_closer_than_the_separation_are_one_vertebra():
    from spinelab.methods.integral.method import separate_vertebrae

    clusters = [(0, 2.0, np.array([0.0, 0.0, 0.0]), 0.9), (1, 3.0, np.array([0.0, 0.0, 10.0]), 0.9),
                (2, 1.0, np.array([0.0, 0.0, 40.0]), 0.9)]
    assert [c[0] for c in separate_vertebrae(clusters, 12.0)] == [1, 2]  # the heavier of the close pair stays
    assert len(separate_vertebrae(clusters, 8.0)) == 3
