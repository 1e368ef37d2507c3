"""Progressive GAN: architecture, fade-in, growing schedule and resume, training with RTIL, rosinality files, CLI."""
from __future__ import annotations

import math
import sys
import types
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from hydra import compose, initialize_config_dir
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader

from common.errors import UserInputError
from common.instantiate import instantiate
from lightning_modules.progressive import GrowthSchedule, ProgressiveGANModule
from priors.io import load_prior
from priors.pggan import PGGANPrior, load_rosinality_pggan, pggan_widths
from tests.cli import run_inprocess

torch.set_num_threads(1)

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
PRIOR = dict(_target_="priors.pggan.PGGANPrior", size=16, channels=1, latent_dim=8, max_channels=8, channel_base=64)
DISC = dict(_target_="priors.pggan.PGGANDiscriminator", size=16, channels=1, max_channels=8, channel_base=64)
LOSS = dict(_target_="lightning_modules.losses.WGANGP", gp=10.0, drift=0.001)
# batch 4: two iterations per phase; levels 0 (it 0-1), fade 1 (2-3), 1 (4-5), fade 2 (6-7), 2 (8-)
GROWING = dict(resolutions=[4, 8, 16], fade_images=8, stable_images=8)
DATA = [{"image": torch.rand(1, 16, 16, generator=torch.Generator().manual_seed(i)), "index": i} for i in range(40)]
RTIL = {"lambda_": 0.5, "sigma": 1.0, "layers": [2], "cumulative": False}
RTIL_MGAN = {"lambda_": 0.5, "layers": [2], "family": "multicode", "num_codes": 3}


def make(**kwargs) -> ProgressiveGANModule:
    torch.manual_seed(0)
    return ProgressiveGANModule(PRIOR, DISC, LOSS, GROWING, sample_every_n_steps=10_000, num_samples=4, **kwargs)


class RecordGrowth(pl.Callback):
    def __init__(self):
        self.seen = []

    def on_train_batch_end(self, trainer, pl_module, *args):
        self.seen.append((int(pl_module.level), float(pl_module.alpha)))


def fit(module, iterations: int, epochs: int = 1, ckpt_path=None, callbacks=()) -> pl.Trainer:
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, max_epochs=epochs,
                         limit_train_batches=iterations, callbacks=list(callbacks))
    trainer.fit(module, DataLoader(DATA, batch_size=4, shuffle=False), ckpt_path=ckpt_path)
    return trainer


# -- architecture -----------------------------------------------------------------------------
def test_widths_and_table2_parameter_count():
    assert pggan_widths(256, "table2") == [256, 256, 256, 256, 128, 64, 64]
    assert pggan_widths(32, None, 32, 512) == [32, 32, 32, 16]
    prior = PGGANPrior(size=256, channels=3, latent_dim=512, widths="table2")
    assert prior.num_layers == 8 and prior.layer_names[4] == "32x32"
    # the layers table 2 lists (4x4 conv on the latent, 3x3 convs, final 1x1 toRGB); the table states
    # 7,445,443, i.e. 590,080 more: one 256->256 3x3 conv it does not list
    listed = sum(p.numel() for p in prior.parameters()) - sum(p.numel() for p in prior.to_rgb[:-1].parameters())
    assert listed == 6_855_363
    for bad in [(24, None), (16, [4, 4]), (512, "table2")]:
        with pytest.raises(UserInputError):
            pggan_widths(*bad)


