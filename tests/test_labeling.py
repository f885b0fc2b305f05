import numpy as np

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
