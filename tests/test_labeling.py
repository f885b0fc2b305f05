import numpy as np
import pytest

from spinelab import vertebrae
from spinelab.decoders import consecutive_labels as correct_sequence
from spinelab.methods.multiview.fusion import FusedVertebra
from spinelab.methods.multiview.voting import identify, view_sequence_loss, view_weights, weighted_vote
from spinelab.vertebrae import class_index


def rows(names, confidence=0.9):
    """Probability rows (n, 27) putting ``confidence`` on each named vertebra, the rest spread evenly."""
    matrix = np.full((len(names), 27), (1 - confidence) / 26)
    for row, name in enumerate(names):
        matrix[row, class_index(vertebrae.label(name)) - 1] = confidence
    return matrix


def names(labels):
    return [vertebrae.name(label) for label in labels]


def test_one_wrong_label_is_corrected_to_the_consecutive_run():
    predicted = rows(["T10", "T11", "L3", "L1", "L2"])
    assert names(correct_sequence(predicted)) == ["T10", "T11", "T12", "L1", "L2"]


def test_transitional_vertebrae_are_kept_or_skipped():
    assert names(correct_sequence(rows(["T11", "T12", "T13", "L1"]))) == ["T11", "T12", "T13", "L1"]
    assert names(correct_sequence(rows(["T11", "T12", "L1", "L2"]))) == ["T11", "T12", "L1", "L2"]
    assert names(correct_sequence(rows(["L4", "L5", "S"]))) == ["L4", "L5", "S"]
    assert names(correct_sequence(rows(["L4", "L5", "L6", "S"]))) == ["L4", "L5", "L6", "S"]


def test_view_weights_follow_eq_6():
    weights = view_weights([0.2, 0.6, 1.0])
    assert np.allclose(weights, [0.8, 0.4, 0.0] / np.float64(1.2))
    assert np.allclose(view_weights([1.0, 1.0]), [0.5, 0.5])


def test_weighted_vote_is_the_weighted_sum_and_renormalizes_missing_views():
    probabilities = np.random.default_rng(0).dirichlet(np.ones(27), size=(3, 4))
    losses = np.array([0.1, 0.5, 0.3])
    weights = (1 - losses) / (1 - losses).sum()
    assert np.allclose(weighted_vote(probabilities, losses), np.einsum("k,knc->nc", weights, probabilities))
    present = np.ones((3, 4), bool)
    present[1, 2] = False
    voted = weighted_vote(probabilities, losses, present)
    others = weights[[0, 2]] / weights[[0, 2]].sum()
    assert np.allclose(voted[2], others @ probabilities[[0, 2], 2])
    assert np.allclose(voted[0], weights @ probabilities[:, 0])


def test_view_sequence_loss_sorts_detections_head_to_foot():
    probabilities = rows(["L2", "L1", "T12"])
    points = [[50, 90], [52, 60], [51, 30]]  # rows: L2 lowest on the image
    assert view_sequence_loss(probabilities, points) < view_sequence_loss(probabilities, [[0, 0], [0, 1], [0, 2]])


def test_identify_votes_down_views_with_a_broken_sequence():
    truth = ["T12", "L1", "L2", "L3"]
    good = rows(truth, 0.5)
    bad = rows(["L2", "T12", "L3", "L1"], 0.7)  # more confident, but not a sequence
    view_probabilities = [good, good, bad, bad]
    losses = [view_sequence_loss(p, [[0, r] for r in range(4)]) for p in view_probabilities]
    assert losses[2] > losses[0]
    stack = np.stack(view_probabilities)
    column_names = [vertebrae.name(v) for v in vertebrae.PREDICTED_LABELS]
    assert [column_names[c] for c in stack.mean(axis=0).argmax(axis=1)] != truth  # a plain vote goes wrong
    assert [column_names[c] for c in weighted_vote(stack, losses).argmax(axis=1)] == truth
    fused = [FusedVertebra(np.zeros(3), np.arange(4), np.full(4, i), np.zeros(4)) for i in range(4)]
    labels, confidence = identify(fused, view_probabilities, losses)
    assert names(labels) == truth
    assert np.allclose(confidence, weighted_vote(stack, losses).max(axis=1))
    assert identify([], view_probabilities, losses)[0].size == 0


