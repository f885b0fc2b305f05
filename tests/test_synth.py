"""Synthetic spine CTs: determinism, the VerSe layout round trip, label/centroid agreement and one case
of every field of view and pathology checked for the property it promises (at 'test' resolution)."""

import filecmp

import numpy as np
import pytest

from spinelab.errors import SpinelabError
from spinelab.synth import FOV_KINDS, SynthOptions, case_seed, generate_case, generate_dataset
from spinelab.synth import kernels, shape_model
from spinelab.synth.geometry import SCOLIOSIS_MM
from spinelab.synth.variants import METAL_HU

CERVICAL, THORACIC, LUMBAR = set(range(1, 8)), {*range(8, 20), 28}, set(range(20, 26))
NO_PATHOLOGY = {name: False for name in ("fracture", "metal", "l6", "t13", "sacralized_l5", "missing_rib12")}


def case(seed, **options):
    options.setdefault("resolution", "test")
    options.setdefault("pathology", dict(NO_PATHOLOGY))
    return generate_case(seed, SynthOptions(**options))


def label_at(volume, points) -> np.ndarray:
    """Label-map value at the voxels nearest to world points (0 outside the grid)."""
    ijk = np.rint(volume.to_voxel(np.atleast_2d(points))).astype(int)
    inside = np.all((ijk >= 0) & (ijk < volume.shape), axis=1)
    values = np.zeros(len(ijk), dtype=int)
    values[inside] = volume.array[tuple(ijk[inside].T)]
    return values


def present_labels(synth) -> set[int]:
    return set(np.unique(synth.labels.array).tolist()) - {0}


def bone_outside_vertebrae(synth, centre, lateral: tuple[float, float], height: float) -> int:
    """Bone voxels with no vertebra label, beside a point: how much rib there is at that level."""
    tissue = synth.tissue.canonical()
    labels = synth.labels.canonical().array
    ijk = np.indices(tissue.shape).reshape(3, -1).T
    world = tissue.to_world(ijk)
    offset = np.abs(world - centre)
    near = (offset[:, 0] > lateral[0]) & (offset[:, 0] < lateral[1]) & (offset[:, 2] < height) & (offset[:, 1] < 60)
    bone = (tissue.array.reshape(-1) == kernels.BONE) & (labels.reshape(-1) == 0)
    return int((near & bone).sum())


def test_same_seed_gives_the_same_case_and_another_seed_does_not():
    first, again, other = case(3), case(3), case(4)
    assert np.array_equal(first.ct.array, again.ct.array)
    assert np.array_equal(first.labels.array, again.labels.array)
    assert np.array_equal(first.ct.affine, again.ct.affine)
    assert np.array_equal(first.centroids.world, again.centroids.world)
    assert first.ct.shape != other.ct.shape or not np.array_equal(first.ct.array, other.ct.array)


def test_ct_is_int16_hu_with_label_map_on_the_same_grid():
    synth = case(5, fov="whole")
    assert synth.ct.array.dtype == np.int16 and synth.labels.shape == synth.ct.shape
    assert np.allclose(synth.labels.affine, synth.ct.affine) and np.allclose(synth.tissue.affine, synth.ct.affine)
    hu = synth.ct.array
    assert hu.min() >= -3024 and (hu < -900).any() and (hu > 400).any()
    assert present_labels(synth) == set(synth.centroids.labels.tolist())


@pytest.mark.parametrize("seed", range(6))
def test_every_centroid_lies_in_its_own_vertebral_body(seed):
    """Whatever the stored orientation and spacing, the label map agrees with the centroids (C1's
    centroid is the centre of its ring, VerSe's convention, so it has to lie amid its own voxels)."""
    synth = case(100 + seed, fov="random")
    assert len(synth.centroids) > 0
    labels = label_at(synth.labels, synth.centroids.world)
    for label, found, point in zip(synth.centroids.labels, labels, synth.centroids.world):
        if label == 1:
            atlas = synth.labels.to_world(np.argwhere(synth.labels.array == 1))
            assert np.linalg.norm(atlas.mean(axis=0) - point) < 6.0
        else:
            assert found == label, f"centroid of {label} sits on label {found} ({synth.info['axcodes']})"


