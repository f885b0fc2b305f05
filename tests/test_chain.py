"""The column test (``spinelab.decoders.chain``): candidates off the vertebral column are dropped."""

from __future__ import annotations

import numpy as np
import pytest

from spinelab.decoders.chain import MAX_DEVIATION_MM, segment_deviations, smooth_chain
from spinelab.io.centroids import Centroids
from spinelab.methods.base import on_column


def straight_spine(count=10, step=25.0) -> np.ndarray:
    """Centroids down a gently curved column, superior first."""
    z = -step * np.arange(count)
    return np.stack([5.0 * np.sin(z / 80.0), 0.002 * z**2 / 10, z], axis=1)


def test_segment_deviation_is_the_distance_to_the_segment_not_the_line():
    points = np.array([[0.0, 0.0, 0.0], [3.0, 4.0, -10.0], [0.0, 0.0, -20.0], [0.0, 0.0, 10.0]])
    deviations = segment_deviations(points)
    assert deviations[0, 1, 2] == pytest.approx(5.0)
    assert deviations[0, 3, 2] == pytest.approx(10.0)  # beyond the segment's end: the distance to that end


def test_a_candidate_in_the_heart_is_dropped_and_the_column_kept():
    spine = straight_spine()
    heart = spine[5] + [0.0, 95.0, 8.0]  # in front of the column, between two levels
    points = np.insert(spine, 6, heart, axis=0)
    keep = smooth_chain(points)
    assert keep.tolist() == [True] * 6 + [False] + [True] * 4


def test_two_neighbouring_false_candidates_do_not_pull_the_column_off():
    spine = straight_spine()
    points = np.insert(spine, 5, [spine[4] + [0, 90, -10], spine[4] + [0, 92, -14]], axis=0)
    keep = smooth_chain(points)
    assert keep.sum() == len(spine) and not keep[5:7].any()


def test_a_missed_vertebra_and_a_surer_rib_head_beside_a_level():
    spine = np.delete(straight_spine(), 4, axis=0)  # one level missed: a 50 mm step stays on the column
    rib_head = spine[2] + [35.0, 5.0, -3.0]  # at the third level's height, beside it
    points = np.insert(spine, 3, rib_head, axis=0)
    keep = smooth_chain(points, scores=np.r_[np.full(3, 0.6), 0.9, np.full(len(spine) - 3, 0.6)])
    assert not keep[3] and keep.sum() == len(spine)


def test_no_candidate_and_one_candidate_are_chains():
    assert smooth_chain(np.zeros((0, 3))).tolist() == []
    assert smooth_chain([[1.0, 2.0, 3.0]]).tolist() == [True]
    with pytest.raises(Exception, match="non-negative scores"):
        smooth_chain(straight_spine(3), scores=[1.0, -1.0, 1.0])


def test_on_column_orders_by_label_and_says_what_it_dropped():
    spine = straight_spine(6)
    labels = [15, 16, 17, 18, 19, 20]  # T8..L1
    shuffled = [3, 0, 5, 1, 4, 2]
    found = Centroids([labels[i] for i in shuffled] + [21], np.vstack([spine[shuffled], spine[5] + [0, 80, -20]]),
                      np.r_[np.full(6, 0.7), 0.9])
    details = {}
    kept = on_column(found, details, MAX_DEVIATION_MM)
    assert kept.labels.tolist() == labels and details["off_column"] == ["L2"]
    assert len(on_column(found, {}, None)) == 7


def test_real_spines_stay_whole_under_the_default_bound():
    from spinelab.synth.shape_model import default_data_dir, load_real_spines

    data = default_data_dir()
    if data is None:
        pytest.skip("../shared/data is not beside the checkout")
    spines = load_real_spines(data)
    whole = [smooth_chain(spine.centres).all() for spine in spines]
    assert np.mean(whole) > 0.995, f"{len(whole) - sum(whole)} of {len(whole)} real spines lose a vertebra"