def test_fade_in_is_the_old_resolution_at_alpha_0_and_the_new_at_alpha_1():
    module = make()
    gen, disc = module.generator, module.discriminator
    z = torch.randn(4, 8)
    draw = torch.randn_like

    def image(level, alpha):
        module.level.fill_(level)
        module.alpha.fill_(alpha)
        return module.family_image(gen, gen.initial_representation(z), 0, draw)

    for level in (1, 2):
        old = image(level - 1, 1.0)
        assert torch.equal(image(level, 0.0), F.interpolate(old, scale_factor=2, mode="nearest"))
        new = gen.to_rgb[level](gen.to_layer(z, level + 1)["state"])
        assert torch.equal(image(level, 1.0), new)
        half = image(level, 0.5)
        assert torch.allclose(half, (F.interpolate(old, scale_factor=2) + new) / 2, atol=1e-6)
        x = torch.randn(4, 1, 4 * 2 ** level, 4 * 2 ** level)
        assert torch.equal(disc(x, level, 0.0), disc(F.avg_pool2d(x, 2), level - 1, 1.0))
        assert not torch.allclose(disc(x, level, 0.5), disc(x, level, 1.0))
    assert torch.allclose(image(2, 1.0), gen(z) * 2 - 1, atol=1e-6)  # the final level is the exported prior
    assert torch.equal(disc(torch.ones(2, 1, 16, 16)), disc(torch.ones(2, 1, 16, 16), 2, 1.0))


def test_real_images_are_pooled_to_the_level_and_blended_during_a_fade():
    module = make()
    x = torch.rand(2, 1, 16, 16)
    module.level.fill_(1)
    module.alpha.fill_(1.0)
    assert torch.allclose(module.real_images({"image": x}), F.avg_pool2d(x * 2 - 1, 2))
    module.alpha.fill_(0.0)
    assert torch.allclose(module.real_images({"image": x}), F.interpolate(F.avg_pool2d(x * 2 - 1, 4), scale_factor=2))


# -- schedule, resume ----------------------------------------------------------------------------
def test_schedule_switches_level_on_schedule():
    s = GrowthSchedule([4, 8, 16], fade_images=8, stable_images=8, size=16)
    assert [s(i) for i in range(0, 40, 4)] == [(0, 1.0), (0, 1.0), (1, 0.0), (1, 0.5), (1, 1.0), (1, 1.0),
                                               (2, 0.0), (2, 0.5), (2, 1.0), (2, 1.0)]
    assert GrowthSchedule([8, 16], 8, 8, 16)(0) == (1, 1.0)
    for res in ([4, 8], [4, 16], [2, 4, 8, 16], [4, 8, 16, 32]):
        with pytest.raises(UserInputError, match="growing.resolutions"):
            GrowthSchedule(res, 8, 8, 16)


def test_growing_follows_the_schedule_and_a_resumed_run_continues_at_the_same_level(tmp_path):
    continuous = RecordGrowth()
    fit(make(), 5, epochs=2, callbacks=[continuous])
    assert continuous.seen == [(0, 1.0), (0, 1.0), (1, 0.0), (1, 0.5), (1, 1.0), (1, 1.0), (2, 0.0), (2, 0.5),
                               (2, 1.0), (2, 1.0)]
    first = make()
    trainer = fit(first, 4)  # stops in the middle of the first fade
    trainer.save_checkpoint(tmp_path / "mid.ckpt")
    saved = torch.load(tmp_path / "mid.ckpt", weights_only=False)["state_dict"]
    assert (int(saved["level"]), float(saved["alpha"]), int(saved["images_seen"])) == (1, 0.5, 16)
    resumed, growth = make(), RecordGrowth()
    assert int(resumed.level) == 0
    fit(resumed, 4, epochs=2, ckpt_path=tmp_path / "mid.ckpt", callbacks=[growth])
    assert growth.seen == continuous.seen[4:8]
    assert int(resumed.images_seen) == 32 and int(resumed.iteration) == 8


# -- training ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("rtil", [None, RTIL, RTIL_MGAN], ids=["vanilla", "rtil", "rtil_mgan"])
def test_pggan_trains_through_the_levels_without_nans_and_exports_the_final_generator(rtil):
    module = make(rtil=rtil)
    trainer = fit(module, 9)
    assert (int(module.level), float(module.alpha)) == (2, 1.0)
    for key in ("train/d_loss", "train/g_loss", "train/gradient_penalty"):
        assert torch.isfinite(trainer.callback_metrics[key]), key
    assert all(torch.isfinite(p).all() for p in module.parameters())
    exported = module.export_prior()
    prior = instantiate(exported["prior_config"])
    prior.load_state_dict(exported["state_dict"], strict=True)
    assert prior.image_shape == (1, 16, 16) and torch.isfinite(prior(prior.sample_latent(2))).all()
    samples = module.member_samples(max(k for k, _ in module.members))
    assert samples.shape == (4, 1, 16, 16) and 0 <= samples.min() and samples.max() <= 1


