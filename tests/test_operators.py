"""Forward operators: every config in conf/operator, their algebra, randomness and bad inputs."""
from __future__ import annotations

from pathlib import Path

import hydra
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from common.errors import UserInputError
from operators import (OPERATORS, CirculantCompressedSensing, ComplexGaussianPhaseRetrieval, Denoising,
                       FourierPhaseRetrieval, GaussianCompressedSensing, GaussianPhaseRetrieval, Inpainting,
                       SuperResolution, build_operator, load_operator, operator_state, save_operator)

CONF = Path(__file__).resolve().parents[1] / "conf" / "operator"
OPERATOR_CONFIGS = sorted(p.stem for p in CONF.glob("*.yaml"))
RANDOM_OPERATORS = {"gaussian_pr", "complex_gaussian_pr", "cs_gaussian", "cs_circulant", "inpainting"}
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
SHAPE = (2, 8, 8)


def make_operator(name: str, seed: int = 0, shape=SHAPE, **overrides):
    """The operator from conf/operator/<name>.yaml, as Hydra instantiates it in a run."""
    cfg = OmegaConf.create({"data": {"channels": shape[0], "image_size": shape[1]}, "seed": seed,
                            "operator": OmegaConf.load(CONF / f"{name}.yaml")})
    cfg.operator = OmegaConf.merge(cfg.operator, overrides)
    return hydra.utils.instantiate(cfg.operator)


def images(n=3, shape=SHAPE, dtype=torch.float32, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, *shape, generator=g, dtype=torch.float64).to(device=device, dtype=dtype)


def randn_like_measurements(op, n, dtype=torch.float64, seed=1, complex_=False):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, *op.measurement_shape, generator=g, dtype=dtype)
    if complex_:
        z = torch.complex(z, torch.randn(n, *op.measurement_shape, generator=g, dtype=dtype))
    return z


def inner(a, b):
    return (a.conj() * b).real.sum() if a.is_complex() else (a * b).sum()


def one_line_error(fn, *match):
    with pytest.raises(UserInputError) as info:
        fn()
    msg = str(info.value)
    assert "\n" not in msg
    for part in match:
        assert part in msg, msg
    return msg


# -- every operator config -------------------------------------------------------------------
def test_configs_cover_every_registered_operator():
    assert set(OPERATOR_CONFIGS) == set(OPERATORS)
    for name in OPERATOR_CONFIGS:
        cfg = OmegaConf.load(CONF / f"{name}.yaml")
        assert list(cfg.keys())[0] == "_target_"
        assert {"input_shape", "seed", "noise_std"} <= set(cfg.keys())
        assert type(make_operator(name)) is OPERATORS[name]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", OPERATOR_CONFIGS)
def test_shapes_dtype_device(name, dtype, device):
    op = make_operator(name).to(device)
    x = images(dtype=dtype, device=device)
    y = op(x)
    assert torch.equal(op.to(dtype)(x), y)  # casting the module keeps its parameters (complex ones too)
    assert y.shape == (3, *op.measurement_shape)
    assert y.dtype == dtype and y.device.type == device
    assert torch.isfinite(y).all()
    err = op.measurement_error(x, y)
    assert err.shape == (3,) and torch.allclose(err, torch.zeros_like(err), atol=1e-10)
    if op.is_phase_retrieval:
        assert (y >= 0).all()


@pytest.mark.parametrize("name", OPERATOR_CONFIGS)
def test_determinism_from_seed(name):
    a, b, c = make_operator(name, seed=5), make_operator(name, seed=5), make_operator(name, seed=6)
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key])
    x = images()
    assert torch.equal(a(x), b(x))
    if name in RANDOM_OPERATORS:
        assert not torch.equal(a(x), c(x))


@pytest.mark.parametrize("name", OPERATOR_CONFIGS)
def test_linearity_and_adjoint(name):
    op = make_operator(name)
    x1, x2 = images(2, dtype=torch.float64), images(2, dtype=torch.float64, seed=1) - 0.5
    if op.is_linear:
        assert torch.allclose(op(2.0 * x1 - 3.0 * x2), 2.0 * op(x1) - 3.0 * op(x2), atol=1e-12)
        y = randn_like_measurements(op, 2)
        assert torch.allclose(inner(op(x1), y), inner(x1, op.adjoint(y)), rtol=1e-10)
    else:  # phase retrieval: y = |linear(x)|, adjoint of the linear part for real x
        assert op.is_phase_retrieval
        assert torch.allclose(op(x1), op.linear(x1).abs())
        z = randn_like_measurements(op, 2, complex_=op.linear(x1).is_complex())
        assert torch.allclose(inner(op.linear(x1), z), inner(x1, op.adjoint(z)), rtol=1e-10)


