"""The dense method (McCouat & Glocker): its continuous label scale, masked L1 loss, dense-to-sparse
step, world frame and a tiny end-to-end training run."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from spinelab.io.centroids import Centroids
from spinelab.io.volume import CTVolume
from spinelab.methods.dense.config import DenseConfig
from spinelab.methods.dense.labels import (NUMBER, dense_to_sparse, distinct_transitional, label_numbers, min_voxels,
                                          number_labels)
from spinelab.methods.dense.method import DenseMethod
from spinelab.methods.dense.train import masked_l1
from spinelab.targets import dense_labels
from spinelab.vertebrae import ANATOMICAL_ORDER, LABELS, VERTEBRA_CLASSES

from orientations import STORAGE_ORDERS


def test_the_continuous_scale_is_monotonic_with_t13_and_l6_in_place():
    ordered = [NUMBER[label] for label in ANATOMICAL_ORDER if label in VERTEBRA_CLASSES]
    assert ordered == sorted(ordered) and len(set(ordered)) == len(ordered)
    assert NUMBER[LABELS["T12"]] < NUMBER[LABELS["T13"]] < NUMBER[LABELS["L1"]]
    assert NUMBER[LABELS["L5"]] < NUMBER[LABELS["L6"]] < NUMBER[LABELS["S"]]
    labels = np.array(list(NUMBER))
    assert (number_labels(label_numbers(labels) + 0.4) == labels).all()
    assert (number_labels(np.array([0.2, 40.0])) == 0).all()


def test_the_masked_l1_loss_ignores_background():
    target = torch.tensor([[0.0, 0.0, 21.0, 22.0]])
    close = torch.tensor([[100.0, -50.0, 21.5, 22.0]], requires_grad=True)
    loss = masked_l1(close, target)
    loss.backward()
    assert loss.item() == pytest.approx(0.25)
    assert close.grad[0, :2].abs().sum() == 0 and close.grad[0, 2] != 0
    assert masked_l1(torch.ones(1, 4), torch.zeros(1, 4)).item() == 0.0


def _three_lumbar_vertebrae(spacing: float = 2.0):
    """Dense labels of L2-L4 on a straight vertical column, 35 mm apart, on a ``spacing`` grid."""
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = [-40.0, -40.0, -90.0]
    truth = Centroids([21, 22, 23], [[1.0, 2.0, 35.0], [1.0, 2.0, 0.0], [1.0, 2.0, -35.0]])
    shape = (int(80 / spacing), int(80 / spacing), int(180 / spacing))
    return dense_labels(shape, affine, truth), affine, truth


def test_dense_to_sparse_recovers_the_centroids_and_drops_a_label_below_its_count():
    labels, affine, truth = _three_lumbar_vertebrae()
    numbers = label_numbers(labels) + np.random.default_rng(0).uniform(-0.3, 0.3, labels.shape).astype(np.float32)
    stray = (slice(5, 8), slice(5, 8), slice(5, 8))  # 27 voxels of T9: far fewer than it needs
    numbers[stray], labels[stray] = NUMBER[LABELS["T9"]], 1
    found, details = dense_to_sparse(labels > 0, numbers, affine, 2.0, 3000.0)
    assert found.labels.tolist() == [21, 22, 23] and details["dropped_labels"] == [LABELS["T9"]]
    assert np.abs(found.world - truth.world).max() <= 2.0  # one voxel
    np.testing.assert_allclose(found.confidence, 0.7, atol=0.02)  # votes 0.15 off their integer on average
    assert 27 < min_voxels(LABELS["T9"], 2.0, 3000.0) == 375


@pytest.mark.parametrize("spine, reported", [(("T12", "L1"), ["T12", "L1"]), (("T12", "T13", "L1"), ["T12", "T13", "L1"])])
def test_the_band_a_blurred_regression_crosses_between_t12_and_l1_is_no_t13(spine, reported):
    """Numbers blurred along the spine pass through 20 between T12 (19) and L1 (21): enough voxels for a
    T13 at the disc, which ``distinct_transitional`` drops; a T13 a vertebra's height away stays."""
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = [-40.0, -40.0, -90.0]
    truth = Centroids([LABELS[name] for name in spine], [[0.0, 0.0, 30.0 - 28.0 * i] for i in range(len(spine))])
    labels = dense_labels((40, 40, 90), affine, truth)
    inside = (labels > 0).astype(np.float32)  # blurred within the column only: its ends keep their numbers
    blurred = [ndimage.gaussian_filter1d(values, sigma=3.0, axis=2) for values in (label_numbers(labels), inside)]
    numbers = blurred[0] / np.maximum(blurred[1], 1e-6)
    found, _ = dense_to_sparse(labels > 0, numbers, affine, 2.0, 3000.0)
    assert LABELS["T13"] in found.labels  # what the paper's rounding reports either way
    kept, dropped = distinct_transitional(found, separation=0.8)
    assert kept.names() == reported and dropped == ([] if "T13" in spine else [LABELS["T13"]])
    assert distinct_transitional(found, separation=0.0)[0].names() == found.names()


