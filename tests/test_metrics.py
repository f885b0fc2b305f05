import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from spinelab import vertebrae
from spinelab.cli import evaluate as evaluate_cli
from spinelab.eval import pairing
from spinelab.errors import SpinelabError
from spinelab.eval.metrics import evaluate_dataset, evaluate_scan
from spinelab.io.centroids import Centroids
from spinelab.io.datasets import write_verse_case
from spinelab.io.formats import read_centroids, write_centroids
from spinelab.io.images import write_nifti
from spinelab.io.volume import CTVolume

L1, L2, L3, T12 = (vertebrae.label(n) for n in ("L1", "L2", "L3", "T12"))


def spine(labels, spacing=30.0, offsets=None) -> Centroids:
    """Centroids stacked along -z (skull to tail) ``spacing`` mm apart, optionally displaced per vertebra."""
    labels = vertebrae.sort_anatomically(labels)
    world = np.array([[0.0, 0.0, -spacing * i] for i in range(len(labels))])
    if offsets is not None:
        world = world + np.asarray(offsets, dtype=float)
    return Centroids(labels, world)


def at_z(positions: dict[int, float]) -> Centroids:
    return Centroids.from_dict({label: (0.0, 0.0, z) for label, z in positions.items()})


def test_perfect_prediction_scores_everything():
    gt = spine(range(1, 27))
    metrics = evaluate_scan(gt, gt).overall
    assert (metrics.n_gt, metrics.verse_hits, metrics.csi_hits) == (26, 26, 26)
    assert metrics.verse_id_rate == metrics.csi_id_rate == metrics.precision == metrics.recall == 1.0
    assert metrics.error_stats() == {"mean": 0.0, "std": 0.0, "median": 0.0, "max": 0.0}


def test_labels_shifted_by_one_are_detected_but_not_identified():
    gt = spine(range(8, 25))  # T1-L5
    shifted = Centroids(gt.labels[1:], gt.world[:-1])  # T1..L4 found, each named as the vertebra below
    metrics = evaluate_scan(shifted, gt)
    overall = metrics.overall
    assert overall.verse_hits == overall.csi_hits == 0
    assert overall.precision == 1.0
    assert overall.recall == pytest.approx(16 / 17)
    np.testing.assert_allclose(overall.errors, 30.0)
    record = {r.label: r for r in metrics.records}[L2]
    assert record.nearest_gt_label == L1


def test_verse_and_csi_differ_on_a_stray_prediction_near_the_vertebra():
    gt = at_z({L1: 0.0, L2: -30.0})
    # L1 is predicted 12 mm low (its nearest GT is still L1), but a stray T12 sits 2 mm from GT L1.
    pred = at_z({T12: -2.0, L1: -12.0, L2: -30.0})
    records = {r.label: r for r in evaluate_scan(pred, gt).records}
    assert records[L1].verse_hit and not records[L1].csi_hit
    assert records[L2].verse_hit and records[L2].csi_hit
    assert records[T12].gt is None and not records[T12].verse_hit


def test_verse_requires_the_prediction_to_be_closest_to_its_own_vertebra():
    gt = at_z({L1: 0.0, L2: -30.0})
    # L1 predicted 16 mm low: within 20 mm, but GT L2 (14 mm) is nearer, so VerSe says not identified;
    # seen from GT L1 the nearest prediction is the L1 one, so CSI2014 counts it.
    pred = at_z({L1: -16.0, L2: -45.0})
    record = {r.label: r for r in evaluate_scan(pred, gt).records}[L1]
    assert not record.verse_hit and record.csi_hit
    assert record.error == pytest.approx(16.0)


@pytest.mark.parametrize(("offset", "hit"), [(19.9, True), (20.0, False), (20.1, False)])
def test_identification_needs_a_distance_below_the_threshold(offset, hit):
    gt = at_z({L1: 0.0})
    pred = Centroids([L1], [[offset, 0.0, 0.0]])
    overall = evaluate_scan(pred, gt).overall
    assert (overall.verse_hits, overall.csi_hits, overall.recall) == (hit, hit, float(hit))


def test_detection_pairs_one_to_one_by_minimum_total_distance():
    gt = at_z({L1: 0.0, L2: -15.0})
    # A greedy match would give the middle prediction to L2 (7 mm) and leave L1 with nothing within 20 mm.
    pred = at_z({L3: -8.0, T12: -24.0})
    overall = evaluate_scan(pred, gt).overall
    assert (overall.gt_detected, overall.pred_detected) == (2, 2)
    assert overall.precision == overall.recall == 1.0
    assert overall.verse_hits == overall.csi_hits == 0