@pytest.mark.parametrize("name", OPERATOR_CONFIGS)
def test_gradients_flow(name):
    op = make_operator(name)
    x = images().requires_grad_(True)
    y = op(images(seed=3)).detach()
    op.measurement_error(x, y).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("name", OPERATOR_CONFIGS)
def test_save_load_round_trip(name, tmp_path):
    op = make_operator(name, seed=11)
    save_operator(op, tmp_path / "op.pt")
    loaded = load_operator(tmp_path / "op.pt")
    assert type(loaded) is type(op) and loaded.spec() == op.spec()
    for key, value in op.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key])
    x = images()
    assert torch.equal(loaded(x), op(x))
    state = operator_state(op)
    assert torch.equal(build_operator(state["spec"], state["state_dict"])(x), op(x))


@pytest.mark.parametrize("name", OPERATOR_CONFIGS)
def test_noise_model(name):
    op = make_operator(name, noise_std=0.3)
    x = images()
    eps = randn_like_measurements(op, 3, dtype=torch.float32)
    y = op.measure(x, eps)
    expected = op(x) + 0.3 * eps
    if op.is_phase_retrieval:
        expected = expected.clamp_min(0)  # magnitudes stay magnitudes
    if name == "inpainting":
        expected = expected * op.mask  # unobserved pixels carry no measurement, not even noise
    assert torch.allclose(y, expected)
    with pytest.raises(ValueError):
        op.measure(x)  # noisy operators need the caller's per-sample eps


# -- operator-specific behaviour ---------------------------------------------------------------
def test_gaussian_entry_scale():
    real = GaussianPhaseRetrieval((1, 16, 16), m=400)
    cplx = ComplexGaussianPhaseRetrieval((1, 16, 16), m=400)
    cs = GaussianCompressedSensing((1, 16, 16), m=400)
    m = 400
    for a in (real.matrix, cs.matrix):
        assert a.shape == (400, 256) and not a.is_complex()
        assert abs(a.var().item() * m - 1) < 0.05 and abs(a.mean().item()) * m**0.5 < 0.05
    a = cplx.matrix
    assert a.shape == (400, 256) and a.is_complex()
    for part in (a.real, a.imag):
        assert abs(part.var().item() * 2 * m - 1) < 0.05
    assert abs((a.real * a.imag).mean().item()) * 2 * m < 0.05  # independent parts
    assert not torch.equal(real.A, cs.A)  # each operator draws from its own stream
    x = images(2, (1, 16, 16), dtype=torch.float64)
    assert torch.allclose(cplx(x), (x.flatten(1).to(a.dtype) @ a.T).abs().to(x.dtype), atol=1e-6)


def test_measurement_count_from_m_or_ratio():
    assert GaussianPhaseRetrieval((1, 10, 10), m=37).measurement_shape == (37,)
    assert GaussianPhaseRetrieval((1, 10, 10), ratio=0.25).measurement_shape == (25,)
    assert GaussianPhaseRetrieval((1, 10, 10), ratio=8).measurement_shape == (800,)
    assert CirculantCompressedSensing((3, 10, 10), ratio=0.5).measurement_shape == (150,)


def test_circulant_equals_dense_matrix():
    op = CirculantCompressedSensing((2, 6, 5), ratio=0.4, seed=2)
    dense = op.dense_matrix().double()
    x = images(3, (2, 6, 5), dtype=torch.float64)
    assert torch.allclose(op(x), x.flatten(1) @ dense.T, atol=1e-12)
    y = randn_like_measurements(op, 3)
    assert torch.allclose(op.adjoint(y).flatten(1), y @ dense, atol=1e-12)
    # structure: signs are ±1, the circulant rows are shifts of g, rows are a sorted subset
    assert set(op.signs.unique().tolist()) == {-1.0, 1.0}
    assert torch.equal(op.rows, op.rows.unique()) and op.rows.numel() == op.m


def test_circulant_scales_to_256x256x3():
    op = CirculantCompressedSensing((3, 256, 256), ratio=0.1)
    x = images(2, (3, 256, 256))
    y = op(x)
    assert y.shape == (2, 19661) and torch.isfinite(y).all()
    back = op.adjoint(y)
    assert back.shape == x.shape
    assert torch.allclose(inner(y.double(), y.double()), inner(x.double(), back.double()), rtol=1e-4)


