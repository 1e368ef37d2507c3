"""Per-sample randomness: per-step gradient noise is standard normal and independent of the batch."""
import math

import pytest
import torch

from common.randomness import counter_normal, per_sample_normal, sample_keys


def test_counter_normal_is_standard_normal():
    keys = sample_keys(0, "test", range(64), restarts=2)
    z = counter_normal(keys, 3, (50, 41))  # odd size: the last Box-Muller pair is cut
    assert z.shape == (128, 50, 41) and z.dtype == torch.float32 and torch.isfinite(z).all()
    flat = z.flatten().double()
    assert abs(flat.mean()) < 0.01 and abs(flat.std() - 1) < 0.01
    # the normal's mass within 1 and 2 standard deviations, and its fourth moment
    assert abs((flat.abs() < 1).double().mean() - 0.6827) < 0.005
    assert abs((flat.abs() < 2).double().mean() - 0.9545) < 0.003
    assert abs(flat.pow(4).mean() - 3) < 0.05


def test_counter_normal_rows_depend_only_on_key_counter_and_element():
    keys = sample_keys(7, "gradient_noise", [3, 10, 11, 500], restarts=3)
    z = counter_normal(keys, 12, (8, 5))
    assert torch.equal(counter_normal(keys[4:6], 12, (8, 5)), z[4:6])  # batch-independent
    assert torch.equal(counter_normal(keys.flip(0), 12, (8, 5)), z.flip(0))  # order-independent
    assert torch.equal(counter_normal(keys, 12, (8, 5), dtype=torch.float64), z.double())
    other_step = counter_normal(keys, 13, (8, 5))
    corr = torch.corrcoef(torch.stack([z.flatten(), other_step.flatten()]))[0, 1]
    assert abs(corr) < 0.15  # consecutive steps are uncorrelated (480 pairs)
    rows = z.flatten(1)
    assert torch.corrcoef(rows).fill_diagonal_(0).abs().max() < 0.6  # so are rows (40 entries each)


def test_cos_and_sin_halves_are_uncorrelated():
    keys = sample_keys(1, "test", range(256))
    z = counter_normal(keys, 0, (1000,))
    corr = torch.corrcoef(torch.stack([z[:, :500].flatten(), z[:, 500:].flatten()]))[0, 1]
    assert abs(corr) < 0.01


@pytest.mark.parametrize("restarts", [1, 3])
def test_per_sample_normal_is_batch_independent(restarts):
    full = per_sample_normal((4, 2), 5, "init", [0, 1, 2, 9], restarts)
    part = per_sample_normal((4, 2), 5, "init", [2, 9], restarts)
    assert torch.equal(full[2 * restarts:], part)
    assert not torch.equal(full[:restarts], per_sample_normal((4, 2), 6, "init", [0], restarts))
    assert math.isclose(float(full.std()), 1, abs_tol=0.5)