def test_extra_and_missing_vertebrae_lower_precision_and_recall():
    gt = spine([L1, L2, L3])
    pred = Centroids([L1, L2, T12], [gt.world[0], gt.world[1], [0.0, 200.0, 0.0]])
    overall = evaluate_scan(pred, gt).overall
    assert overall.precision == pytest.approx(2 / 3)
    assert overall.recall == pytest.approx(2 / 3)
    assert overall.verse_id_rate == pytest.approx(2 / 3)
    assert len(overall.errors) == 2


def test_empty_prediction_or_ground_truth():
    gt = spine([L1, L2])
    nothing = evaluate_scan(Centroids.empty(), gt).overall
    assert (nothing.verse_id_rate, nothing.csi_id_rate, nothing.recall, nothing.precision) == (0.0, 0.0, 0.0, None)
    no_gt = evaluate_scan(gt, Centroids.empty()).overall
    assert (no_gt.verse_id_rate, no_gt.precision) == (None, 0.0)
    json.dumps(evaluate_scan(Centroids.empty(), Centroids.empty()).to_dict())


def test_errors_per_region_and_label():
    gt = spine(range(1, 25))  # C1-L5
    offsets = np.zeros((24, 3))
    offsets[19:24, 0] = 3.0  # L1-L5 off by 3 mm in x
    offsets[0, 1] = 4.0  # C1 off by 4 mm in y
    metrics = evaluate_scan(spine(range(1, 25), offsets=offsets), gt)
    regions = metrics.by_region()
    assert list(regions) == ["cervical", "thoracic", "lumbar"]
    assert regions["lumbar"].error_stats()["mean"] == pytest.approx(3.0)
    assert regions["thoracic"].error_stats()["max"] == 0.0
    cervical = regions["cervical"].error_stats()
    assert cervical["mean"] == pytest.approx(4.0 / 7)
    assert cervical["median"] == 0.0
    assert cervical["std"] == pytest.approx(np.std([4.0, 0, 0, 0, 0, 0, 0]))
    assert metrics.by_label()[1].error_stats()["mean"] == pytest.approx(4.0)
    table = metrics.format_table()
    assert [line.split()[0] for line in table.splitlines()[1:5]] == ["cervical", "thoracic", "lumbar", "overall"]


def test_dataset_rates_pool_vertebrae_not_scans():
    long_gt = spine(range(8, 20))  # 12 thoracic vertebrae, all right
    short_gt = spine([L1, L2])
    wrong = Centroids(short_gt.labels[::-1], short_gt.world)  # swapped labels
    dataset = evaluate_dataset({"long": (long_gt, long_gt), "short": (wrong, short_gt)})
    assert dataset.overall.n_gt == 14
    assert dataset.overall.verse_id_rate == pytest.approx(12 / 14)
    assert dataset.scans["short"].overall.verse_id_rate == 0.0
    np.testing.assert_allclose(sorted(dataset.overall.errors), [0.0] * 12 + [30.0, 30.0])
    result = json.loads(json.dumps(dataset.to_dict()))
    assert result["n_scans"] == 2
    assert result["overall"]["verse_hits"] == 12
    assert result["labels"]["L1"]["verse_id_rate"] == 0.0
    assert result["scans"]["short"]["vertebrae"][0]["nearest_gt"] == "L2"  # predicted L1 sits on L2
    assert "L2" in dataset.format_table(by_label=True)


