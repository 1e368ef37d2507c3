"""RTIL section 5 as a test: a two-layer linear generator, vanilla vs RTIL training, ILO on compressed measurements.

True signals x = W1*(W0* z0 + z1) with z0 ~ N(0, I_n0), z1 ~ N(0, I_n1), n0 < n1 <= m < nd,
W0* known. Training (infinite data, least squares) fits W1 with z1 ignored (eq. 6, vanilla:
minimum-norm solution) or with z1 fed to the model (eq. 7, RTIL). ILO (eq. 5) then fits z0
by least squares and afterwards z1, each by gradient descent from a N(0, I) start. Lemma 5.2:
the RTIL model recovers x exactly, the vanilla one has an error bounded away from zero.
Everything is float64 and closed form where the paper is; ILO runs plain gradient steps.
"""
from __future__ import annotations

import torch

N0, N1, ND, M = 3, 6, 12, 8
torch.set_num_threads(1)


def setup(seed=0):
    g = torch.Generator().manual_seed(seed)
    w0 = torch.randn(N1, N0, generator=g, dtype=torch.float64)
    w1 = torch.randn(ND, N1, generator=g, dtype=torch.float64)
    a = torch.randn(M, ND, generator=g, dtype=torch.float64)
    return w0, w1, a, g


def second_moments(w0, w1, rtil: bool):
    """(E[u u^T], E[x u^T]) for the model input u = W0 z0 (+ z1 under RTIL) and target x."""
    eye = torch.eye(N1, dtype=torch.float64)
    uu = w0 @ w0.T + (eye if rtil else 0)
    xu = w1 @ (w0 @ w0.T + (eye if rtil else 0))  # E[W1*(W0 z0 + z1) u^T]
    return uu, xu


def train_by_gradient_descent(w0, w1, rtil: bool, steps=20000):
    """Gradient descent on the population loss from W1 = 0 (converges to the minimum-norm solution)."""
    uu, xu = second_moments(w0, w1, rtil)
    lr = 1.0 / torch.linalg.matrix_norm(uu, ord=2)
    w = torch.zeros(ND, N1, dtype=torch.float64)
    for _ in range(steps):
        w = w - lr * (w @ uu - xu)
    return w


def least_squares_by_gradient_descent(b, r, start, steps=20000):
    """argmin_z |r - B z|² by gradient descent from ``start`` (columns are independent problems)."""
    lr = 1.0 / torch.linalg.matrix_norm(b, ord=2) ** 2
    z = start.clone()
    for _ in range(steps):
        z = z + lr * b.T @ (r - b @ z)
    return z


def ilo(w0, w1_model, a, y, g):
    """Eq. 5: z0 = argmin |y - A W1 W0 z0|², then z1 = argmin |y - A W1 (W0 z0 + z1)|², N(0, I) starts."""
    n = y.shape[1]
    z0 = least_squares_by_gradient_descent(a @ w1_model @ w0, y, torch.randn(N0, n, generator=g, dtype=torch.float64))
    r = y - a @ w1_model @ w0 @ z0
    z1 = least_squares_by_gradient_descent(a @ w1_model, r, torch.randn(N1, n, generator=g, dtype=torch.float64))
    return w1_model @ (w0 @ z0 + z1)


def test_training_recovers_lemma_5_1():
    w0, w1, _, _ = setup()
    vanilla, rtil = train_by_gradient_descent(w0, w1, False), train_by_gradient_descent(w0, w1, True)
    assert torch.allclose(rtil, w1, atol=1e-8)  # unique RTIL solution W1*
    assert torch.allclose(vanilla @ w0, w1 @ w0, atol=1e-8)  # vanilla agrees with W1* on range(W0*)
    assert torch.allclose(vanilla, w1 @ w0 @ torch.linalg.pinv(w0), atol=1e-8)  # lemma A.1 (minimum norm)
    assert not torch.allclose(vanilla, w1, atol=1e-2)  # … and not off it


def test_ilo_recovers_the_signal_with_rtil_but_not_with_vanilla_training():
    w0, w1, a, g = setup()
    n = 400
    x_true = w1 @ (w0 @ torch.randn(N0, n, generator=g, dtype=torch.float64)
                   + torch.randn(N1, n, generator=g, dtype=torch.float64))
    y = a @ x_true
    errors = {}
    for name, rtil in (("vanilla", False), ("rtil", True)):
        x_hat = ilo(w0, train_by_gradient_descent(w0, w1, rtil), a, y, g)
        errors[name] = (x_hat - x_true).pow(2).sum(0).mean()
    # eq. 9: zero error for RTIL
    assert errors["rtil"] < 1e-12 * x_true.pow(2).sum(0).mean()
    # eq. 8: E = |W1* - W1* W0* M1|_F^2 with M1 = (A W1* W0*)^+ A W1*, at least the range bound, > 0
    m1 = torch.linalg.pinv(a @ w1 @ w0) @ a @ w1
    expected = torch.linalg.matrix_norm(w1 - w1 @ w0 @ m1) ** 2
    proj = (w1 @ w0) @ torch.linalg.pinv(w1 @ w0)
    null = torch.linalg.svd(w0.T).Vh[N0:].T  # orthonormal basis of range(W0*)^perp
    bound = torch.linalg.matrix_norm((torch.eye(ND, dtype=torch.float64) - proj) @ w1 @ null, ord=2) ** 2
    assert bound > 0.1 and expected >= bound
    assert abs(errors["vanilla"] / expected - 1) < 0.2  # Monte-Carlo mean over 400 signals
    assert errors["vanilla"] > 1e6 * errors["rtil"]
