"""The bone stage: its measures, the packaged model on dense contrast, training, and the DRRs it feeds."""

from __future__ import annotations

import numpy as np
import pytest

from spinelab.bone import BoneStage
from spinelab.bone.train import THRESHOLDS, randomize_intensities, signal_shares
from spinelab.cli import main
from spinelab.errors import SpinelabError
from spinelab.io.volume import CTVolume
from spinelab.methods.multiview.config import MultiViewConfig
from spinelab.methods.multiview.views import rendering_volume
from spinelab.synth import SynthOptions, generate_case, kernels

DENSE_BOLUS = SynthOptions(fov="thoracic", spacing=(2.0, 2.0, 2.0), contrast=True, contrast_phase="venous_bolus",
                           orientation=("L", "P", "S"), pathology={"metal": False})


@pytest.fixture(scope="module")
def bolus_case():
    return generate_case(11, DENSE_BOLUS)


@pytest.fixture(scope="module")
def stage():
    return BoneStage.load()


def test_signal_shares_split_the_radiograph_signal_into_bone_and_the_rest():
    hu = np.array([1150.0, 1150.0, 2150.0, 0.0])  # two bone voxels, one bright vessel, soft tissue
    bone = np.array([True, True, False, False])
    keep_all = signal_shares(hu, bone, np.ones(4, bool))
    assert keep_all["non_bone_share"] == pytest.approx(2000 / 4000)
    assert keep_all["non_bone_share_unmasked"] == pytest.approx(0.5)
    exact = signal_shares(hu, bone, bone)
    assert exact["dice"] == 1.0 and exact["non_bone_share"] == 0.0 and exact["bone_signal_kept"] == 1.0
    half = signal_shares(hu, bone, np.array([True, False, False, False]))
    assert half["bone_signal_kept"] == pytest.approx(0.5) and half["dice"] == pytest.approx(2 / 3)


def test_packaged_bone_stage_keeps_bone_and_drops_a_dense_venous_bolus(bolus_case, stage):
    ct = bolus_case.ct.canonical()
    tissue = bolus_case.tissue.reoriented(("R", "A", "S")).array
    bolus = (tissue == kernels.SOFT) & (ct.array > 1000)
    assert bolus.sum() > 200, "the venous bolus phase paints undiluted agent"
    keep = stage.mask(ct)
    shares = signal_shares(ct.array, tissue == kernels.BONE, keep)
    assert shares["non_bone_share_unmasked"] > 0.1, "without the stage the bolus is a large part of the signal"
    assert shares["bone_signal_kept"] > 0.85
    assert shares["non_bone_share"] < 0.5 * shares["non_bone_share_unmasked"]
    assert keep[bolus].mean() < 0.25, "the vessels full of agent are dropped"


def test_without_contrast_sets_the_bolus_to_soft_tissue_and_leaves_the_bone(bolus_case, stage):
    ct = bolus_case.ct.canonical()
    tissue = bolus_case.tissue.reoriented(("R", "A", "S")).array
    bright = ct.array > 150
    bone, bolus = bright & (tissue == kernels.BONE), (tissue == kernels.SOFT) & (ct.array > 1000)
    out = stage.without_contrast(ct)
    assert out.shape == ct.shape and np.array_equal(out.affine, ct.affine)
    assert (out.array[bone] == ct.array[bone]).mean() > 0.85
    assert (out.array[bolus] == 40).mean() > 0.75
    assert np.array_equal(out.array[~bright], ct.array[~bright]), "nothing below the cut changes"


def test_multiview_renders_only_what_the_bone_stage_keeps(bolus_case, stage):
    config = MultiViewConfig()
    ct = bolus_case.ct.canonical()
    plain, masked = rendering_volume(ct, config), rendering_volume(ct, config, stage)
    assert plain.shape == masked.shape and np.allclose(plain.affine, masked.affine)
    kept = masked.array > -1000
    assert kept.sum() < (plain.array > -1000).sum()
    assert np.array_equal(masked.array[kept], plain.array[kept]), "kept voxels are untouched"