def test_a_missed_vertebra_leaves_a_gap_instead_of_shifting_labels():
    observed = rows(["C1", "C2", "C4", "C5", "C6"])  # C3 was not detected
    assert names(correct_sequence(observed)) != ["C1", "C2", "C4", "C5", "C6"]  # eq. 1 alone must shift some
    assert names(correct_sequence(observed, gap_penalty=0.5)) == ["C1", "C2", "C4", "C5", "C6"]
    # A gap is no way around a single wrong label, and a full run needs none.
    assert names(correct_sequence(rows(["T10", "T11", "L3", "L1", "L2"]), gap_penalty=0.5)) == \
        ["T10", "T11", "T12", "L1", "L2"]
    assert names(correct_sequence(rows(["T11", "T12", "L1", "L2"]), gap_penalty=0.5)) == ["T11", "T12", "L1", "L2"]


def _column(names_, steps_mm):
    """Fused vertebrae of one view, straight down the S axis ``steps_mm`` apart."""
    heights = -np.concatenate([[0.0], np.cumsum(steps_mm)])
    return [FusedVertebra(np.array([0.0, 0.0, z]), np.array([0]), np.array([i]), np.zeros(1))
            for i, z in enumerate(heights)]


def test_spacing_lets_the_labels_step_over_several_missed_vertebrae():
    step = vertebrae.MEAN_STEP_MM
    seen = ["C2", "C3", "C7", "T1"]  # C4-C6 were not detected: C3 -> C7 spans four real steps
    gaps = [step[2], sum(step[label] for label in (3, 4, 5, 6)), step[7]]
    fused, probabilities = _column(seen, gaps), [rows(seen, 0.5)]
    assert names(identify(fused, probabilities, [0.0], gap_penalty=0.5)[0]) != seen  # one skip is not enough
    assert names(identify(fused, probabilities, [0.0], gap_penalty=0.5, spacing=True)[0]) == seen


def test_spacing_of_one_step_each_changes_no_label():
    expected = {("T10", "T11", "L3", "L1", "L2"): ["T10", "T11", "T12", "L1", "L2"],
                ("T11", "T12", "T13", "L1"): ["T11", "T12", "T13", "L1"],
                ("T11", "T12", "L1", "L2"): ["T11", "T12", "L1", "L2"],
                ("L4", "L5", "L6", "S"): ["L4", "L5", "L6", "S"], ("L4", "L5", "S"): ["L4", "L5", "S"]}
    for voted, truth in expected.items():
        gaps = [vertebrae.MEAN_STEP_MM[vertebrae.label(name)] for name in truth[:-1]]
        labels = identify(_column(truth, gaps), [rows(list(voted))], [0.0], gap_penalty=0.5, spacing=True)[0]
        assert names(labels) == truth


def test_mean_steps_are_those_of_the_real_spines():
    from spinelab.synth.shape_model import default_data_dir, load_real_spines

    data = default_data_dir()
    if data is None:
        pytest.skip("../shared/data is not beside the checkout")
    steps = {}
    for spine in load_real_spines(data):
        for (upper, lower), (a, b) in zip(zip(spine.labels, spine.labels[1:]), zip(spine.centres, spine.centres[1:])):
            if lower == upper + 1:
                steps.setdefault(int(upper), []).append(float(np.linalg.norm(b - a)))
    for label in range(2, 24):  # C2 -> C3 .. L4 -> L5
        assert vertebrae.MEAN_STEP_MM[label] == pytest.approx(np.mean(steps[label]), abs=0.1), vertebrae.name(label)


def test_a_vertebra_found_twice_is_merged_where_the_spacing_says_so():
    from spinelab.methods.multiview.voting import merge_repeats

    voted = ["L2", "L3", "L3", "L4"]  # L3 found once per endplate, 12 mm apart
    gaps = [vertebrae.MEAN_STEP_MM[21] - 6.0, 12.0, vertebrae.MEAN_STEP_MM[22] - 6.0]
    fused, probabilities = _column(voted, gaps), [rows(voted, 0.6)]
    assert names(identify(fused, probabilities, [0.0], gap_penalty=0.5)[0]) != ["L2", "L3", "L3", "L4"]
    labels, confidence = identify(fused, probabilities, [0.0], gap_penalty=0.5, spacing=True)
    assert names(labels) == voted
    merged, labels, confidence = merge_repeats(fused, labels, confidence)
    assert names(labels) == ["L2", "L3", "L4"] and len(confidence) == 3
    assert np.allclose(merged[1].point, (fused[1].point + fused[2].point) / 2)
    assert merged[1].detections.tolist() == [1, 2] and merged[1].support == 1
    # One step apart, two detections voted alike are two vertebrae, not one.
    spaced = _column(["L3", "L3"], [vertebrae.MEAN_STEP_MM[22]])
    assert len(set(identify(spaced, [rows(["L3", "L3"], 0.9)], [0.0], gap_penalty=0.5, spacing=True)[0])) == 2
