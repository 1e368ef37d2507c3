"""Per-sample randomness: per-step gradient noise is standard normal and independent of the batch."""
import math

import pytest
import torch

from common.randomness import TableNormal, _normal_table, counter_normal, per_sample_normal, sample_keys


def assert_standard_normal(z, shape):
    assert z.shape == shape and z.dtype == torch.float32 and torch.isfinite(z).all()
    flat = z.flatten().double()
    assert abs(flat.mean()) < 0.01 and abs(flat.std() - 1) < 0.01
    # the normal's mass within 1 and 2 standard deviations, and its fourth moment
    assert abs((flat.abs() < 1).double().mean() - 0.6827) < 0.005
    assert abs((flat.abs() < 2).double().mean() - 0.9545) < 0.003
    assert abs(flat.pow(4).mean() - 3) < 0.05


def test_counter_normal_is_standard_normal():
    keys = sample_keys(0, "test", range(64), restarts=2)
    assert_standard_normal(counter_normal(keys, 3, (50, 41)), (128, 50, 41))  # odd size: the last Box-Muller pair is cut


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


def test_table_normal_is_standard_normal_and_draws_are_distinct_entries():
    keys = sample_keys(0, "test", range(64), restarts=2)
    noise = TableNormal(keys, (50, 41))
    z = noise.sample(3)
    assert_standard_normal(z, (128, 50, 41))
    # each row is one window of consecutive (so distinct) table entries
    table, offsets = _normal_table(noise.MIN_SIZE, torch.device("cpu")), noise.offsets(3)
    assert all(torch.equal(z[b].flatten(), table[o:o + 50 * 41]) for b, o in enumerate(offsets.tolist()))
    lag1 = torch.corrcoef(torch.stack([z.flatten(1)[:, :-1].flatten(), z.flatten(1)[:, 1:].flatten()]))[0, 1]
    assert abs(lag1) < 0.01


def test_table_normal_rows_depend_only_on_key_and_counter():
    keys = sample_keys(7, "gradient_noise", [3, 10, 11, 500], restarts=3)
    z = TableNormal(keys, (8, 5)).sample(12)
    assert torch.equal(TableNormal(keys[4:6], (8, 5)).sample(12), z[4:6])  # batch-independent
    assert torch.equal(TableNormal(keys.flip(0), (8, 5)).sample(12), z.flip(0))  # order-independent
    assert torch.equal(TableNormal(keys, (8, 5)).sample(12, dtype=torch.float64), z.double())
    steps = torch.stack([TableNormal(keys, (8, 5)).sample(k).flatten() for k in range(12, 40)])
    corr = torch.corrcoef(steps).fill_diagonal_(0)
    assert corr.abs().max() < 0.25  # draws of other steps are uncorrelated (480 entries each)
    assert torch.corrcoef(z.flatten(1)).fill_diagonal_(0).abs().max() < 0.6  # so are rows (40 entries)
    offsets = TableNormal(keys, (8, 5)).offsets(12)
    assert len(torch.unique(offsets)) == len(keys)


def test_table_normal_add_is_target_plus_scaled_sample():
    keys = sample_keys(1, "test", range(6))
    noise = TableNormal(keys, (3, 4))
    target = torch.randn(6, 3, 4, dtype=torch.float64)
    expected = target + 0.3 * noise.sample(5).double()
    assert noise.add_(target, 5, alpha=0.3) is target
    assert torch.allclose(target, expected, atol=1e-15, rtol=0)
    strided = torch.zeros(6, 4, 3).transpose(1, 2)  # a non-contiguous target
    assert torch.equal(noise.add_(strided, 5), noise.sample(5))


def test_table_normal_offsets_of_many_counters_are_those_of_each():
    noise = TableNormal(sample_keys(2, "test", range(5), restarts=2), (7,))
    counters = [0, 3, 1 << 30, (5 << 24) + 2]
    many = noise.offsets(counters)
    assert many.shape == (4, 10)
    assert all(torch.equal(many[i], noise.offsets(c)) for i, c in enumerate(counters))
    target = torch.zeros(10, 7)
    assert torch.equal(noise.add_(target, many[1]), noise.sample(3))