def test_label_map_gives_back_the_body_centroids():
    """spinelab's own label-map reader finds the same body centres (C1/C2/sacrum follow other conventions)."""
    from spinelab.io.labelmap import centroids_from_label_map

    synth = generate_case(15, SynthOptions(fov="lumbar", max_voxels=3_000_000, pathology=dict(NO_PATHOLOGY)))
    found = centroids_from_label_map(synth.labels, scheme="verse").as_dict()
    expected = synth.centroids.as_dict()
    assert set(found) == set(expected)
    assert max(np.linalg.norm(found[v] - expected[v]) for v in expected if v != 26) < 2.0


def test_dataset_is_byte_identical_readable_and_scores_perfectly_against_itself(tmp_path):
    from spinelab.eval.pairing import evaluate_paths
    from spinelab.io.datasets import verse_cases

    options = SynthOptions(resolution="test")
    first = generate_dataset(tmp_path / "a", 3, seed=7, options=options, progress=False)
    second = generate_dataset(tmp_path / "b", 3, seed=7, options=options, workers=2, progress=False)
    assert first == second == ["sub-synth0000", "sub-synth0001", "sub-synth0002"]
    files = [p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file()]
    match, mismatch, errors = filecmp.cmpfiles(tmp_path / "a", tmp_path / "b", files, shallow=False)
    assert not mismatch and not errors and len(match) == 3 * 3 + 1, f"differing files: {mismatch + errors}"
    cases = verse_cases(tmp_path / "a")
    assert [c.case_id for c in cases] == first
    for index, entry in enumerate(cases):
        ct, centroids, mask = entry.load()
        expected = generate_case(case_seed(7, index), options)
        assert np.array_equal(ct.array, expected.ct.array) and np.array_equal(mask.array, expected.labels.array)
        assert np.array_equal(centroids.labels, expected.centroids.labels)
        assert np.allclose(centroids.world, expected.centroids.world, atol=0.06)
        metrics, _, _ = evaluate_paths(entry.centroids_path, entry.centroids_path)
        overall = metrics.overall
        assert overall.n_gt == len(centroids) and overall.verse_id_rate == 1.0 and max(overall.errors) == 0.0


def test_cli_writes_a_dataset(tmp_path, capsys):
    from spinelab.cli import main

    assert main(["synth", "--n", "1", "--out", str(tmp_path), "--seed", "2", "--resolution", "test",
                 "--fov", "lumbar", "--pathology", "l6"]) == 0
    assert "sub-synth0000" in capsys.readouterr().out
    assert (tmp_path / "rawdata" / "sub-synth0000" / "sub-synth0000_ct.nii.gz").is_file()
    assert main(["synth", "--n", "1", "--out", str(tmp_path / "bad"), "--pathology", "cancer"]) == 2
    assert "unknown pathology" in capsys.readouterr().err


def test_bad_options_are_one_line_errors():
    for options, message in ((SynthOptions(fov="neck"), "field of view"), (SynthOptions(resolution="x"), "resolution"),
                             (SynthOptions(pathology={"cancer": 1}), "pathology"),
                             (SynthOptions(pathology={"l6": True, "sacralized_l5": True}), "cannot both"),
                             (SynthOptions(orientation=("L", "L", "S")), "orientation"),
                             (SynthOptions(spacing=(1, 0, 1)), "spacing"), (SynthOptions(contrast=2.0), "contrast")):
        with pytest.raises(SpinelabError, match=message):
            generate_case(0, options)


# ----------------------------------------------------------------------------------------------
# One case per field of view


