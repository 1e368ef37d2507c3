"""Shared pieces of the benchmark scripts: composing the project's configs, test images, saving figures."""
from __future__ import annotations

import contextlib
import math
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir

from common.atomic import atomic_open, write_json
from common.cli import CONF_DIR
from common.errors import UserInputError

RESULTS_DIR = Path(__file__).resolve().parent / "results"
#: when the benchmark started (benchmarks import this module first): the saved ``run_seconds`` count from here
STARTED = time.perf_counter()


def run_seconds() -> float:
    """Wall seconds since the benchmark started (its running time, recorded in its results file)."""
    return round(time.perf_counter() - STARTED, 1)


def compose_invert(*overrides: str):
    """The resolved ``invert`` config for these overrides (hydra's runtime choices are not needed)."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="invert", overrides=["prior.checkpoint=unused", *overrides])


def split_images(split: str, datamodule_config: str = "mnist_embedded", num_images: int = 64, first: int = 0,
                 **data_overrides) -> tuple:
    """(images, indices) of ``num_images`` of a datamodule's ``split`` ("val" or "test") from position ``first`` on."""
    from common.instantiate import instantiate

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="invert", overrides=[f"data={datamodule_config}",
                                                      *[f"data.{k}={v}" for k, v in data_overrides.items()]])
    dm = instantiate(cfg.data)
    dataset = dm.split(split)
    if first + num_images > len(dataset):
        asked = f"{num_images} images from image {first} on" if first else f"{num_images} images"
        raise UserInputError(f"{asked} asked, the {split} split has {len(dataset)}; lower --images"
                             f"{' or --first-image' if first else ''}")
    items = [dataset[i] for i in range(first, first + num_images)]
    return torch.stack([d["image"] for d in items]), [d["index"] for d in items]


def test_images(datamodule_config: str = "mnist_embedded", num_images: int = 64, first: int = 0,
                **data_overrides) -> tuple:
    """(images, indices) of ``num_images`` of a datamodule's test split from position ``first`` on: for reported
    numbers."""
    return split_images("test", datamodule_config, num_images, first, **data_overrides)


def tuning_images(split: str, datamodule_config: str = "mnist_embedded", num_images: int = 16,
                  **data_overrides) -> tuple:
    """Images for hyperparameter trials and any other tuning: the validation split only. The test split
    holds the reported images, so choosing settings on it would bias the reported numbers."""
    if split != "val":
        raise UserInputError(f"tuning runs on the validation split only, got split={split!r}; the test split is "
                             f"for reported numbers (benchmarks/inversion_quality.py, invert.py)")
    return split_images("val", datamodule_config, num_images, **data_overrides)


def cpu_model() -> str:
    """The CPU's model name as the OS reports it (``platform.processor()`` is only the architecture on Linux)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine_description() -> str:
    """The hardware a result was measured on, for its results file: CPU model and count, GPUs, torch build."""
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    return (f"{cpu_model()}, {os.cpu_count()} CPUs, {', '.join(gpus) if gpus else 'no GPU'}, "
            f"torch {torch.__version__}")


def save_results(name: str, payload: dict) -> Path:
    payload = {"benchmark": name, "date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine_description(),
               "torch_threads": torch.get_num_threads(), "run_seconds": run_seconds(), **payload}
    path = RESULTS_DIR / f"{name}.json"
    write_json(path, payload)
    print(f"saved {path}")
    return path


# -- experiment presets (conf/experiment) ------------------------------------------------------------------

def compose_experiment(name: str, *overrides: str, with_hydra: bool = False):
    """The resolved ``invert`` config of ``python invert.py +experiment=NAME *overrides`` (``with_hydra``:
    with the ``hydra`` node, for the preset's sweep)."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="invert", overrides=[f"+experiment={name}", *overrides],
                       return_hydra_config=with_hydra)


def experiment_sweep(name: str) -> dict[str, list[str]]:
    """The preset's multirun sweep (``hydra.sweeper.params``) as key → list of values (override strings)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = compose_experiment(name, with_hydra=True).hydra.sweeper.params or {}
    parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    return {o.key_or_group if not o.is_add() else f"+{o.key_or_group}": list(o.sweep_string_iterator())
            if o.is_sweep_override() else [o.get_value_element_as_str()] for o in parsed}


def scale_steps(solver_cfg, fraction: float) -> None:
    """Every configured step count of a solver config (schedule stages, ``iterations``, ``steps``) times
    ``fraction``, at least 1: ``--step-fraction`` of the experiment driver (1 = the preset as configured)."""
    from omegaconf import DictConfig, ListConfig

    def scale(node):
        if isinstance(node, DictConfig):
            for key in list(node.keys()):
                if key in ("steps", "iterations") and isinstance(node[key], int):
                    node[key] = max(1, round(node[key] * fraction))
                else:
                    scale(node[key])
        elif isinstance(node, ListConfig):
            for item in node:
                scale(item)

    if fraction != 1:
        scale(solver_cfg)


def wilson_ci95(successes: int, trials: int) -> tuple[float, float, float]:
    """Success rate and its 95% Wilson score interval (lower, upper): exact-enough for small counts and rates of 0 or 1."""
    if trials < 1:
        return math.nan, math.nan, math.nan
    z, p = 1.959963984540054, successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return p, max(0.0, centre - half), min(1.0, centre + half)


def mcnemar_exact(only_first: int, only_second: int) -> float:
    """Two-sided exact McNemar p-value of paired binary outcomes from the discordant pairs alone (successes of
    the first method only, of the second only): the binomial test of ``only_first`` out of their sum at 1/2."""
    n = only_first + only_second
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(only_first, only_second) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def _save_figure(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)
    print(f"saved {path}")
    return path


def plot_panels(panels: dict[str, dict[str, dict[str, list]]], path: Path, xlabel: str, title: str = "",
                logx: bool = False) -> Path:
    """Panels side by side on one x axis, one per y label: per curve label an error-bar curve from
    ``{"x", "y", "yerr"}`` (yerr: 95% CI half-widths, or a pair of lists lower/upper distances); PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 3.8), squeeze=False)
    for ax, (ylabel, curves) in zip(axes[0], panels.items()):
        for label, c in curves.items():
            ax.errorbar(c["x"], c["y"], yerr=c["yerr"], marker="o", markersize=3, capsize=3, label=label)
        if logx:
            ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    return _save_figure(fig, path)