def test_lambda_one_is_exactly_vanilla_pggan():
    vanilla, one = make(), make(rtil={**RTIL, "lambda_": 1.0})
    fit(vanilla, 7), fit(one, 7)  # through the first fade and into the second
    for (name, p), q in zip(vanilla.state_dict().items(), one.state_dict().values()):
        assert torch.equal(p, q), name


def test_rtil_member_gets_noise_only_where_its_split_exists():
    module = make(rtil={**RTIL, "sigma": 0.5})
    gen, z = module.generator, torch.randn(3, 8)
    module.level.fill_(0)  # split 2 (8x8) is not trained yet: G~_2 = G
    assert torch.equal(module.family_image(gen, gen.initial_representation(z), 2, torch.randn_like),
                       module.family_image(gen, gen.initial_representation(z), 0, torch.randn_like))
    module.level.fill_(2)
    assert not torch.allclose(module.family_image(gen, gen.initial_representation(z), 2, torch.randn_like),
                              gen(z) * 2 - 1)


@pytest.mark.parametrize("model,members", [("pggan", [0]), ("rtil_pggan", [0, 4]), ("rtil_mgan_pggan", [0, 4])])
def test_model_configs_bring_their_resolution(model, members):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"model={model}"])
    assert cfg.data.image_size == 32 and cfg.data._target_.endswith("EmbeddedMNISTDataModule")
    module = instantiate(cfg.model.module)
    assert [k for k, _ in module.members] == members and module.prior.image_shape == (1, 32, 32)
    assert type(module.loss).__name__ == "WGANGP" and module.loss.drift == 0.001


# -- rosinality/progressive-gan-pytorch ------------------------------------------------------------
def rosinality_state(widths=(8, 8, 6), code=7, n_label=1, seed=0) -> dict:
    """A random generator state dict in rosinality's layout (model.py: Generator(code, n_label))."""
    g = torch.Generator().manual_seed(seed)
    state, cin = {"label_embed.weight": torch.randn(n_label, n_label, generator=g)}, code + n_label
    for b, w in enumerate(widths):
        k = 4 if b == 0 else 3
        state[f"progression.{b}.conv.0.conv.weight_orig"] = torch.randn(w, cin, k, k, generator=g)
        state[f"progression.{b}.conv.0.conv.bias"] = torch.randn(w, generator=g) * 0.1
        state[f"progression.{b}.conv.3.conv.weight_orig"] = torch.randn(w, w, 3, 3, generator=g)
        state[f"progression.{b}.conv.3.conv.bias"] = torch.randn(w, generator=g) * 0.1
        state[f"to_rgb.{b}.weight"] = torch.randn(3, w, 1, 1, generator=g) * 0.2
        state[f"to_rgb.{b}.bias"] = torch.randn(3, generator=g) * 0.1
        cin = w
    return state


def rosinality_forward(state: dict, code: torch.Tensor, step: int, label: int = 0) -> torch.Tensor:
    """rosinality's Generator.forward(code, label, step, alpha=-1), written out functionally."""
    def pixel_norm(x):
        return x / torch.sqrt(torch.mean(x ** 2, dim=1, keepdim=True) + 1e-8)

    out = torch.cat([pixel_norm(code), state["label_embed.weight"][[label] * len(code)]], 1)[:, :, None, None]
    for i in range(step + 1):
        if i > 0:
            out = F.interpolate(out, scale_factor=2)
        for j in (0, 3):
            w = state[f"progression.{i}.conv.{j}.conv.weight_orig"]
            out = F.conv2d(out, w * math.sqrt(2 / (w.shape[1] * w[0][0].numel())),
                           state[f"progression.{i}.conv.{j}.conv.bias"], padding=3 if i == 0 and j == 0 else 1)
            out = F.leaky_relu(pixel_norm(out), 0.2)
    return F.conv2d(out, state[f"to_rgb.{step}.weight"], state[f"to_rgb.{step}.bias"])