@pytest.mark.parametrize("fov", FOV_KINDS)
def test_field_of_view_shows_what_it_promises(fov):
    synth = case(11, fov=fov)
    visible = set(synth.centroids.labels.tolist())
    assert visible and synth.info["fov"] == fov
    if fov == "cervical":
        assert visible <= CERVICAL and len(visible) >= 4
    elif fov == "thoracic":
        assert visible <= THORACIC and len(visible) >= 10
    elif fov == "lumbar":
        assert visible <= LUMBAR | {26} and {20, 24, 26} <= visible
    elif fov == "thoracolumbar":
        assert visible & THORACIC and visible & LUMBAR and not visible & CERVICAL
    elif fov == "whole":
        assert visible == {*range(1, 25), 26}
    else:
        assert synth.info["cut_by_fov"], "a partial view cuts at least one vertebra"
        tissue = synth.tissue.canonical().array
        assert (tissue[:, :, [0, -1]] == kernels.BONE).any(), "the crop goes through bone"


def test_full_resolution_spacing_stays_in_the_clinical_ranges_and_orientation_is_honoured():
    synth = generate_case(21, SynthOptions(fov="cervical", max_voxels=1_500_000, orientation=("P", "I", "R"),
                                           pathology=dict(NO_PATHOLOGY)))
    assert synth.ct.axcodes == ("P", "I", "R")
    spacing = np.array(synth.info["spacing_mm"])
    slice_axis = "RAS".index(synth.info["slice_axis"])
    in_plane = np.delete(spacing, slice_axis)
    assert np.all((0.3 <= in_plane) & (in_plane <= 1.0)) and 0.6 <= spacing[slice_axis] <= 5.0
    assert synth.ct.array.size <= 1_500_000


def test_noise_blur_and_calibration_follow_their_options():
    quiet = case(8, fov="lumbar", noise_hu=(0, 0), blur_mm=(0, 0), calibration_hu=(0, 0))
    noisy = case(8, fov="lumbar", noise_hu=(40, 40), blur_mm=(0, 0), calibration_hu=(60, 60))
    soft = quiet.tissue.array == kernels.SOFT
    assert noisy.info["noise_hu"] == 40 and quiet.info["noise_hu"] == 0
    difference = noisy.ct.array[soft].astype(float) - quiet.ct.array[soft]
    assert 50 < difference.mean() < 70 and 30 < difference.std() < 50


# ----------------------------------------------------------------------------------------------
# One case per pathology


def test_l6_case_has_label_25_and_six_lumbar_bodies():
    synth = case(2, fov="lumbar", pathology={**NO_PATHOLOGY, "l6": True})
    assert {20, 21, 22, 23, 24, 25} <= present_labels(synth)
    assert 25 in synth.centroids.labels and synth.info["variants"]["l6"]


def test_t13_case_has_label_28_with_a_rib_and_thirteen_thoracic_vertebrae():
    synth = case(4, fov="whole", pathology={**NO_PATHOLOGY, "t13": True})
    assert 28 in present_labels(synth) and len(present_labels(synth) & THORACIC) == 13
    t13 = synth.centroids.as_dict()[28]
    assert bone_outside_vertebrae(synth, t13, (25, 70), 12) > 0


def test_missing_twelfth_ribs_leave_t12_without_ribs():
    fine = dict(fov="thoracolumbar", spacing=(2.0, 2.0, 2.0), max_voxels=2_500_000)
    with_ribs = case(6, pathology={**NO_PATHOLOGY, "missing_rib12": False}, **fine)
    without = case(6, pathology={**NO_PATHOLOGY, "missing_rib12": True}, **fine)
    t12 = with_ribs.centroids.as_dict()[19]
    assert np.allclose(t12, without.centroids.as_dict()[19])
    ribs = bone_outside_vertebrae(with_ribs, t12, (20, 60), 8)
    assert ribs > 20 and bone_outside_vertebrae(without, t12, (20, 60), 8) < 0.3 * ribs


