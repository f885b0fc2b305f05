import numpy as np
import pytest
import torch

from spinelab import vertebrae
from spinelab.vertebrae import class_index
from spinelab.errors import SpinelabError
from spinelab.decoders.sequence import ALPHA, BETA, best_sequence
from spinelab.methods.multiview.sequence_loss import accumulated_probability, probability_matrix, sequence_loss

HAND = [[0.70, 0.10, 0.10, 0.10],
        [0.10, 0.60, 0.20, 0.10],
        [0.05, 0.15, 0.70, 0.10]]


def column(name):
    return class_index(vertebrae.label(name)) - 1


def staircase(names, sharpness=8.0):
    """Probabilities (n, 27) peaked on the given vertebrae."""
    logits = torch.zeros(len(names), 27)
    logits[torch.arange(len(names)), [column(name) for name in names]] = sharpness
    return logits.softmax(dim=1)


def test_hand_computed_3x4_matrix_follows_eq_1_and_2():
    # Row 1 = P. Row 2: j=1 restarts at 0.10; j=2: 0.70 + max(.1*.10, .8*.60, .1*.20) = 1.18;
    #   j=3: 0.10 + max(.1*.60, .8*.20, .1*.10) = 0.26; j=4: 0.10 + max(.1*.20, .8*.10) = 0.18.
    # Row 3: j=1: 0.05; j=2: 0.10 + max(.1*.05, .8*.15, .1*.70) = 0.22;
    #   j=3: 1.18 + max(.1*.15, .8*.70, .1*.10) = 1.74; j=4: 0.26 + max(.1*.70, .8*.10) = 0.34.
    opt = accumulated_probability(torch.tensor(HAND, dtype=torch.float64), skippable=())
    expected = [[0.70, 0.10, 0.10, 0.10], [0.10, 1.18, 0.26, 0.18], [0.05, 0.22, 1.74, 0.34]]
    assert torch.allclose(opt, torch.tensor(expected, dtype=torch.float64))
    loss = sequence_loss(torch.tensor(HAND, dtype=torch.float64), skippable=())
    assert loss.item() == pytest.approx(1 - 1.74 / (BETA * 3))  # = 0.275
    assert (ALPHA, BETA) == (0.1, 0.8)


def test_a_perfect_staircase_scores_one_plus_beta_per_further_row():
    one_hot = torch.eye(5)[:4]
    assert sequence_loss(one_hot, skippable=()).item() == pytest.approx(1 - (1 + 3 * BETA) / (4 * BETA), abs=1e-6)


def test_consecutive_sequence_has_lower_loss_than_a_shuffled_one():
    names = ["T8", "T9", "T10", "T11", "T12", "L1", "L2"]
    shuffled = ["T8", "T11", "T9", "L1", "T10", "L2", "T12"]
    assert sequence_loss(staircase(names)) < sequence_loss(staircase(shuffled)) - 0.3


def test_transitional_vertebrae_may_be_skipped():
    normal = staircase(["T11", "T12", "L1", "L2"])
    with_t13 = staircase(["T11", "T12", "T13", "L1"])
    lumbosacral = staircase(["L4", "L5", "S"])
    assert sequence_loss(normal).item() == pytest.approx(sequence_loss(with_t13).item(), abs=1e-6)
    assert sequence_loss(lumbosacral).item() == pytest.approx(sequence_loss(staircase(["L4", "L5", "L6"])).item(),
                                                             abs=1e-6)
    assert sequence_loss(normal, skippable=()) > sequence_loss(normal) + 0.2


def test_gradients_reach_the_probabilities():
    logits = torch.randn(6, 27, generator=torch.Generator().manual_seed(0), requires_grad=True)
    sequence_loss(logits.softmax(dim=1)).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_batched_losses_match_single_views_and_respect_lengths():
    first, second = staircase(["C3", "C4", "C5", "C6"]), staircase(["L1", "L3"])
    batch = torch.zeros(3, 4, 27)
    batch[0], batch[1, :2] = first, second
    losses = sequence_loss(batch, lengths=[4, 2, 0])
    assert losses.shape == (3,)
    assert losses[0] == pytest.approx(sequence_loss(first).item())
    assert losses[1] == pytest.approx(sequence_loss(second).item())
    assert losses[2] == 0
    with pytest.raises(SpinelabError, match="lengths"):
        sequence_loss(batch, lengths=[5, 1, 1])


def test_probability_matrix_averages_squares_and_drops_background():
    probs = torch.zeros(4, 20, 30)
    probs[0] = 1.0
    probs[:, 5:10, 10:15] = torch.tensor([0.0, 0.2, 0.8, 0.0])[:, None, None]
    probs.requires_grad_(True)
    matrix = probability_matrix(probs, [[12, 7], [25, 15]], square_px=5.0)  # 5 x 5 pixels each
    assert torch.allclose(matrix, torch.tensor([[0.2, 0.8, 0.0], [0.0, 0.0, 0.0]]))
    matrix[0, 1].backward()
    assert probs.grad[2].sum() == pytest.approx(1.0)
    with pytest.raises(SpinelabError, match="outside"):
        probability_matrix(probs, [[50, 50]], square_px=5.0)


def test_best_sequence_is_consecutive_and_needs_enough_classes():
    scores = np.array(HAND)
    assert best_sequence(scores, skippable=()).tolist() == [0, 1, 2]
    with pytest.raises(SpinelabError, match="consecutive"):
        best_sequence(np.ones((5, 4)), skippable=())
