"""Multi-view method: geometry of the whole decode chain with ideal network outputs, and a tiny training run."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from spinelab.io.centroids import Centroids
from spinelab.io.volume import CTVolume
from spinelab.methods.base import Prediction
from spinelab.methods.multiview.config import MultiViewConfig
from spinelab.methods.multiview.method import MultiViewMethod
from spinelab.methods.multiview.targets import identification_targets
from spinelab.methods.multiview.views import make_views, rendering_volume
from spinelab.nets import ResNetUNet
from spinelab.targets import gaussian_heatmap
from spinelab.vertebrae import NUM_CLASSES, class_index

TEST_CONFIG = MultiViewConfig(views=6, detector_rows=128, detector_cols=64, pixel_mm=3.0, content_radius_mm=60.0,
                              depth=18, width=0.25)


def phantom(axcodes=("R", "A", "S")) -> tuple[CTVolume, Centroids]:
    """A soft-tissue cylinder with bony spheres on a gently curved spine, T10..L3, in any storage order."""
    spacing = 2.0
    shape = (60, 60, 90)
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = [-59.0, -40.0, -300.0]
    ct = CTVolume(np.full(shape, -1000.0, dtype=np.float32), affine)
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    world = ct.to_world(ijk)
    body = np.hypot(world[..., 0] - 0.0, world[..., 1] - 20.0) < 55.0
    ct.array[body] = 40.0
    labels = [17, 18, 19, 20, 21, 22]  # T10..L3
    z = -300.0 + 30.0 + 26.0 * np.arange(len(labels))[::-1]  # T10 on top
    centres = np.stack([4.0 * np.sin(z / 60.0), 0.0 + 0.02 * (z + 200) ** 2 / 10, z], axis=1)
    for centre in centres:
        ct.array[np.linalg.norm(world - centre, axis=-1) < 9.0] = 900.0
    truth = Centroids(labels, centres)
    return ct.reoriented(axcodes), truth


def ideal_outputs(views, truth: Centroids, config: MultiViewConfig):
    heatmaps, probabilities = [], []
    for view in views:
        points = view.project(truth.world)
        pixel_mm = view.pixel_mm_at_isocenter
        heatmaps.append(gaussian_heatmap(np.asarray(points)[:, ::-1], view.shape, config.heatmap_sigma_mm / pixel_mm))
        classes = identification_targets(points, truth.labels, view.shape, pixel_mm, config.square_mm)
        probabilities.append(torch.nn.functional.one_hot(torch.from_numpy(classes), NUM_CLASSES).permute(2, 0, 1))
    return np.stack(heatmaps), torch.stack(probabilities).float()


class IdealNetworks(MultiViewMethod):
    """The real decode chain fed with perfect heatmaps and class maps of the known vertebrae."""

    def __init__(self, truth: Centroids, config: MultiViewConfig):
        tiny = ResNetUNet(1, config.depth, config.width)
        super().__init__(tiny, tiny, config)
        self.truth = truth

    def predict_canonical(self, ct, timer):
        volume = rendering_volume(ct, self.config)
        views = make_views(volume, self.config)
        centroids, details = self.decode(*ideal_outputs(views, self.truth, self.config), views)
        return Prediction(centroids, details=details)


@pytest.mark.parametrize("axcodes", [("R", "A", "S"), ("P", "I", "R"), ("L", "S", "P")])
def test_decode_recovers_world_centroids_in_any_storage_order(axcodes):
    ct, truth = phantom(axcodes)
    prediction = IdealNetworks(truth, TEST_CONFIG).predict(ct)
    assert prediction.centroids.labels.tolist() == truth.labels.tolist()
    errors = np.linalg.norm(prediction.centroids.world - truth.world, axis=1)
    assert errors.max() < 1.5, errors


def test_decode_survives_a_view_with_wrong_labels_and_a_missing_vertebra():
    ct, truth = phantom()
    config = TEST_CONFIG
    method = IdealNetworks(truth, config)
    volume = rendering_volume(ct.canonical(), config)
    views = make_views(volume, config)
    heatmaps, probabilities = ideal_outputs(views, truth, config)
    # View 0 shifts every label by one class; view 1 misses the first vertebra.
    probabilities[0] = torch.roll(probabilities[0], shifts=1, dims=0)
    first = views[1].project(truth.world[:1])[0]
    heatmaps[1] = gaussian_heatmap(np.asarray(views[1].project(truth.world[1:]))[:, ::-1], views[1].shape,
                                  config.heatmap_sigma_mm / views[1].pixel_mm_at_isocenter)
    assert np.hypot(*np.subtract(np.argwhere(heatmaps[1] > 0.5)[0][::-1], first)) > 3
    centroids, details = method.decode(heatmaps, probabilities, views)
    assert centroids.labels.tolist() == truth.labels.tolist()
    assert np.linalg.norm(centroids.world - truth.world, axis=1).max() < 1.5
    assert details["sequence_losses"][0] > details["sequence_losses"][2]


def test_a_false_candidate_in_front_of_the_column_takes_no_label():
    """A bright blob 70 mm in front of the column between T12 and L1 that the identifier calls L1
    (a contrast-filled heart): without the column test every label below it shifts."""
    ct, truth = phantom()
    volume = rendering_volume(ct.canonical(), TEST_CONFIG)
    views = make_views(volume, TEST_CONFIG)
    heart = (truth.world[2] + truth.world[3]) / 2 + [0.0, 70.0, 0.0]
    spine_heatmaps, spine_classes = ideal_outputs(views, truth, TEST_CONFIG)
    heart_heatmaps, heart_classes = ideal_outputs(views, Centroids([20], [heart]), TEST_CONFIG)
    outside_heart = heart_classes[:, :1] == 1  # background channel
    outputs = (np.maximum(spine_heatmaps, heart_heatmaps), torch.where(outside_heart, spine_classes, heart_classes))
    for bound, expect_truth in ((None, False), (20.0, True)):
        method = IdealNetworks(truth, dataclasses.replace(TEST_CONFIG, column_deviation_mm=bound))
        centroids, details = method.decode(*outputs, views)
        nearest_heart = np.linalg.norm(centroids.world - heart, axis=1).min()
        assert (centroids.labels.tolist() == truth.labels.tolist() and nearest_heart > 50) == expect_truth
        assert len(details["off_column"]) == int(expect_truth)  # named, so review can say what was dropped


def test_class_vocabulary_covers_the_phantom():
    _, truth = phantom()
    assert all(0 < class_index(label) < NUM_CLASSES for label in truth.labels)


def test_tiny_training_run_resumes_and_predicts_the_same_world_centroids_in_any_orientation(tiny_dataset, tmp_path):
    from spinelab.io.datasets import find_cases
    from spinelab.methods.multiview.train import pretrain, train_model

    run = tmp_path / "run"
    encoder = pretrain(tiny_dataset, run, TEST_CONFIG, views_per_case=3, iterations=2, batch_size=2, progress=False)
    model = train_model(tiny_dataset, run, TEST_CONFIG, encoder=str(encoder), views_per_case=3, iterations=3,
                        batch_size=2, progress=False)
    history = torch.load(run / "identifier.ckpt", weights_only=False)["history"]
    assert len(history) == 3 and np.isfinite(history).all()
    # A finished run resumes without training again and writes the same model.
    resumed = train_model(tiny_dataset, run, TEST_CONFIG, encoder=str(encoder), views_per_case=3, iterations=3,
                          batch_size=2, progress=False, model_out=str(tmp_path / "again.pt"))
    assert torch.load(resumed, weights_only=True)["networks"]["identifier"]["head.0.weight"].equal(
        torch.load(model, weights_only=True)["networks"]["identifier"]["head.0.weight"])

    method = MultiViewMethod.load(str(model))
    assert method.config.detector_rows == TEST_CONFIG.detector_rows
    ct, _, _ = find_cases(tiny_dataset)[0].load()
    reference = method.predict(ct)
    for axcodes in (("R", "A", "S"), ("I", "L", "P")):
        other = method.predict(ct.reoriented(axcodes))
        assert other.centroids.labels.tolist() == reference.centroids.labels.tolist()
        assert np.allclose(other.centroids.world, reference.centroids.world, atol=1e-6)
    assert set(reference.timings) >= {"canonicalize", "resample", "drr", "networks", "fusion"}


def test_more_candidates_than_a_spine_has_keeps_the_best_supported():
    """32 bright blobs in a column (a false detection chain): at most one label per class, no error."""
    config = TEST_CONFIG
    ct, _ = phantom()
    volume = rendering_volume(ct.canonical(), config)
    views = make_views(volume, config)
    z = np.linspace(-100.0, -280.0, 32)
    points_world = np.stack([np.zeros_like(z), np.zeros_like(z), z], axis=1)
    heatmaps, probabilities = [], []
    for view in views:
        points = view.project(points_world)
        heatmaps.append(gaussian_heatmap(np.asarray(points)[:, ::-1], view.shape, 1.0))
        probabilities.append(torch.full((NUM_CLASSES, *view.shape), 1.0 / NUM_CLASSES))
    method = IdealNetworks(Centroids.empty(), dataclasses.replace(config, peak_min_distance_mm=4.0,
                                                                  spine_label_confidence=0.0))  # no identifier here
    centroids, details = method.decode(np.stack(heatmaps), torch.stack(probabilities), views)
    assert len(centroids) == NUM_CLASSES - 1
    assert len(set(centroids.labels.tolist())) == len(centroids)


class Replay(torch.nn.Module):
    """A stand-in network that returns fixed outputs, checking the input size it is given."""

    def __init__(self, outputs: torch.Tensor):
        super().__init__()
        self.outputs = outputs

    def forward(self, x):
        assert x.shape[-2:] == self.outputs.shape[-2:]
        return self.outputs


def test_identifier_targets_on_the_pooled_grid_read_back_at_the_detector_points():
    """Training draws class squares on the pooled grid; inference upsamples to detector pixels: same labels."""
    from spinelab.methods.multiview.sequence_loss import probability_matrix
    from spinelab.methods.multiview.data import DRRDataset, render_training_case

    ct, truth = phantom(("P", "I", "R"))
    sample = render_training_case(ct.canonical(), truth, TEST_CONFIG, 2, np.random.default_rng(0))
    image, _, classes = DRRDataset([sample], TEST_CONFIG, augment=False)[0]
    scale = TEST_CONFIG.identifier_scale
    assert scale == 2 and classes.shape == (image.shape[1] // scale, image.shape[2] // scale)
    logits = 20.0 * torch.nn.functional.one_hot(classes, NUM_CLASSES).permute(2, 0, 1)[None].float()
    method = MultiViewMethod(Replay(torch.zeros(1, 1, *image.shape[1:])), Replay(logits), TEST_CONFIG)
    _, probabilities = method.run_networks(image.numpy())
    rows = probability_matrix(probabilities[0], sample["points"][0], 4.0 / TEST_CONFIG.pixel_mm)
    assert rows.argmax(dim=1).tolist() == [class_index(label) - 1 for label in truth.labels]


def test_a_detector_the_pooled_identifier_cannot_take_is_refused():
    from spinelab.errors import SpinelabError

    with pytest.raises(SpinelabError, match="multiple of 64"):
        MultiViewConfig(detector_rows=96, detector_cols=64, identifier_scale=2)
    assert MultiViewConfig(detector_rows=96, detector_cols=64, identifier_scale=1).detector_rows == 96


def test_spacing_labels_without_a_level_cost_are_refused():
    from spinelab.errors import SpinelabError

    with pytest.raises(SpinelabError, match="missed_vertebra_penalty"):
        MultiViewConfig(spacing_labels=True, missed_vertebra_penalty=None)


def test_identification_loss_pushes_a_shifted_run_of_labels_toward_the_truth():
    """Regression: the Sequence Loss rewards any consecutive run, so it must not outweigh the squares' cross-entropy.

    A network fairly sure that L1..L5, S are T7..T12 (consecutive, hence a low Sequence Loss) must
    be told to lower T7..T12 and raise L1..S in every square. With background-weighted
    cross-entropy the Sequence Loss reinforced the wrong run instead.
    """
    from spinelab.methods.multiview.train import identification_loss

    truth = [class_index(label) for label in (20, 21, 22, 23, 24, 26)]  # L1..L5, sacrum
    shifted = [class_index(label) for label in (14, 15, 16, 17, 18, 19)]  # T7..T12
    classes = torch.zeros(1, 96, 32, dtype=torch.long)
    logits = torch.zeros(1, NUM_CLASSES, 96, 32)
    logits[:, 0] = 5.0
    for i, (true_class, wrong_class) in enumerate(zip(truth, shifted)):
        rows = slice(10 + 14 * i, 16 + 14 * i)
        classes[0, rows, 13:19] = true_class
        logits[0, :, rows, 13:19] = 0.0
        logits[0, wrong_class, rows, 13:19] = 3.0
    logits.requires_grad_()
    identification_loss(logits, classes, MultiViewConfig()).backward()
    for true_class, wrong_class in zip(truth, shifted):
        square = classes[0] == true_class
        assert logits.grad[0, true_class][square].sum() < 0  # descent raises the true class
        assert logits.grad[0, wrong_class][square].sum() > 0  # and lowers the shifted one