def test_multiview_renders_from_the_bone_stage_it_is_handed(stage):
    """How a newly trained stage is compared before it replaces the packaged one (benchmarks/bone_choice.py)."""
    from spinelab.methods import load_method

    method, candidate = load_method("multiview"), BoneStage(stage.network, stage.config)
    assert method.rendering_bone is not candidate
    method.use_bone_stage(candidate)
    assert method.rendering_bone is candidate and method.bone_stage() is candidate


def test_intensity_randomization_keeps_shape_and_stays_in_the_scanner_range():
    rng = np.random.default_rng(0)
    hu = np.full((20, 20, 20), 40.0, dtype=np.float32)
    bone = np.zeros_like(hu)
    bone[8:12, 8:12, :] = 1.0
    hu[bone > 0] = 400.0
    for _ in range(5):
        out = randomize_intensities(hu, bone, rng)
        assert out.shape == hu.shape and out.dtype == np.float32
        assert out.min() >= -1024 and out.max() <= 3071


def test_half_the_distractors_start_against_the_bone():
    """Agent touching bone (the aorta beside the spine, a vein over a rib) is what the stage must learn to
    drop: the ring 2 voxels round a bone column (1 % of the patch) gets far more than its share of agent
    (about 3 % when distractors start anywhere in the body)."""
    rng = np.random.default_rng(1)
    hu = np.full((64, 64, 48), 40.0, dtype=np.float32)
    bone = np.zeros_like(hu)
    bone[30:34, 30:34, :] = 1.0
    hu[bone > 0] = 400.0
    beside = np.zeros(hu.shape, bool)
    beside[28:36, 28:36, :] = True
    beside &= bone == 0
    shares = []
    for _ in range(40):
        agent = (randomize_intensities(hu, bone, rng) > 300) & (bone == 0)
        if agent.any():
            shares.append((agent & beside).sum() / agent.sum())
    assert np.mean(shares) > 0.06, f"{np.mean(shares):.3f} of the agent lies against the bone"


def test_train_bone_writes_a_model_whose_threshold_was_chosen_on_validation(tmp_path, capsys):
    status = main(["train-bone", "--out", str(tmp_path), "--cases", "2", "--iterations", "2", "--batch-size", "2",
                   "--validation-cases", "1", "--workers", "1"])
    assert status == 0
    model = BoneStage.load(tmp_path / "bone.pt")
    assert model.config.threshold in THRESHOLDS
    assert set(model.meta["validation"]) == {f"{t:g}" for t in THRESHOLDS}
    probability = model.probability(CTVolume(np.full((12, 12, 12), 40, np.int16), np.diag([2.0, 2.0, 2.0, 1.0])))
    assert probability.shape == (6, 6, 6) and 0.0 <= probability.array.min() <= probability.array.max() <= 1.0


def test_a_bone_model_of_another_kind_is_one_line(tmp_path):
    from spinelab.methods import MODELS_DIR

    with pytest.raises(SpinelabError, match="a 'multiview' model, not 'bone'"):
        BoneStage.load(MODELS_DIR / "multiview.pt")


def test_a_crop_whose_faces_cut_vertebrae_gets_no_centroid_outside_it():
    from spinelab.methods import load_method

    case = generate_case(21, SynthOptions(fov="thoracolumbar", spacing=(2.0, 2.0, 2.0), orientation=("R", "A", "S")))
    labels = case.labels.array
    slices = {int(k): np.nonzero((labels == k).any(axis=(0, 1)))[0] for k in np.unique(labels)[1:]}
    ordered = sorted(slices.values(), key=lambda z: z.mean())
    low, high = ordered[1], ordered[-2]
    box = (slice(None), slice(None), slice(int(low.mean()), int(high.mean()) + 1))  # through two bodies' middles
    cropped = case.ct.cropped(box)
    prediction = load_method("multiview").predict(cropped)
    assert (cropped.distance_outside(prediction.centroids.world) == 0).all()