def test_fourier_normalisation_and_oversampling():
    x = images(2, (3, 8, 8), dtype=torch.float64)
    op = FourierPhaseRetrieval((3, 8, 8))
    assert op.measurement_shape == (3, 8, 8) and op.support.all()
    assert torch.allclose(op(x).flatten(1).norm(dim=1), x.flatten(1).norm(dim=1))  # ortho: Parseval
    assert torch.allclose(op(x), torch.fft.fft2(x, norm="ortho").abs())
    over = FourierPhaseRetrieval((3, 8, 8), oversampling=2)
    assert over.measurement_shape == (3, 16, 16) and over.support.sum() == 64 and over.support[:8, :8].all()
    assert torch.allclose(over.pseudo_inverse(over.linear(x)), x)
    assert torch.allclose(over(x), torch.fft.fft2(F.pad(x, (0, 8, 0, 8)), norm="ortho").abs())
    for norm in ("backward", "forward"):
        op = FourierPhaseRetrieval((3, 8, 8), oversampling=1.5, norm=norm)
        assert op.measurement_shape == (3, 12, 12)
        z = randn_like_measurements(op, 2, complex_=True)
        assert torch.allclose(inner(op.linear(x), z), inner(x, op.adjoint(z)))
        assert torch.allclose(op.pseudo_inverse(op.linear(x)), x)


def test_phase_retrieval_error_is_on_magnitudes():
    op = FourierPhaseRetrieval((1, 4, 4))
    x = images(2, (1, 4, 4), dtype=torch.float64)
    y = op(x) + 0.1
    assert torch.allclose(op.measurement_error(x, y), torch.full((2,), 0.01, dtype=torch.float64))


def test_inpainting_masks():
    op = Inpainting((3, 10, 10), mask_type="random", observed_ratio=0.3)
    assert op.mask.shape == (1, 10, 10) and op.mask.sum() == 30
    x = images(2, (3, 10, 10))
    y = op(x)
    assert torch.equal(y, x * op.mask) and torch.equal(y[:, 0] == 0, y[:, 1] == 0)  # shared over channels
    box = Inpainting((1, 10, 10), mask_type="box", box_size=[4, 2])
    assert box.box_position == [3, 4] and box.mask[0, 3:7, 4:6].sum() == 0 and box.mask.sum() == 92
    placed = Inpainting((1, 10, 10), mask_type="box", box_size=[2, 2], box_position=[0, 8])
    assert placed.mask[0, :2, 8:].sum() == 0
    # the error is a mean over observed entries only
    err = op.measurement_error(x + 0.5, y)
    assert torch.allclose(err, torch.full((2,), 0.25))
    given = Inpainting((1, 4, 4), mask_type="given", mask=torch.eye(4))
    assert torch.equal(given.mask[0], torch.eye(4))
    rebuilt = build_operator(given.spec(), given.state_dict())
    assert torch.equal(rebuilt.mask, given.mask)


def test_super_resolution_modes():
    x = images(2, (3, 8, 8), dtype=torch.float64)
    avg = SuperResolution((3, 8, 8), factor=2, mode="avgpool")
    assert torch.allclose(avg(x), x.view(2, 3, 4, 2, 4, 2).mean(dim=(3, 5)))
    bicubic = SuperResolution((3, 8, 8), factor=4, mode="bicubic")
    assert bicubic(x).shape == (2, 3, 2, 2)
    assert torch.allclose(bicubic(torch.full_like(x, 0.7)), torch.full((2, 3, 2, 2), 0.7, dtype=torch.float64))
    assert not torch.allclose(bicubic(x), SuperResolution((3, 8, 8), factor=4, mode="avgpool")(x))


def test_denoising_is_identity_plus_noise():
    op = Denoising((1, 4, 4), noise_std=0.2)
    x, eps = images(2, (1, 4, 4)), torch.randn(2, 1, 4, 4)
    assert torch.equal(op(x), x) and torch.allclose(op.measure(x, eps), x + 0.2 * eps)