def test_rosinality_checkpoints_load_strictly_and_match_its_forward(tmp_path):
    state = rosinality_state()
    code = torch.randn(3, 7)
    prior = load_rosinality_pggan(state)
    assert prior.image_shape == (3, 16, 16) and prior.latent_shape == (7,) and prior.widths == [8, 8, 6]
    assert torch.allclose(prior(code) * 2 - 1, rosinality_forward(state, code, 2), atol=1e-5)
    small = load_rosinality_pggan(state, size=8)  # the generator of training step 1
    assert torch.allclose(small(code) * 2 - 1, rosinality_forward(state, code, 1), atol=1e-5)
    torch.save({"g_running": state}, tmp_path / "pggan.pt")
    loaded = load_prior(tmp_path / "pggan.pt")  # through the general loader, frozen
    assert torch.equal(loaded(code), prior(code)) and not any(p.requires_grad for p in loaded.parameters())


def save_pickled_rosinality_generator(state: dict, path: Path) -> None:
    """``torch.save(g_running, path)`` as rosinality's train.py does: classes with its qualified names
    (module ``model``) and parameter layout (EqualLR: ``weight_orig`` + a forward pre-hook), after a
    forward pass; the module is gone again when the file is loaded."""
    mod = types.ModuleType("model")

    class EqualLR:
        def __init__(self, name):
            self.name = name

        def __call__(self, module, inputs):
            w = getattr(module, self.name + "_orig")
            setattr(module, self.name, w * math.sqrt(2 / (w.size(1) * w[0][0].numel())))

    class EqualConv2d(nn.Module):
        def __init__(self, weight, bias, padding):
            super().__init__()
            self.conv = nn.Conv2d(weight.shape[1], weight.shape[0], weight.shape[2], padding=padding)
            del self.conv._parameters["weight"]
            self.conv.weight_orig, self.conv.bias = nn.Parameter(weight), nn.Parameter(bias)
            self.conv.register_forward_pre_hook(EqualLR("weight"))

        def forward(self, x):
            return self.conv(x)

    class PixelNorm(nn.Module):
        def forward(self, x):
            return x / torch.sqrt(torch.mean(x ** 2, dim=1, keepdim=True) + 1e-8)

    class ConvBlock(nn.Module):
        def __init__(self, b):
            super().__init__()
            convs = [EqualConv2d(state[f"progression.{b}.conv.{j}.conv.weight_orig"],
                                 state[f"progression.{b}.conv.{j}.conv.bias"], 3 if b == 0 and j == 0 else 1)
                     for j in (0, 3)]
            self.conv = nn.Sequential(convs[0], PixelNorm(), nn.LeakyReLU(0.2),
                                      convs[1], PixelNorm(), nn.LeakyReLU(0.2))

    class Generator(nn.Module):
        def __init__(self, n_blocks):
            super().__init__()
            self.label_embed = nn.Embedding(*state["label_embed.weight"].shape, _weight=state["label_embed.weight"])
            self.code_norm = PixelNorm()
            self.progression = nn.ModuleList(ConvBlock(b) for b in range(n_blocks))
            self.to_rgb = nn.ModuleList(nn.Conv2d(state[f"to_rgb.{b}.weight"].shape[1], 3, 1) for b in range(n_blocks))
            self.to_rgb.load_state_dict({k[len("to_rgb."):]: v for k, v in state.items() if k.startswith("to_rgb.")})

    for cls in (EqualLR, EqualConv2d, PixelNorm, ConvBlock, Generator):
        cls.__module__, cls.__qualname__ = "model", cls.__name__
        setattr(mod, cls.__name__, cls)
    sys.modules["model"] = mod
    try:
        gen = Generator(3)
        for block in gen.progression:  # sets the hooks' ``weight`` attributes, as sampling during training does
            block.conv[0](torch.zeros(1, block.conv[0].conv.in_channels, 4, 4))
        torch.save(gen, path)
    finally:
        del sys.modules["model"]