def test_sacralized_l5_is_fused_to_the_sacrum():
    normal = case(9, fov="lumbar", pathology={**NO_PATHOLOGY, "sacralized_l5": False})
    fused = case(9, fov="lumbar", pathology={**NO_PATHOLOGY, "sacralized_l5": True})

    def contact(synth):
        l5 = synth.labels.array == 24
        sacrum = synth.labels.array == 26
        from scipy import ndimage

        return int((ndimage.binary_dilation(l5) & sacrum).sum())

    assert contact(fused) > 2 * contact(normal) + 5


def test_metal_case_has_ceiling_voxels_in_an_instrumented_pedicle():
    synth = case(12, fov="lumbar", pathology={**NO_PATHOLOGY, "metal": True})
    instrumented = [screw["label"] for screw in synth.info["metal"]]
    assert len(instrumented) >= 2
    ceiling = synth.ct.array == METAL_HU
    assert ceiling.sum() > 20
    assert set(np.unique(synth.labels.array[ceiling]).tolist()) & set(instrumented)


def test_fracture_collapses_the_chosen_body():
    synth = generate_case(13, SynthOptions(resolution="test", fov="lumbar", spacing=(1.0, 1.0, 1.0),
                                           max_voxels=4_000_000, pathology={**NO_PATHOLOGY, "fracture": True}))
    fractured = [int(label) for label in synth.info["fracture"]]
    centroids = synth.centroids.as_dict()
    order = [label for label in synth.centroids.labels if label != 26]

    def height(label):
        index = order.index(label)
        up = centroids[order[max(index - 1, 0)]] - centroids[order[min(index + 1, len(order) - 1)]]
        up /= np.linalg.norm(up)
        anterior = np.array([0.0, 1.0, 0.0]) - up * up[1]
        anterior /= np.linalg.norm(anterior)
        column = centroids[label] + 8.0 * anterior + np.outer(np.arange(-30, 30, 0.25), up)
        return 0.25 * (label_at(synth.labels, column) == label).sum()

    for label in fractured:
        if label in order[1:-1]:
            neighbours = [order[order.index(label) - 1], order[order.index(label) + 1]]
            healthy = [height(n) for n in neighbours if n not in fractured]
            assert height(label) < 0.88 * np.mean(healthy)


def test_scoliosis_case_comes_from_a_scoliotic_real_spine(shared_data):
    synth = case(14, fov="whole", pathology={**NO_PATHOLOGY, "scoliosis": True}, data_dir=shared_data)
    real = [label for label in synth.info["real_levels"]]
    points = synth.centroids.select(real).sorted().world
    spine = shape_model.RealSpine("", np.array(real), points, np.zeros(len(real)))
    assert spine.lateral_deviation > SCOLIOSIS_MM - 3


# ----------------------------------------------------------------------------------------------
# Real geometry and speed


