"""The paper's criteria against hand computation."""

import math

import pytest
import torch

from training.losses import NONE, map_loss, plain_loss


def test_map_loss_equals_the_papers_formula_by_hand():
    y = torch.tensor([[3.0, 0.5, 7.0, 2.0, 9.0, 4.0, 6.0, 8.0, 1.5, 5.0]])
    j = 2.0
    expected = 0.5 + math.log(math.exp(-j) + sum(math.exp(-v) for v in y[0].tolist()))
    assert map_loss(y, torch.tensor([1]), j).item() == pytest.approx(expected)


def test_map_loss_for_a_non_digit_targets_the_none_class():
    y = torch.full((1, 10), 3.0)
    j = 1.0
    expected = j + math.log(math.exp(-j) + 10 * math.exp(-3.0))
    assert map_loss(y, torch.tensor([NONE]), j).item() == pytest.approx(expected)


def test_map_loss_for_non_digits_falls_as_distances_grow():
    near, far = torch.full((1, 10), 10.0), torch.full((1, 10), 100.0)
    target = torch.tensor([NONE])
    assert map_loss(far, target, 84.0) < map_loss(near, target, 84.0)


def test_plain_loss_is_the_mean_correct_class_distance():
    y = torch.tensor([[1.0, 2.0, 3.0] + [9.0] * 7, [4.0, 5.0, 6.0] + [9.0] * 7])
    assert plain_loss(y, torch.tensor([2, 0])).item() == pytest.approx((3.0 + 4.0) / 2)
