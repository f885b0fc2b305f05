"""The di2in method: DI2IN heatmaps, message passing along the chain, sparsity refinement, world frame."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from spinelab.errors import SpinelabError
from spinelab.io.volume import CTVolume
from spinelab.methods.di2in.config import DI2INConfig
from spinelab.methods.di2in.message_passing import Chain, chain_edges, fit_chain, pass_messages
from spinelab.methods.di2in.method import DI2INMethod, channel_peak
from spinelab.methods.di2in.network import DI2IN
from spinelab.methods.di2in.sparsity import longest_descending, refine
from spinelab.targets import gaussian_heatmap
from spinelab.vertebrae import LABELS, VERTEBRA_CLASSES, class_index

from orientations import STORAGE_ORDERS


TINY = DI2INConfig(crop=(16, 16, 32), channels=(4, 8, 8), supervised_levels=2, min_landmarks=3)
K = len(VERTEBRA_CLASSES)
STEP_MM = np.array([0.0, 2.0, -24.0])  # each vertebra 24 mm below and 2 mm in front of the one above


def _toy_chain() -> Chain:
    """Kernels fitted on 10 straight spines C1..S that step by STEP_MM (with 1 mm jitter)."""
    rng = np.random.default_rng(0)
    main = np.array([k for k in range(K) if k not in (class_index(LABELS["T13"]) - 1, class_index(LABELS["L6"]) - 1)])
    spines = [(main, np.cumsum(np.tile(STEP_MM, (len(main), 1)), axis=0) + rng.normal(0, 1, (len(main), 3)))
              for _ in range(10)]
    return fit_chain(spines)


def test_message_passing_restores_a_missing_response_where_its_neighbours_put_it():
    """T4, T5, T6 on a 4 mm grid: T5's channel is empty; after passing it peaks between its neighbours."""
    spacing, sigma = 4.0, 1.5
    shape = (20, 20, 40)
    t4, t5, t6 = (class_index(LABELS[name]) - 1 for name in ("T4", "T5", "T6"))
    centre = np.array([10.0, 10.0, 20.0])
    maps = np.zeros((K, *shape), dtype=np.float32)
    maps[t4] = gaussian_heatmap((centre - STEP_MM / spacing)[None], shape, sigma)
    maps[t6] = gaussian_heatmap((centre + STEP_MM / spacing)[None], shape, sigma)
    passed = pass_messages(maps, _toy_chain(), spacing, alpha=0.5, passes=3, blob_sigma=sigma, threshold=0.5)
    value, position = channel_peak(passed[t5])
    assert value > 0.25  # alpha / (1 + alpha) of the neighbours' height, less what the passes spread
    np.testing.assert_allclose(position, centre, atol=1.0)
    assert channel_peak(passed[t4])[0] > 0.8  # a channel its neighbour agrees with keeps its height


def test_transitional_vertebrae_join_the_chain_only_when_present():
    t12, t13, l1 = (class_index(LABELS[name]) - 1 for name in ("T12", "T13", "L1"))
    assert (t12, l1) in chain_edges() and all(t13 not in edge for edge in chain_edges())
    assert {(t12, t13), (t13, l1)} <= set(chain_edges((True, False))) and (t12, l1) not in chain_edges((True, False))


def test_the_longest_descending_subsequence_of_a_hand_made_sequence():
    assert longest_descending([10, 9, 12, 8, 7, 11, 6]) == [0, 1, 3, 4, 6]
    assert longest_descending([1, 2, 3]) == [0]
    assert longest_descending([]) == []


def _toy_atoms(count: int = 60) -> np.ndarray:
    """Spines of every class, their steps scaled 0.8-1.2 and leaning forward by up to 3 mm per level."""
    rng = np.random.default_rng(1)
    atoms = np.zeros((count, K, 3))
    for row in range(count):
        step = STEP_MM * rng.uniform(0.8, 1.2) + [0.0, rng.uniform(-3, 3), 0.0]
        atoms[row] = np.cumsum(np.tile(step, (K, 1)), axis=0)
    return atoms - atoms.mean(axis=1, keepdims=True)


def test_sparsity_moves_an_outlier_back_and_leaves_a_consistent_spine_nearly_unchanged():
    atoms = _toy_atoms()
    classes = np.arange(8, 16)
    truth = np.cumsum(np.tile(STEP_MM * 1.05, (len(classes), 1)), axis=0) + [5.0, -30.0, 400.0]
    kept_classes, refined, _ = refine(classes, truth, atoms, strength=0.1, min_landmarks=4)
    assert kept_classes.tolist() == classes.tolist()
    assert np.abs(refined - truth).max() < 2.0
    wrong = truth.copy()
    wrong[3] += [0.0, 0.0, 70.0]  # above the vertebra over it: out of the descending order
    _, refined, details = refine(classes, wrong, atoms, strength=0.1, min_landmarks=4)
    assert np.linalg.norm(refined[3] - truth[3]) < 3.0
    assert "1 outliers moved" in details["sparsity"]