def test_no_body_voxel_gives_no_centroid():
    found, _ = dense_to_sparse(np.zeros((4, 4, 4), bool), np.zeros((4, 4, 4), np.float32), np.eye(4), 2.0, 3000.0)
    assert len(found) == 0


class _ConstantNumber(torch.nn.Module):
    """Stands in for the identification network: every pixel says vertebra ``number``."""

    multiple = 8

    def __init__(self, number: float):
        super().__init__()
        self.number = number

    def forward(self, slabs):
        return torch.full((len(slabs), 1, *slabs.shape[2:]), self.number)


def _bright_voxel_detector() -> torch.nn.Module:
    """Stands in for the detection network: body wherever the windowed CT is bright (above about 100 HU)."""
    conv = torch.nn.Conv3d(1, 2, kernel_size=1)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([0.0, 50.0]).reshape(2, 1, 1, 1, 1))
        conv.bias.copy_(torch.tensor([0.0, -10.0]))
    return conv


def test_the_dense_method_reports_world_centroids_in_any_storage_order():
    """A bright 24 mm cube in an anisotropic CT: the L1 the stand-in networks find is its world centre,
    whichever way the CT is stored."""
    array = np.full((70, 60, 40), -1000.0, dtype=np.float32)
    array[30:54, 20:44, 16:24] = 600.0  # 0.8 x 1.0 x 3.0 mm voxels: 19.2 x 24 x 24 mm
    affine = np.diag([0.8, 1.0, 3.0, 1.0])
    affine[:3, 3] = [-20.0, 35.0, 110.0]
    ct = CTVolume(array, affine)
    centre = ct.to_world(np.array([[41.5, 31.5, 19.5]]))[0]
    method = DenseMethod(_bright_voxel_detector(), _ConstantNumber(NUMBER[LABELS["L1"]]), DenseConfig())
    results = [method.predict(ct.reoriented(codes)).centroids for codes in STORAGE_ORDERS]
    for found in results:
        assert found.labels.tolist() == [LABELS["L1"]]
        np.testing.assert_allclose(found.world[0], centre, atol=2.0)
        np.testing.assert_allclose(found.world, results[0].world, atol=1e-6)


def test_a_tiny_training_run_writes_a_model_that_predicts(tiny_dataset, tmp_path):
    from spinelab.methods import load_method
    from spinelab.methods.dense.train import train_model

    config = DenseConfig(spacing_mm=4.0, detection_channels=(4, 8, 16), identification_channels=(4, 8, 16, 32))
    path = train_model(tiny_dataset, tmp_path / "run", config, iterations=2, batch_size=2,
                       identification_batch_size=2, progress=False)
    method = load_method("dense", path)
    assert method.config == config and method.meta["training_cases"] == 2
    assert (tmp_path / "run" / "detection.ckpt").exists() and (tmp_path / "run" / "identification.ckpt").exists()
    from spinelab.io.datasets import find_cases

    ct = find_cases(tiny_dataset)[0].load()[0]
    prediction = method.predict(ct)
    assert set(prediction.timings) >= {"resample", "detection", "identification", "centroids"}
    assert (ct.distance_outside(prediction.centroids.world) == 0).all()


def test_detection_patches_must_halve_at_every_unet_stage_and_keep_a_centre():
    from spinelab.errors import SpinelabError

    with pytest.raises(SpinelabError, match="multiple of 8"):
        DenseConfig(detection_patch=(60, 64, 80))
    with pytest.raises(SpinelabError, match="leaves nothing"):
        DenseConfig(detection_patch=(16, 64, 80))


def test_body_pieces_far_smaller_than_the_spine_are_dropped():
    from spinelab.methods.dense.method import spine_pieces

    body = np.zeros((20, 20, 40), dtype=bool)
    body[8:12, 8:12, 2:38] = True  # the spine's tube: 576 voxels
    body[1:4, 1:4, 5:8] = True  # a rib fragment: 27 voxels
    body[15:19, 15:19, 10:17] = True  # 112 voxels, about a fifth of the tube
    np.testing.assert_array_equal(spine_pieces(body, 0.0), body)
    kept = spine_pieces(body, 0.15)
    assert kept[9, 9, 20] and kept[16, 16, 12] and not kept[2, 2, 6]
    only = spine_pieces(body, 1.0)
    assert only.sum() == 576
