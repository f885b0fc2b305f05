"""Dice and Hausdorff distance per vertebra of label maps (``spinelab evaluate --label-maps``)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from spinelab.eval.segmentation import evaluate_label_maps, score_label_maps
from spinelab.io.images import write_nifti
from spinelab.io.volume import CTVolume


def _maps():
    """GT: L1 a 4 x 4 x 4 cube, L2 a 4 x 4 x 2 slab below it, on 2 mm voxels. Prediction: L1 one voxel layer
    taller (4 x 4 x 5), L2 missing, T12 where GT has nothing."""
    gt = np.zeros((10, 10, 12), dtype=np.int16)
    gt[2:6, 2:6, 4:8] = 20
    gt[2:6, 2:6, 1:3] = 21
    pred = np.zeros_like(gt)
    pred[2:6, 2:6, 4:9] = 20
    pred[7:9, 7:9, 9:11] = 19
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    return CTVolume(pred, affine), CTVolume(gt, affine)


def test_dice_and_hausdorff_of_hand_made_masks():
    pred, gt = _maps()
    scores, false_positives = score_label_maps(pred, gt)
    dice, hausdorff = scores[20]
    assert dice == pytest.approx(2 * 64 / (64 + 80))
    assert hausdorff == pytest.approx(2.0)  # the extra layer is one 2 mm voxel from the cube
    assert scores[21] == (0.0, None) and false_positives == [19]


def test_a_prediction_stored_in_another_axis_order_scores_the_same():
    pred, gt = _maps()
    flipped = pred.reoriented(("P", "I", "L"))
    assert score_label_maps(flipped, gt)[0] == score_label_maps(pred, gt)[0]


def test_the_evaluate_command_scores_label_map_folders(tmp_path):
    pred, gt = _maps()
    (tmp_path / "pred").mkdir()
    (tmp_path / "gt").mkdir()
    write_nifti(pred, tmp_path / "pred" / "case1_seg-vert_msk.nii.gz", dtype="int16")
    write_nifti(gt, tmp_path / "gt" / "case1_seg-vert_msk.nii.gz", dtype="int16")
    metrics, unmatched_pred, unmatched_gt = evaluate_label_maps(tmp_path / "pred", tmp_path / "gt")
    assert metrics.summary()["vertebrae"] == 2 and not unmatched_pred and not unmatched_gt
    out = tmp_path / "metrics.json"
    result = subprocess.run([sys.executable, "-m", "spinelab", "evaluate", str(tmp_path / "pred"), str(tmp_path / "gt"),
                             "--label-maps", "--out", str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    written = json.loads(out.read_text())
    assert written["cases"]["case1"]["L1"]["dice"] == pytest.approx(2 * 64 / 144)
    assert written["overall"]["dice"] == pytest.approx(64 / 144) and written["false_positives"] == {"case1": ["T12"]}