def test_sparsity_restores_a_vertebra_missing_between_detected_ones():
    atoms = _toy_atoms()
    truth = np.cumsum(np.tile(STEP_MM, (10, 1)), axis=0)
    keep = np.array([0, 1, 2, 4, 5, 6, 7, 8, 9])
    classes, refined, _ = refine(np.arange(10)[keep], truth[keep], atoms, strength=0.1, min_landmarks=4)
    assert classes.tolist()[-1] == 3
    assert np.linalg.norm(refined[-1] - truth[3]) < 3.0


def test_the_network_gives_one_heatmap_per_class_at_the_input_size_from_every_branch():
    network = DI2IN(TINY).train()
    outputs, final = network(torch.randn(2, 1, *TINY.crop))
    assert len(outputs) == TINY.supervised_levels
    assert all(o.shape == (2, K, *TINY.crop) for o in [*outputs, final]) and (final >= 0).all()
    assert network.eval()(torch.randn(1, 1, *TINY.crop)).shape == (1, K, *TINY.crop)


def test_a_crop_that_the_pools_cannot_halve_is_a_one_line_error():
    with pytest.raises(SpinelabError, match="multiple of 16"):
        DI2INConfig(crop=(48, 48, 100))


class _BrightBlobNet(torch.nn.Module):
    """Stands in for DI2IN: the L1 heatmap is the bright voxels smoothed to a peak of 1 at their centre,
    every other heatmap empty."""

    def forward(self, x):
        bright = (x > 2.0).float()
        for _ in range(3):
            bright = torch.nn.functional.avg_pool3d(bright, 5, stride=1, padding=2, count_include_pad=True)
        maps = torch.zeros(len(x), K, *x.shape[2:])
        maps[:, class_index(LABELS["L1"]) - 1] = bright[:, 0] / bright.amax().clamp(min=1e-6)
        return maps


def test_the_di2in_method_reports_world_centroids_in_any_storage_order(bright_cube_ct):
    """A bright 24 mm cube in an anisotropic CT: the L1 the stand-in finds is its world centre, whichever
    way the CT is stored (message passing off: it would give the cube's neighbours a response too)."""
    ct, centre = bright_cube_ct
    method = DI2INMethod(_BrightBlobNet(), dataclasses.replace(TINY, message_passing=False), _toy_chain(),
                         _toy_atoms())
    results = [method.predict(ct.reoriented(codes)).centroids for codes in STORAGE_ORDERS]
    for found in results:
        assert found.labels.tolist() == [LABELS["L1"]]
        np.testing.assert_allclose(found.world[0], centre, atol=4.0)
        np.testing.assert_allclose(found.world, results[0].world, atol=1e-3)


def test_no_response_gives_no_vertebra():
    method = DI2INMethod(_BrightBlobNet(), TINY, _toy_chain(), _toy_atoms())
    prediction = method.predict(CTVolume(np.full((30, 30, 30), -1000.0, np.float32), np.eye(4)))
    assert len(prediction.centroids) == 0 and "no spine" in prediction.details["no_spine"]


def test_a_tiny_training_run_writes_a_model_that_predicts_in_the_world_frame(tiny_dataset, tmp_path):
    from spinelab.io.datasets import find_cases
    from spinelab.methods import load_method
    from spinelab.methods.di2in.train import train

    path = train(tiny_dataset, tmp_path / "run", iterations=2, batch_size=2, progress=False, dictionary_spines=20,
                 config=TINY)
    method = load_method("di2in", path)
    assert method.config == TINY and method.meta["training_cases"] == 2 and method.atoms.shape == (20, K, 3)
    assert len(method.chain.pairs) > 0 and (tmp_path / "run" / "di2in.ckpt").exists()
    ct, _, _ = find_cases(tiny_dataset)[0].load()
    method.config.presence_threshold = 0.0  # an untrained network is unsure: let every class through
    results = [method.predict(ct.reoriented(codes)).centroids for codes in STORAGE_ORDERS[:2]]
    assert len(results[0]) > 0 and (ct.distance_outside(results[0].world) == 0).all()
    np.testing.assert_allclose(results[1].world, results[0].world, atol=0.5)
    assert results[1].labels.tolist() == results[0].labels.tolist()