def plot_curves(curves: dict[str, dict[str, list]], path: Path, xlabel: str, ylabel: str, title: str = "",
                logx: bool = False) -> Path:
    """One panel of ``plot_panels``."""
    return plot_panels({ylabel: curves}, path, xlabel, title, logx)


def plot_categories(series: dict[str, dict[str, list]], categories: list[str], path: Path, ylabel: str,
                    title: str = "", references: dict[str, tuple[float, float]] | None = None) -> Path:
    """One panel for a table's rows: per label a point per category from ``{"y", "yerr"}`` (None: no point;
    yerr: 95% CI half-widths), categories as tick labels, and ``references`` (label -> (value, CI half-width),
    e.g. a prior's oracle bounds) as horizontal lines with their CI bands; PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.4))
    x = np.arange(len(categories))
    width = 0.6 / max(len(series), 1)
    for k, (label, c) in enumerate(series.items()):
        keep = [i for i, y in enumerate(c["y"]) if y is not None]
        ax.errorbar(x[keep] + (k - (len(series) - 1) / 2) * width, [c["y"][i] for i in keep],
                    yerr=[c["yerr"][i] or 0 for i in keep], fmt=c.get("fmt", "o"), markersize=4, capsize=3, label=label)
    for k, (label, (value, ci)) in enumerate((references or {}).items()):
        line = ax.axhline(value, linestyle="--", linewidth=1, color=f"C{len(series) + k}", label=label)
        ax.axhspan(value - ci, value + ci, color=line.get_color(), alpha=0.15)
    ax.set_xticks(x, categories, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7)
    return _save_figure(fig, path)


def save_grid(priors: dict, path: Path, n: int = 64) -> None:
    """One panel per prior: ``{name: (prior, FD)}`` -> a grid of ``n`` seeded samples of each, titled by its FD."""
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from torchvision.utils import make_grid

    fig, axes = plt.subplots(1, len(priors), figsize=(4.2 * len(priors), 4.6))
    for ax, (name, (prior, fd)) in zip(list(axes) if len(priors) > 1 else [axes], priors.items()):
        with torch.no_grad():
            x = prior(prior.sample_latent(n, generator=torch.Generator().manual_seed(0)))
        ax.imshow(make_grid(x, nrow=8, padding=1, pad_value=1.0).permute(1, 2, 0).numpy())
        ax.set_title(textwrap.fill(f"{name}: FD {fd:.1f}", 36), fontsize=10)
        ax.axis("off")
    fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)


def gan_training_phases(module, real, batch: int, context=contextlib.nullcontext) -> dict:
    """The optimizer steps of one GAN training iteration as separate calls, for timing: discriminator,
    generator, the lazy R1 / path-length regularisers and the EMA (lightning_modules.adversarial's
    losses), each run inside ``context()`` (e.g. autocast)."""
    from lightning_modules.adversarial import ema_decay, ema_update

    g_opt, d_opt = module.configure_optimizers()
    hp = module.hparams

    def step(opt, loss_fn, train=None, freeze=None):
        if train is not None:
            train.requires_grad_(True)
            freeze.requires_grad_(False)
        with context():
            loss = loss_fn()["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return {
        "d_step": lambda: step(d_opt, lambda: module.discriminator_loss(real), module.discriminator, module.generator),
        "g_step": lambda: step(g_opt, lambda: module.generator_loss(batch), module.generator, module.discriminator),
        "r1_step": lambda: step(d_opt, lambda: module.loss.lazy_regularizer(module.discriminate, real)),
        "path_length_step": lambda: step(g_opt, lambda: module.generator_regularization(batch)),
        "ema_update": lambda: ema_update(module.prior, module.generator, ema_decay(batch, hp.ema_kimg)),
    }


def seconds_per_iteration(parts: dict, hparams) -> float:
    """One training iteration from the phases' seconds: the regularisers amortised over their intervals."""
    return (parts["d_step"] + parts["g_step"] + parts["r1_step"] / hparams.d_reg_every
            + parts["path_length_step"] / hparams.g_reg_every + parts["ema_update"])
