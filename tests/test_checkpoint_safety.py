"""Files are data: a prior, encoder or operator file can name only the project's own classes with
plain-data arguments; crafted configs are refused before anything is called, and no file is touched."""
import shutil

import pytest
import torch

from common.checkpoint import BUILDABLE, ENCODER_FORMAT, PRIOR_FORMAT, build
from common.errors import UserInputError
from operators import FourierPhaseRetrieval, load_operator, operator_state
from priors.io import load_prior
from priors.vae import VAE
from solvers.learned_init import LearnedInit, load_encoder


class _CopiesOnUnpickle:
    """A pickle that copies a file when loaded with weights_only=False."""

    def __init__(self, src, dst):
        self.src, self.dst = str(src), str(dst)

    def __reduce__(self):
        return shutil.copyfile, (self.src, self.dst)


@pytest.fixture
def files(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    keep = tmp_path / "keep.txt"
    keep.write_text("precious")
    victim = tmp_path / "victim.txt"
    evil = tmp_path / "evil.pt"
    torch.save(_CopiesOnUnpickle(secret, victim), evil)
    return {"secret": secret, "keep": keep, "victim": victim, "evil": evil, "tmp": tmp_path}


def crafted_configs(f):
    """Stored configs that ran code under the old hydra-instantiate loader (each touched a file)."""
    vae = {"_target_": "priors.vae.VAE", "image_shape": [1, 28, 28], "latent_dim": 8, "hidden_dim": 32}
    return {
        "Path.write_text": {"_target_": "pathlib.Path.write_text", "data": "pwned",
                            "self": {"_target_": "pathlib.Path", "_args_": [str(f["victim"])]}},
        "shutil.copyfile": {"_target_": "shutil.copyfile", "src": str(f["secret"]), "dst": str(f["victim"])},
        "truncate": {"_target_": "shutil.copyfile", "src": "/dev/null", "dst": str(f["keep"])},
        "torch.load": {"_target_": "torch.load", "f": str(f["evil"]), "weights_only": False},
        "nested _target_": {**vae, "latent_dim": {"_target_": "shutil.copyfile", "src": str(f["secret"]),
                                                  "dst": str(f["victim"])}},
        "nested _target_ in a list": {**vae, "image_shape": [
            {"_target_": "shutil.copyfile", "src": str(f["secret"]), "dst": str(f["victim"])}, 28, 28]},
        "_args_": {"_target_": "shutil.copyfile", "_args_": [str(f["secret"]), str(f["victim"])]},
        "_args_ on an allowed class": {**vae, "_args_": [[1, 28, 28]]},
        "_partial_": {"_target_": "shutil.copyfile", "_partial_": True, "src": str(f["secret"])},
        "_recursive_": {**vae, "_recursive_": False},
        "unknown argument": {**vae, "dst": str(f["victim"])},
    }


def untouched(f):
    return not f["victim"].exists() and f["keep"].read_text() == "precious" and f["secret"].read_text() == "secret"


def vae_weights():
    return VAE((1, 28, 28), latent_dim=8, hidden_dim=32).state_dict()


CASES = sorted(crafted_configs({k: "x" for k in ("secret", "victim", "evil", "keep")}))


@pytest.mark.parametrize("case", CASES)
def test_crafted_prior_file_is_refused_and_touches_nothing(files, case):
    path = files["tmp"] / "prior.pt"
    torch.save({"format": PRIOR_FORMAT, "prior_config": crafted_configs(files)[case], "state_dict": vae_weights(),
                "extra": {}}, path)
    with pytest.raises(UserInputError) as err:
        load_prior(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)
    assert untouched(files)


@pytest.mark.parametrize("case", ["Path.write_text", "torch.load", "nested _target_", "_args_"])
def test_crafted_lightning_checkpoint_is_refused(files, case):
    path = files["tmp"] / "last.ckpt"
    torch.save({"pytorch-lightning_version": "2.6.0", "epoch": 0, "global_step": 1,
                "state_dict": {f"prior.{k}": v for k, v in vae_weights().items()},
                "hyper_parameters": {"prior": crafted_configs(files)[case]}}, path)
    with pytest.raises(UserInputError):
        load_prior(path)
    assert untouched(files)


@pytest.mark.parametrize("case", CASES)
def test_crafted_encoder_file_is_refused_and_touches_nothing(files, case):
    path = files["tmp"] / "encoder.pt"
    record = {"format": ENCODER_FORMAT, "encoder_config": crafted_configs(files)[case], "state_dict": {},
              "prior": {"path": "p.pt", "fingerprint": "0" * 64, "describe": {}},
              "operator": {"spec": {"name": "fourier_pr"}, "state_dict": {}, "fingerprint": "0" * 64}, "extra": {}}
    torch.save(record, path)
    with pytest.raises(UserInputError) as err:
        load_encoder(path)
    assert "\n" not in str(err.value)
    with pytest.raises(UserInputError):
        LearnedInit(path).encoder()
    assert untouched(files)


def test_a_pickled_object_is_refused_by_the_reader(files):
    for loader in (load_prior, load_encoder, load_operator):
        with pytest.raises(UserInputError, match="could not be read"):
            loader(files["evil"])
    assert untouched(files)


def test_operator_spec_arguments_must_be_plain_data(files, tmp_path):
    state = operator_state(FourierPhaseRetrieval((1, 8, 8)))
    state["spec"]["oversampling"] = {"_target_": "shutil.copyfile", "src": str(files["secret"]),
                                     "dst": str(files["victim"])}
    torch.save(state, tmp_path / "op.pt")
    with pytest.raises(UserInputError, match="Hydra keys"):
        load_operator(tmp_path / "op.pt")
    assert untouched(files)


def test_allowlisted_classes_build_from_plain_configs():
    for kind, paths in BUILDABLE.items():
        assert paths and all(p.count(".") >= 2 for p in paths)
    vae = build({"_target_": "priors.vae.VAE", "image_shape": [1, 8, 8], "latent_dim": 3, "hidden_dim": 4}, "prior",
                "test")
    assert isinstance(vae, VAE) and vae.latent_shape == (3,)
    with pytest.raises(UserInputError, match="are built from files only as one of"):
        build({"_target_": "priors.encoders.MLPEncoder", "measurement_shape": [4], "latent_shape": [2]}, "prior", "t")


def test_an_encoder_with_nan_weights_is_refused(tmp_path):
    from operators import FourierPhaseRetrieval
    from priors.encoders import MLPEncoder
    from solvers.learned_init import save_encoder

    prior = VAE((1, 8, 8), latent_dim=3, hidden_dim=4)
    encoder = MLPEncoder([1, 8, 8], [3], hidden=[4])
    with torch.no_grad():
        encoder.net[0].weight[0, 0] = float("inf")
    config = {"_target_": "priors.encoders.MLPEncoder", "measurement_shape": [1, 8, 8], "latent_shape": [3],
              "hidden": [4]}
    save_encoder(tmp_path / "e.pt", config, encoder, prior, "p.pt", FourierPhaseRetrieval((1, 8, 8)))
    with pytest.raises(UserInputError, match=r"NaN/Inf weights in 1 tensor\(s\) \(net.0.weight\)"):
        load_encoder(tmp_path / "e.pt")
