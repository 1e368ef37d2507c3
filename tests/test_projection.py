import pytest
import torch

from solvers.projection import L1Ball, project_l1_ball


def brute_force_l1_projection(v, c, r, grid=None):
    """Projection by minimising ||x - v||^2 over the l1 ball with a fine LP-free search.

    For small d the projection is soft-thresholding by some theta >= 0; scan theta densely
    and keep the feasible point closest to v (independent of Duchi's sort-based rule).
    """
    d = v - c
    if d.abs().sum() <= r:
        return v.clone()
    thetas = torch.linspace(0, float(d.abs().max()), 200001, dtype=torch.float64)
    w = d.sign()[None] * (d.abs()[None] - thetas[:, None]).clamp_min(0)
    feasible = w.abs().sum(1) <= r + 1e-12
    dist = ((w - d[None]) ** 2).sum(1)
    dist[~feasible] = float("inf")
    return c + w[dist.argmin()]


@pytest.mark.parametrize("d,radius", [(3, 0.5), (5, 1.0), (8, 2.5), (4, 10.0)])
def test_projection_matches_brute_force(d, radius):
    g = torch.Generator().manual_seed(d)
    v = torch.randn(6, d, generator=g, dtype=torch.float64) * 2
    c = torch.randn(6, d, generator=g, dtype=torch.float64)
    p = project_l1_ball(v, c, radius)
    for i in range(6):
        expected = brute_force_l1_projection(v[i], c[i], radius)
        assert torch.allclose(p[i], expected, atol=1e-4)


def test_projection_properties_batched_and_per_row_radius():
    g = torch.Generator().manual_seed(0)
    v = torch.randn(32, 3, 4, 4, generator=g, dtype=torch.float64) * 3
    c = torch.zeros_like(v)
    r = torch.linspace(0.5, 60, 32, dtype=torch.float64)
    p = project_l1_ball(v, c, r)
    norms = p.flatten(1).abs().sum(1)
    inside = v.flatten(1).abs().sum(1) <= r
    assert torch.all(norms <= r + 1e-9)
    assert torch.equal(p[inside], v[inside])  # points inside are untouched
    assert torch.allclose(norms[~inside], r[~inside])  # others land on the sphere
    # idempotent, and rows are independent of the rest of the batch
    assert torch.allclose(project_l1_ball(p, c, r), p)
    assert torch.allclose(project_l1_ball(v[5:6], c[5:6], r[5:6]), p[5:6])


def test_projection_is_closest_point_among_random_feasible_points():
    g = torch.Generator().manual_seed(1)
    v = torch.randn(1, 6, generator=g, dtype=torch.float64) * 4
    p = project_l1_ball(v, torch.zeros_like(v), 1.5)
    cand = torch.randn(20000, 6, generator=g, dtype=torch.float64)
    cand = cand / cand.abs().sum(1, keepdim=True) * 1.5 * torch.rand(20000, 1, generator=g, dtype=torch.float64)
    assert ((cand - v) ** 2).sum(1).min() >= ((p - v) ** 2).sum() - 1e-12


def test_warm_started_ball_is_exact_from_any_start_and_survives_nan_rows():
    g = torch.Generator().manual_seed(2)
    c = torch.randn(8, 30, generator=g, dtype=torch.float64)
    ball = L1Ball(c, 5.0)
    for start in (None, torch.full((8, 1), 100.0, dtype=torch.float64), torch.zeros(8, 1, dtype=torch.float64)):
        ball.theta = start
        v = c + torch.randn(8, 30, generator=g, dtype=torch.float64)
        v[3] = c[3] + 0.01  # inside the ball
        v[5, 7] = float("nan")  # a diverged row
        expected = project_l1_ball(v, c, 5.0)
        out = ball.project_(v)
        assert out is v  # in place, for optimiser parameters
        finite = torch.arange(8) != 5
        assert torch.allclose(out[finite], expected[finite], atol=1e-12)
        on_sphere = [0, 1, 2, 4, 6, 7]
        assert torch.allclose((out[on_sphere] - c[on_sphere]).abs().sum(1), torch.full((6,), 5.0, dtype=torch.float64))
        assert torch.equal(out[3], c[3] + 0.01)
        for i in range(8):
            if i != 5:
                assert torch.allclose(out[i], brute_force_l1_projection(expected[i], c[i], 5.0), atol=1e-4)


def test_vanishing_radius_in_float32_lands_on_the_center():
    """Radius far below float32 resolution: the threshold rounds up to max |d_i|, nothing stays active,
    and the iteration still stops (at the center, up to rounding)."""
    g = torch.Generator().manual_seed(3)
    c = torch.randn(16, 40, generator=g)
    ball = L1Ball(c, 1e-12)
    for _ in range(3):
        v = c + 0.1 * torch.randn(16, 40, generator=g)
        out = ball.project_(v)
        assert torch.allclose(out, c, atol=1e-6)
        assert torch.allclose(project_l1_ball(v.clone(), c, 1e-12), c, atol=1e-6)


@pytest.mark.parametrize("fused_kernels", [False, pytest.param(True, marks=pytest.mark.slow)])  # True: torch.compile
def test_rows_starting_on_or_far_from_their_root_end_where_a_cold_start_ends(fused_kernels, monkeypatch):
    """Most rows start on their root and stop at once (certified by the fused round); a few start
    far off and need several rounds; every row ends where a cold start ends."""
    from common import fused

    monkeypatch.setattr(fused, "MIN_NUMEL", 0)  # compiled kernels even at this size

    g = torch.Generator().manual_seed(4)
    c = torch.randn(64, 30, generator=g, dtype=torch.float64)
    v = c + torch.randn(64, 30, generator=g, dtype=torch.float64)
    expected = project_l1_ball(v, c, 5.0)
    ball = L1Ball(c, 5.0)
    ball.project_(v.clone())
    start = ball.theta.clone()
    start[[5, 17, 40]] = 0.0  # far left of the root: several rounds
    fused.set_enabled(fused_kernels)
    try:
        ball.theta = start
        out = ball.project_(v.clone())
    finally:
        fused.set_enabled(None)
    assert torch.allclose(out, expected, atol=1e-12)
    for i in (5, 17, 40):
        assert torch.allclose(out[i], brute_force_l1_projection(v[i], c[i], 5.0), atol=1e-4)


def test_a_row_does_not_depend_on_the_rows_batched_with_it():
    """Rows that need few Newton rounds stop there, whatever the other rows need: a batch of rows
    is projected bit for bit as each row alone (results do not depend on batch size)."""
    torch.manual_seed(0)
    v = torch.randn(64, 500) * torch.logspace(-1, 2, 64)[:, None]  # rows needing different numbers of rounds
    center = torch.zeros_like(v)
    together = project_l1_ball(v, center, 5.0)
    alone = torch.cat([project_l1_ball(v[i:i + 1], center[i:i + 1], 5.0) for i in range(64)])
    assert torch.equal(together, alone)