# -- bad input: one clear line ------------------------------------------------------------------
@pytest.mark.parametrize("name", OPERATOR_CONFIGS)
def test_measurements_that_do_not_fit(name):
    op = make_operator(name)
    y = op(images())
    op.check_measurements(y)
    one_line_error(lambda: op.check_measurements(y[:, :-1] if y.dim() == 2 else y[..., :-1]), "do not fit")
    bad = y.clone()
    bad.view(-1)[0] = float("nan")
    one_line_error(lambda: op.check_measurements(bad), "NaN")
    one_line_error(lambda: op.measure(images(shape=(1, 8, 8))), "inputs of shape")


@pytest.mark.parametrize("name", ["fourier_pr", "gaussian_pr", "complex_gaussian_pr"])
def test_negative_magnitudes_refused(name):
    op = make_operator(name)
    y = op(images())
    y.view(-1)[3] = -0.1
    one_line_error(lambda: op.check_measurements(y), "magnitudes")


@pytest.mark.parametrize("kwargs, match", [
    ({"m": 0}, "positive integer"), ({"m": -3}, "positive integer"), ({"m": 2.5}, "positive integer"),
    ({"ratio": 0.0}, "ratio"), ({"ratio": -1.0}, "ratio"), ({"ratio": float("inf")}, "ratio"),
    ({"ratio": 1e-6}, "no measurement"), ({}, "both are null"), ({"m": 0, "ratio": 0.5}, "positive integer"),
])
@pytest.mark.parametrize("cls", [GaussianPhaseRetrieval, ComplexGaussianPhaseRetrieval, GaussianCompressedSensing,
                                 CirculantCompressedSensing])
def test_bad_measurement_counts(cls, kwargs, match):
    one_line_error(lambda: cls((1, 8, 8), **kwargs), match)


@pytest.mark.parametrize("cls", [GaussianPhaseRetrieval, ComplexGaussianPhaseRetrieval, GaussianCompressedSensing,
                                 CirculantCompressedSensing])
def test_m_given_wins_over_the_configured_ratio(cls):
    op = cls((1, 8, 8), m=20, ratio=0.5)  # operator.m=20 on the command line, ratio from the config file
    assert op.m == 20 and op.spec()["m"] == 20 and op.spec()["ratio"] is None
    assert cls((1, 8, 8), ratio=0.5).m == 32


@pytest.mark.parametrize("build, match", [
    (lambda: FourierPhaseRetrieval((1, 8, 8), oversampling=0.5), "oversampling"),
    (lambda: FourierPhaseRetrieval((1, 8, 8), norm="unitary"), "norm"),
    (lambda: SuperResolution((1, 10, 10), factor=4), "does not divide"),
    (lambda: SuperResolution((1, 8, 8), factor=0), "positive integer"),
    (lambda: SuperResolution((1, 8, 8), mode="nearest"), "mode"),
    (lambda: Inpainting((1, 8, 8), mask_type="given", mask=torch.ones(7, 8)), "does not fit"),
    (lambda: Inpainting((1, 8, 8), mask_type="given", mask=torch.full((8, 8), 0.5)), "0 (missing) or 1"),
    (lambda: Inpainting((1, 8, 8), mask_type="given"), "needs a mask"),
    (lambda: Inpainting((1, 8, 8), observed_ratio=1.5), "observed_ratio"),
    (lambda: Inpainting((1, 8, 8), mask_type="box", box_size=[4, 4], box_position=[6, 0]), "does not fit"),
    (lambda: Inpainting((1, 8, 8), mask_type="box"), "box_size"),
    (lambda: Inpainting((1, 8, 8), mask_type="stripes"), "mask_type"),
    (lambda: Denoising((1, 8, 8), noise_std=-1), "noise_std"),
    (lambda: build_operator({"name": "blur", "input_shape": [1, 8, 8]}), "unknown operator"),
    (lambda: build_operator({"name": "denoising", "input_shape": [1, 8, 8], "sigma": 2}), "bad arguments"),
])
def test_bad_operator_arguments(build, match):
    one_line_error(build, match)


def test_bad_operator_files(tmp_path):
    one_line_error(lambda: load_operator(tmp_path / "missing.pt"), "does not exist")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    one_line_error(lambda: load_operator(tmp_path / "junk.pt"), "could not be read")
    torch.save({"y": torch.zeros(3)}, tmp_path / "other.pt")
    one_line_error(lambda: load_operator(tmp_path / "other.pt"), "not a saved operator")
    small = operator_state(GaussianPhaseRetrieval((1, 4, 4), m=10))
    spec = {**small["spec"], "m": 12}
    one_line_error(lambda: build_operator(spec, small["state_dict"]), "do not fit")