def test_metrics_do_not_depend_on_the_world_frame():
    gt = spine(range(15, 26))
    pred = spine(range(15, 26), offsets=np.random.default_rng(0).normal(0, 8, (11, 3)))
    angle = np.deg2rad(35)
    motion = np.eye(4)
    motion[:3, :3] = [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
    motion[:3, 3] = [100.0, -40.0, 900.0]
    before = evaluate_scan(pred, gt).overall
    after = evaluate_scan(pred.transformed(motion), gt.transformed(motion)).overall
    counts = ("verse_hits", "csi_hits", "gt_detected", "pred_detected")
    assert [getattr(before, c) for c in counts] == [getattr(after, c) for c in counts]
    np.testing.assert_allclose(before.errors, after.errors)


# ---------------------------------------------------------------------------------------------------------------
# spinelab evaluate

SHARED_DATA = Path(__file__).parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def in_tmp_folder(tmp_path, monkeypatch):
    """``evaluate`` writes spinelab_metrics.json to the working folder by default."""
    monkeypatch.chdir(tmp_path)


def run_evaluate(*argv) -> int:
    parser = argparse.ArgumentParser()
    evaluate_cli.register(parser.add_subparsers())
    args = parser.parse_args(["evaluate", *map(str, argv)])
    return args.func(args)


def mask_grid(path: Path) -> CTVolume:
    """A small label map stored P-I-R with anisotropic voxels: only its grid matters."""
    affine = np.array([[0, 0, 0.9, -40.0], [-1.5, 0, 0, 70.0], [0, -2.0, 0, 150.0], [0, 0, 0, 1]])
    grid = CTVolume(np.zeros((60, 160, 90), np.uint8), affine, str(path))
    write_nifti(grid, path)
    return grid


def test_evaluate_folders_pairs_cases_and_reads_voxel_files_on_the_grid_next_to_them(tmp_path, capsys):
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir()
    truth = spine(range(18, 25), spacing=28.0, offsets=[[0.0, 10.0, 80.0]] * 7)  # T11-L5
    grid = mask_grid(gt_dir / "case1_seg-vert_msk.nii.gz")
    write_centroids(truth, gt_dir / "case1_seg-subreg_ctd.json", reference=grid)  # voxel coordinates
    write_centroids(truth, gt_dir / "case2_seg-subreg_ctd.json", reference=grid)
    (gt_dir / "case2_seg-vert_msk.nii.gz").symlink_to(gt_dir / "case1_seg-vert_msk.nii.gz")
    moved = Centroids(truth.labels, truth.world + [3.0, 0.0, 4.0])  # 5 mm off
    write_centroids(moved, pred_dir / "case1.csv")
    write_centroids(moved, pred_dir / "case2.mrk.json")
    write_centroids(Centroids(truth.labels[::-1], truth.world), pred_dir / "case2_ctd.json", reference=grid)
    write_centroids(moved, pred_dir / "stray.csv")

    assert run_evaluate(pred_dir, gt_dir, "--out", tmp_path / "metrics.json") == 0
    printed = capsys.readouterr()
    assert "1 prediction file(s) without a partner, not scored: stray.csv" in printed.err
    assert "2 case(s), 14 ground-truth" in printed.out
    result = json.loads((tmp_path / "metrics.json").read_text())
    assert sorted(result["scans"]) == ["case1", "case2"]
    # case2's Slicer file wins over its (label-reversed) _ctd.json; both cases are 5 mm off everywhere.
    assert result["overall"]["verse_id_rate"] == 1.0
    assert result["overall"]["error_mm"]["mean"] == pytest.approx(5.0)
    assert result["overall"]["error_mm"]["max"] == pytest.approx(5.0)
    assert result["unmatched"]["pred"] == [str(pred_dir / "stray.csv")]


def test_evaluate_single_files_with_an_explicit_reference(tmp_path, capsys):
    grid = mask_grid(tmp_path / "grid.nii.gz")
    truth = spine([L1, L2, L3])
    write_centroids(truth, tmp_path / "truth_ctd.json", reference=grid)
    write_centroids(Centroids([L1, L2], truth.world[:2]), tmp_path / "pred.csv")
    with pytest.raises(SpinelabError, match="--reference"):
        run_evaluate(tmp_path / "pred.csv", tmp_path / "truth_ctd.json")
    assert run_evaluate(tmp_path / "pred.csv", tmp_path / "truth_ctd.json", "--reference",
                        tmp_path / "grid.nii.gz") == 0
    overall_row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("overall"))
    assert overall_row.split()[1:4] == ["3", "2", "66.7%"]


def test_evaluate_refuses_folders_without_a_common_case(tmp_path):
    for folder, name in (("pred", "a.csv"), ("gt", "b.csv")):
        write_centroids(spine([L1]), tmp_path / folder / name)
    with pytest.raises(SpinelabError, match="no case matches"):
        run_evaluate(tmp_path / "pred", tmp_path / "gt")
    with pytest.raises(SpinelabError, match="two centroid files or two folders"):
        run_evaluate(tmp_path / "pred" / "a.csv", tmp_path / "gt")