def test_pickled_rosinality_generator_loads_without_running_its_code(tmp_path):
    state = rosinality_state()
    save_pickled_rosinality_generator(state, tmp_path / "010000.model")
    code = torch.randn(2, 7)
    prior = load_prior(tmp_path / "010000.model")
    assert torch.allclose(prior(code) * 2 - 1, rosinality_forward(state, code, 2), atol=1e-5)
    assert torch.equal(load_rosinality_pggan(tmp_path / "010000.model", size=8).blocks[1].conv1.weight,
                       state["progression.1.conv.0.conv.weight_orig"])


@pytest.mark.parametrize("edit, needle", [
    (lambda s: s.pop("progression.1.conv.3.conv.bias"), "Missing key"),
    (lambda s: s.update({"style.1.weight": torch.zeros(1)}), "outside"),
    (lambda s: s.clear() or s.update({"style.1.weight": torch.zeros(1)}), "not a rosinality/progressive-gan"),
    (lambda s: s.update({"progression.1.conv.0.conv.weight_orig": torch.zeros(8, 5, 3, 3)}), "layout"),
])
def test_wrong_layout_is_refused_with_one_line(edit, needle):
    state = rosinality_state()
    edit(state)
    with pytest.raises(UserInputError, match=needle) as err:
        load_rosinality_pggan(state)
    assert "\n" not in str(err.value)
    with pytest.raises(UserInputError, match="size=32"):
        load_rosinality_pggan(rosinality_state(), size=32)


# -- the command line --------------------------------------------------------------------------
TINY = ("model.module.prior.latent_dim=8", "model.module.prior.max_channels=4", "trainer.max_epochs=1",
        "trainer.limit_train_batches=3", "trainer.enable_progress_bar=false", "logger=csv",
        "model.module.growing.stable_images=64", "model.module.growing.fade_images=64")


def test_train_rtil_pggan_on_the_default_data_exports_a_prior(tmp_path):
    out, export = tmp_path / "run", tmp_path / "pggan.pt"
    proc = run_inprocess("train.py", "model=rtil_pggan", *TINY, "trainer.log_every_n_steps=1", f"hydra.run.dir={out}",
                   f"export_path={export}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    prior = load_prior(export)
    assert isinstance(prior, PGGANPrior) and prior.image_shape == (1, 32, 32)
    assert load_prior(out / "checkpoints" / "last.ckpt").widths == prior.widths
    assert "train/level" in (out / "csv" / "metrics.csv").read_text()
    grids = sorted(p.name for p in (out / "csv" / "images").glob("*.png"))
    assert grids == ["samples_G_step0000002.png", "samples_G_tilde_4_step0000002.png"]  # after iteration 0


@pytest.mark.parametrize("override, needle", [
    ("model.module.growing.resolutions=[4,8,16]", "growing.resolutions"),
    ("model.module.rtil.layers=[6]", "rtil.layers"),
    ("model.module.rtil.lambda_=1.5", "lambda_"),
])
def test_bad_input_is_one_line_exit_2_nothing_written(tmp_path, override, needle):
    out, export = tmp_path / "run", tmp_path / "x.pt"
    proc = run_inprocess("train.py", "model=rtil_pggan", *TINY, f"hydra.run.dir={out}", f"export_path={export}",
                         override)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], proc.stderr[-2000:]
    assert not export.exists() and not (out / "checkpoints").exists() and not (out / "prior.pt").exists()


def test_a_prior_file_naming_a_class_outside_the_priors_is_refused(tmp_path):
    from priors.io import PRIOR_FORMAT

    for target in ("os.system", "torch.nn.Linear", "priors.io.Path"):
        torch.save({"format": PRIOR_FORMAT, "prior_config": {"_target_": target}, "state_dict": {}}, tmp_path / "x.pt")
        with pytest.raises(UserInputError, match="are built from files only as one of"):
            load_prior(tmp_path / "x.pt")