def test_shape_model_steps_match_the_real_spines_and_completion_keeps_measured_levels(shared_data):
    spines = shape_model.load_real_spines(shared_data)
    model = shape_model.load_shape_model()
    real = {}
    for spine in spines:
        for a, b, upper, lower in zip(spine.labels[:-1], spine.labels[1:], spine.centres[:-1], spine.centres[1:]):
            if b == a + 1:
                real.setdefault(int(a), []).append(np.linalg.norm(lower - upper))
    rng = np.random.default_rng(0)
    drawn = np.array([np.linalg.norm(np.diff(shape_model.shape_to_centres(model.sample(rng)), axis=0), axis=1)
                      for _ in range(200)])
    for level, lengths in zip(shape_model.MODEL_LEVELS, drawn.T):
        assert abs(np.median(lengths) - np.median(real[level])) < 1.0, f"step below level {level}"
        assert np.percentile(lengths, 5) > np.percentile(real[level], 5) - 2.0
    for spine in spines[:: len(spines) // 20]:
        centres = shape_model.shape_to_centres(model.sample(rng, spine), spine)
        assert np.allclose(centres[np.searchsorted(shape_model.MODEL_LEVELS, spine.labels)], spine.centres)


def test_without_real_sets_spines_come_from_the_shape_model(monkeypatch, tmp_path):
    monkeypatch.setenv("SPINELAB_DATA", str(tmp_path))
    synth = case(16, fov="whole")
    assert synth.info["source"] == "shape model" and synth.info["real_levels"] == []
    assert set(synth.centroids.labels.tolist()) == {*range(1, 25), 26}


def test_test_resolution_is_a_reduced_grid_of_the_same_case():
    """'test' mode is cheap because it rasterizes far fewer voxels; speed itself is in docs/SYNTH.md."""
    for seed in range(31, 34):
        small, full = case(seed, fov="random"), case(seed, fov="random", resolution="full")
        assert small.ct.array.size * 8 <= full.ct.array.size
        assert small.ct.spacing.min() > full.ct.spacing.min()


# Contrast phases and bone density ---------------------------------------------------------------------------


def _bright_soft_tissue(phase: str, fov: str) -> int:
    """Soft-tissue voxels above 1000 HU (as bright as cortical bone) in one case of ``phase``."""
    options = SynthOptions(fov=fov, resolution="test", contrast=True, contrast_phase=phase,
                           orientation=("R", "A", "S"), pathology={"metal": False})
    case = generate_case(5, options)
    assert case.info["contrast"] == phase
    return int(((case.tissue.array == kernels.SOFT) & (case.ct.array > 1000)).sum())


def test_venous_bolus_fills_the_veins_with_agent_as_bright_as_bone_but_not_bone():
    assert _bright_soft_tissue("venous_bolus", "thoracic") > 20 * max(_bright_soft_tissue("portal", "thoracic"), 1)


def test_excretory_phase_puts_agent_in_the_urinary_tract():
    assert _bright_soft_tissue("excretory", "lumbar") > 20 * max(_bright_soft_tissue("arterial", "lumbar"), 1)


def test_an_unknown_contrast_phase_is_refused():
    with pytest.raises(SpinelabError, match="unknown contrast phase 'delayed'"):
        generate_case(0, SynthOptions(contrast_phase="delayed"))


def test_vertebral_marrow_runs_from_osteoporotic_to_dense():
    from spinelab.synth import anatomy

    marrow = [anatomy.sample_patient(np.random.default_rng(seed), None).cancellous[anatomy.VERTEBRA]
              for seed in range(200)]
    assert min(marrow) < 70 and max(marrow) > 330
    cases = [generate_case(seed, SynthOptions(fov="lumbar", resolution="test", orientation=("R", "A", "S")))
             for seed in range(8)]
    darkest = min(cases, key=lambda c: c.info["patient"]["vertebral_cancellous_hu"])
    below = (darkest.ct.array[darkest.labels.array > 0] < 150).mean()
    assert darkest.info["patient"]["vertebral_cancellous_hu"] < 150 and below > 0.25


# Arm positions and hardware ----------------------------------------------------------------------------------


def _arm_bone(position: str) -> dict[str, int]:
    """Long-bone voxels of one spine's arms painted in ``position``: beside the head (above the
    shoulders), beside the chest (below them) and in front of the belly."""
    from dataclasses import replace

    from spinelab.synth import anatomy, geometry
    from spinelab.synth.canvas import Canvas

    spine = geometry.sample_spine(np.random.default_rng(3), shape_model.default_data_dir(), {})
    patient = replace(anatomy.sample_patient(np.random.default_rng(3), None), arms=position)
    t2, l2 = spine[9], spine[21]
    low, high = t2.centre - [320, 200, 700], t2.centre + [320, 260, 420]
    canvas = Canvas(low, (6.0, 6.0, 6.0), np.ceil((high - low) / 6.0).astype(int))
    anatomy.add_shoulders(canvas, spine, patient, {})
    world = canvas.origin + np.argwhere((canvas.sdf < 0) & (canvas.material == anatomy.LONG)) * canvas.spacing
    lateral = np.abs(world[:, 0] - t2.centre[0]) > 120
    return {"beside the head": int((lateral & (world[:, 2] > t2.centre[2] + 120)).sum()),
            "beside the chest": int((lateral & (world[:, 2] < t2.centre[2] - 120)).sum()),
            "in front of the belly": int(((world[:, 1] > l2.centre[1] + 80) & (np.abs(world[:, 2] - l2.centre[2]) < 150)
                                          & (np.abs(world[:, 0] - l2.centre[0]) < 60)).sum())}


@pytest.mark.parametrize("position, where", [("raised", "beside the head"), ("down", "beside the chest"),
                                             ("crossed", "in front of the belly")])
def test_each_arm_position_puts_the_arm_bones_where_it_says(position, where):
    bone = _arm_bone(position)
    assert bone[where] > 20, bone
    assert sum(bone.values()) - bone[where] - (bone["beside the chest"] if position == "crossed" else 0) < bone[where] / 4


def test_arm_positions_are_drawn_with_their_weights():
    from spinelab.synth import anatomy

    drawn = [anatomy.sample_patient(np.random.default_rng(seed), None).arms for seed in range(400)]
    for position, weight in anatomy.ARM_POSITIONS.items():
        assert abs(drawn.count(position) / len(drawn) - weight) < 0.07


def _hardware_case(name: str, fov: str):
    options = SynthOptions(fov=fov, spacing=(3.0, 3.0, 3.0), orientation=("R", "A", "S"),
                           pathology={**NO_PATHOLOGY, name: True})
    return next(c for c in (generate_case(seed, options) for seed in range(10)) if not c.info["targeted_fov"])


def test_a_hip_prosthesis_is_metal_at_the_hip_joint_below_the_sacrum():
    synth = _hardware_case("hip_prosthesis", "lumbar")
    metal = np.argwhere(synth.tissue.array == kernels.METAL)
    assert synth.info["hardware"]["hip_prosthesis"] and len(metal) > 100
    world = synth.tissue.to_world(metal)
    sacrum = synth.centroids.world[synth.centroids.labels == 26][0]
    assert np.all(world[:, 2] < sacrum[2]) and np.median(np.abs(world[:, 0] - sacrum[0])) > 50
    assert synth.ct.array.max() >= METAL_HU - 1


def test_vertebroplasty_cement_fills_the_treated_body_and_stays_bone():
    synth = _hardware_case("cement", "lumbar")
    treated = synth.info["hardware"]["cement"][0]["label"]
    inside = synth.labels.array == treated
    assert (synth.ct.array[inside] > 1400).mean() > 0.05
    others = (synth.labels.array > 0) & ~inside
    assert (synth.ct.array[others] > 1400).mean() < 0.01
    assert not np.any(synth.tissue.array == kernels.METAL)


def test_ecg_leads_are_small_metal_pads_on_the_front_of_the_chest():
    synth = _hardware_case("leads", "thoracic")
    assert synth.info["hardware"]["leads"] >= 3
    bright = synth.ct.array > 3000
    world = synth.ct.to_world(np.argwhere(bright))
    spine_front = synth.centroids.world[:, 1].max()
    assert bright.sum() > 20 and np.median(world[:, 1]) > spine_front + 60


def test_hardware_leaves_the_rest_of_the_case_unchanged():
    options = dict(fov="lumbar", resolution="test", orientation=("R", "A", "S"))
    plain = case(4, **options, pathology={**NO_PATHOLOGY, "hip_prosthesis": False, "cement": False, "leads": False})
    fitted = case(4, **options, pathology={**NO_PATHOLOGY, "hip_prosthesis": True})
    np.testing.assert_array_equal(plain.labels.array, fitted.labels.array)
    assert np.all(plain.centroids.world == fitted.centroids.world)
    assert plain.info["hardware"] == {} and fitted.info["hardware"]["hip_prosthesis"]