def test_evaluate_against_a_dataset_root_reads_voxel_predictions_on_each_case_ct(tmp_path, capsys):
    root, pred_dir = tmp_path / "dataset", tmp_path / "pred"
    truth = spine(range(18, 25), spacing=28.0, offsets=[[0.0, 10.0, 80.0]] * 7)  # T11-L5
    moved = Centroids(truth.labels, truth.world + [3.0, 0.0, 4.0])  # 5 mm off
    grids = {"case1": np.diag([1.0, 1.0, 2.0, 1.0]),
             "case2": np.array([[0, 0, 0.9, -40.0], [-1.5, 0, 0, 70.0], [0, -2.0, 0, 150.0], [0, 0, 0, 1]])}
    for case, affine in [*grids.items(), ("case3", np.eye(4))]:
        write_verse_case(root, case, CTVolume(np.zeros((6, 8, 5), np.int16), affine), truth)
    write_centroids(moved, pred_dir / "sub-case1.mrk.json")
    # VerSe JSON holds voxel indices on case2's CT, which only the dataset's rawdata/ has.
    write_centroids(moved, pred_dir / "sub-case2_ctd.json", reference=CTVolume(np.zeros((6, 8, 5)), grids["case2"]))

    assert run_evaluate(pred_dir, root, "--out", tmp_path / "metrics.json") == 0
    unmatched = "1 ground-truth file(s) without a partner, not scored: sub-case3_seg-subreg_ctd.json"
    assert unmatched in capsys.readouterr().err
    result = json.loads((tmp_path / "metrics.json").read_text())
    assert sorted(result["scans"]) == ["sub-case1", "sub-case2"]
    assert result["overall"]["verse_id_rate"] == 1.0
    assert result["overall"]["error_mm"]["max"] == pytest.approx(5.0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SpinelabError, match="holds no centroid files, nor a VerSe or CSI 2014 dataset"):
        run_evaluate(pred_dir, tmp_path / "empty")


def test_case_ids_strip_the_centroid_suffix():
    names = ["sub-verse004_seg-subreg_ctd.json", "sub-verse004_ctd.json", "sub-verse004.mrk.json",
             "sub-verse004.csv", "sub-verse004_iso-ctd.json", "sub-verse004.lml"]
    assert {pairing.case_id(name) for name in names} == {"sub-verse004"}


def test_evaluate_reads_the_shared_verse_cases_on_their_masks(tmp_path):
    folder = SHARED_DATA / "verse_masks"
    if not folder.is_dir():
        pytest.skip(f"shared VerSe data not found at {folder}")
    truths = pairing.centroid_files(folder)
    assert sorted(path.name for path in truths.values()) == sorted(p.name for p in folder.glob("*_seg-subreg_ctd.json"))
    assert len(truths) == 4  # the BIDS sidecars (sub-verse004_ct.json) are not centroid files
    for case, path in truths.items():
        truth = read_centroids(path, reference=pairing.image_grid(pairing.case_image(case, folder)))
        write_centroids(Centroids(truth.labels, truth.world + [0.0, 6.0, 8.0]), tmp_path / f"{case}.csv")
    metrics, unmatched_pred, unmatched_gt = pairing.evaluate_paths(tmp_path, folder)
    assert sorted(metrics.scans) == sorted(truths)
    assert unmatched_pred == unmatched_gt == []
    assert metrics.overall.verse_id_rate == 1.0
    np.testing.assert_allclose(metrics.overall.errors, 10.0)


def test_a_model_report_rewritten_for_some_models_keeps_the_others_sections(tmp_path):
    from spinelab.eval.report import write_model_report

    doc = tmp_path / "SETTINGS.md"
    head = ["# Settings", "", "How they were chosen.", ""]
    write_model_report(doc, head, {"dense": ["## dense: **on**", "", "old dense", ""],
                                   "scnet": ["## scnet: **off**", "", "scnet table", ""]})
    write_model_report(doc, head, {"dense": ["## dense: **off**", "", "new dense", ""],
                                   "di2in": ["## di2in: **30 mm**", "", "di2in table", ""]})
    text = doc.read_text()
    assert text.startswith("# Settings\n\nHow they were chosen.\n\n## dense: **off**")
    assert "old dense" not in text and "new dense" in text and "scnet table" in text
    assert text.index("## scnet") < text.index("## di2in"), "a kept section stays where it was"
