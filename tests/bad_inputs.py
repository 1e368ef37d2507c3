"""Every bad input the entry points handle, with the stable part of its one-line message.

This list is the one source of docs/BAD_INPUT.md (``python -m tests.bad_inputs`` prints the table)
and of tests/test_bad_input.py, which runs every case through the entry points' own code path
(:func:`run_entry`: the pre-Hydra check, then ``train()``/``invert()``) and checks the message.

Placeholders in arguments name files made by :func:`make_files`: {tmp} (a directory), {prior} (a
small VAE prior), {prior8} (one for 8x8 images), {truncated} (half of a prior file), {nan_prior},
{encoder} (an encoder file), {ckpt_other} (a Lightning checkpoint of another VAE), {crafted_write},
{crafted_nested}, {crafted_args} (prior files whose stored config names Path.write_text, carries a
nested _target_, or _args_), {crafted_encoder} (an encoder file naming shutil.copyfile),
{duplicates} (a measurement file with one index eight times), {file} (a plain text file), {foreign_run}
(a run directory with results of another configuration), {unrecorded_run} (one with results but no
results_config.json).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

#: a small model for one quick epoch ({tiny} in the table)
TINY_TRAIN = ("model.module.prior.hidden_dim=32", "model.module.prior.latent_dim=8", "trainer.max_epochs=1",
              "trainer.limit_train_batches=2", "trainer.limit_val_batches=1", "trainer.enable_progress_bar=false")
NO_LOGIN = {"WANDB_MODE": None, "WANDB_API_KEY": None, "NETRC": "{tmp}/no_netrc"}


@dataclass(frozen=True)
class Case:
    script: str  # "invert" or "train"
    argv: tuple[str, ...]
    message: str  # a stable part of the one error line
    what: str  # what is wrong, for the table
    env: dict = field(default_factory=dict)  # environment for the case (None: unset)
    needs_no_gpu: bool = False


CASES: list[Case] = [
    # -- config keys and values ---------------------------------------------------------------------
    Case("invert", ("num_imges=8",), "key 'num_imges' does not exist; did you mean num_images=8?", "a typo in a key"),
    Case("train", ("max_epochs=3",), "did you mean trainer.max_epochs=3?", "a key in the wrong place"),
    Case("invert", ("+num_imges=8",), "+num_imges: no code reads this key", "`+key` that no code reads"),
    Case("invert", ("+solver.foo=1",), "+solver.foo: GenerativeSolver takes no argument 'foo'",
         "`+key` that the class does not take"),
    Case("invert", ("+trainer.profilr=simple",), "Trainer takes no argument 'profilr'; did you mean profiler?",
         "a misspelt extra Trainer argument"),
    Case("invert", ("+data.val_size=10",), "An item is already at 'data.val_size'. Set it without the leading '+'.",
         "`+key` for a key that exists"),
    Case("invert", ("solver=prilox",), "Could not find 'solver/prilox'", "an unknown config group option"),
    Case("invert", ("operator.m=200",), "key 'operator.m' does not exist in operator=fourier_pr",
         "a key the chosen group option does not have"),
    Case("invert", ("seed=abc",), "seed must be an integer in [0, 2^32), got 'abc'", "a seed that is not an integer"),
    Case("train", ("seed=-1",), "seed must be an integer in [0, 2^32), got -1", "a negative seed"),
    Case("invert", ("num_images=0",), "num_images must be a positive integer, got 0", "no images"),
    Case("invert", ("fused_kernels=maybe",), "fused_kernels must be true, false or null", "a bad switch"),
    # -- output locations and services (checked before anything runs) --------------------------------
    Case("invert", ("hydra.run.dir=/proc/genprior/run",), "hydra.run.dir /proc/genprior/run is not writable",
         "a read-only run directory"),
    Case("invert", ("solver=hio", "hydra.run.dir={foreign_run}"),
         "holds results of a different configuration (differs in",
         "resuming into a run directory of another configuration (solver, seed, prior file, ...)"),
    Case("invert", ("solver=hio", "hydra.run.dir={unrecorded_run}"), "holds results without a results_config.json",
         "resuming into a run directory whose configuration was not recorded"),
    Case("train", ("overwrite=maybe",), "overwrite must be true or false, got 'maybe'", "a bad overwrite switch"),
    Case("train", ("hydra.run.dir={file}/run",), "cannot be created: {file} is a file, not a directory",
         "a run directory below a file"),
    Case("train", ("export_path=/proc/genprior/prior.pt",), "export_path /proc/genprior/prior.pt is not writable",
         "an export path on a read-only filesystem"),
    Case("train", ("export_path={tmp}",), "export_path {tmp} is a directory", "a directory as export path"),
    Case("train", ("logger=wandb", "logger.offline=false"), "logger.offline=false needs a W&B login",
         "an online W&B logger without a login", env=NO_LOGIN),
    # -- Trainer values ------------------------------------------------------------------------------
    Case("train", (*TINY_TRAIN, "trainer.max_epochs=-5"), "`max_epochs` must be a non-negative integer or -1",
         "a negative epoch count"),
    Case("train", (*TINY_TRAIN, "trainer.accelerator=gpu"), "trainer: No supported gpu backend found!",
         "a GPU accelerator on a machine without one", needs_no_gpu=True),
    Case("train", (*TINY_TRAIN, "trainer.strategy=foo"), "You selected an invalid strategy name",
         "an unknown strategy"),
    Case("invert", ("prior.checkpoint={prior}", "num_images=1", "trainer.devices=0"),
         "`Trainer(devices=0)` value is not a valid input", "zero devices"),
    # -- training checkpoints --------------------------------------------------------------------------
    Case("train", (*TINY_TRAIN, "ckpt_path=/no/such.ckpt"), "ckpt_path /no/such.ckpt does not exist",
         "a missing checkpoint to resume"),
    Case("train", (*TINY_TRAIN, "ckpt_path={truncated}"), "could not be read", "a truncated checkpoint"),
    Case("train", (*TINY_TRAIN, "ckpt_path={ckpt_other}"), "was written by another model or configuration",
         "another model's checkpoint"),
    Case("train", (*TINY_TRAIN, "ckpt_path={prior}"), "is a prior file of `python train.py`, not a Lightning",
         "a prior file as checkpoint"),
    # -- prior files -------------------------------------------------------------------------------------
    Case("invert", ("prior.checkpoint=/no/such/prior.pt",), "prior checkpoint /no/such/prior.pt does not exist",
         "a missing prior"),
    Case("invert", ("prior.checkpoint={tmp}",), "is a directory, not a checkpoint file", "a directory as prior"),
    Case("invert", ("prior.checkpoint={truncated}",), "could not be read (", "a truncated prior file"),
    Case("invert", ("prior.checkpoint={encoder}",), "is an encoder file of", "an encoder file as prior"),
    Case("invert", ("prior.checkpoint={crafted_write}",),
         "names 'pathlib.Path.write_text' as its class; priors are built from files only as one of",
         "a stored config naming a function"),
    Case("invert", ("prior.checkpoint={crafted_nested}",), "holds the key '_target_'",
         "a nested `_target_` in a stored argument"),
    Case("invert", ("prior.checkpoint={crafted_args}",), "has the key(s) ['_args_']", "`_args_` in a stored config"),
    Case("invert", ("prior.checkpoint={nan_prior}",), "has NaN/Inf weights", "a diverged prior"),
    Case("invert", ("prior.checkpoint={prior8}",), "generates images of shape (1, 8, 8)",
         "a prior for other images"),
    # -- learned initialization ---------------------------------------------------------------------------
    Case("invert", ("prior.checkpoint={prior}", "init=li", "init.checkpoint={prior}"), "is not an encoder file",
         "a prior file as encoder"),
    Case("invert", ("prior.checkpoint={prior}", "init=li", "init.checkpoint={crafted_encoder}"),
         "names 'shutil.copyfile' as its class", "an encoder file naming a function"),
    Case("invert", ("prior.checkpoint={prior}", "init=li", "init.checkpoint={encoder}", "init.sigma=-1"),
         "init.sigma must be >= 0", "a negative perturbation"),
    # -- solvers and operators ------------------------------------------------------------------------------
    Case("invert", ("prior.checkpoint={prior}", "solver.schedule=[]"), "solver.schedule is empty",
         "an empty schedule"),
    Case("invert", ("prior.checkpoint={prior}", "solver.skip=[init,forward,backproject,refine]"),
         "removes every stage of solver.schedule", "an ablation that skips everything"),
    Case("invert", ("prior.checkpoint={prior}", "solver.schedule=[{kind:forward,layer:9,steps:5,lr:0.1}]"),
         "names layer 9", "a layer the prior does not have"),
    Case("invert", ("prior.checkpoint={prior}", "solver.schedule=[{kind:init,steps:-3,lr:0.1}]"),
         "steps must be a positive integer", "negative steps"),
    Case("invert", ("prior.checkpoint={prior}", "operator=gaussian_pr", "operator.m=0"),
         "m must be a positive integer number of measurements", "a bad measurement count (m wins over ratio)"),
    Case("invert", ("prior.checkpoint={prior}", "solver.holdout=0.1"), "operator fourier_pr's entries are not",
         "held-out measurements with Fourier magnitudes (each repeats its conjugate's)"),
    Case("invert", ("prior.checkpoint={prior}", "operator=gaussian_pr", "solver.holdout=1.5"),
         "solver.holdout must be a fraction in [0, 1)", "a holdout that is not a fraction"),
    Case("invert", ("+experiment=dpr_fig2",), "does not run through invert.py",
         "a preset that only its driver runs (generated ground truths)"),
    # -- measurement files ------------------------------------------------------------------------------------
    Case("invert", ("prior.checkpoint={prior}", "measurements={duplicates}"), "duplicate sample indices",
         "repeated indices in a measurement file"),
    Case("invert", ("prior.checkpoint={prior}", "measurements={prior}"), "is a prior file of `python train.py`",
         "a prior file as measurements"),
]


def make_files(tmp: Path) -> dict[str, str]:
    """The files the placeholders name, written under ``tmp``."""
    from common.checkpoint import ENCODER_FORMAT, PRIOR_FORMAT
    from operators import FourierPhaseRetrieval, operator_state
    from priors.encoders import MLPEncoder
    from priors.io import load_prior
    from priors.vae import VAE
    from solvers.learned_init import save_encoder
    from tests.cli import tiny_vae_prior

    tmp.mkdir(parents=True, exist_ok=True)
    prior = tiny_vae_prior(tmp / "prior.pt")
    files = {"tmp": tmp, "prior": prior, "prior8": tiny_vae_prior(tmp / "prior8.pt", image_shape=(1, 8, 8))}
    files["truncated"] = tmp / "truncated.pt"
    files["truncated"].write_bytes(prior.read_bytes()[: prior.stat().st_size // 2])
    files["file"] = tmp / "plain.txt"
    files["file"].write_text("text")
    record = torch.load(prior, weights_only=True)
    bad = {k: v.clone() for k, v in record["state_dict"].items()}
    bad["decoder.0.weight"][0, 0] = float("nan")
    torch.save({**record, "state_dict": bad}, tmp / "nan.pt")
    files["nan_prior"] = tmp / "nan.pt"
    victim = str(tmp / "victim.txt")
    vae = dict(record["prior_config"])
    crafted = {"crafted_write": {"_target_": "pathlib.Path.write_text", "data": "x",
                                 "self": {"_target_": "pathlib.Path", "_args_": [victim]}},
               "crafted_nested": {**vae, "latent_dim": {"_target_": "shutil.copyfile", "src": str(prior),
                                                        "dst": victim}},
               "crafted_args": {"_target_": "shutil.copyfile", "_args_": [str(prior), victim]}}
    for name, config in crafted.items():
        torch.save({"format": PRIOR_FORMAT, "prior_config": config, "state_dict": {}, "extra": {}}, tmp / f"{name}.pt")
        files[name] = tmp / f"{name}.pt"
    loaded = load_prior(prior)
    operator = FourierPhaseRetrieval((1, 28, 28))
    config = {"_target_": "priors.encoders.MLPEncoder", "measurement_shape": [1, 28, 28], "latent_shape": [8],
              "hidden": [4]}
    files["encoder"] = save_encoder(tmp / "encoder.pt", config, MLPEncoder([1, 28, 28], [8], hidden=[4]), loaded,
                                    prior, operator)
    enc = torch.load(files["encoder"], weights_only=True)
    torch.save({**enc, "format": ENCODER_FORMAT, "encoder_config": {"_target_": "shutil.copyfile", "src": str(prior),
                                                                    "dst": victim}}, tmp / "crafted_encoder.pt")
    files["crafted_encoder"] = tmp / "crafted_encoder.pt"
    other = VAE((1, 28, 28), latent_dim=8, hidden_dim=16)
    torch.save({"pytorch-lightning_version": "2.6.0", "epoch": 0, "global_step": 2,
                "state_dict": {f"prior.{k}": v for k, v in other.state_dict().items()},
                "hyper_parameters": {"prior": {**vae, "hidden_dim": 16}}}, tmp / "other.ckpt")
    files["ckpt_other"] = tmp / "other.ckpt"
    y = operator(loaded(torch.zeros(1, 8)))
    torch.save({"y": y.repeat(8, 1, 1, 1), "index": torch.zeros(8, dtype=torch.long),
                "operator": operator_state(operator)}, tmp / "duplicates.pt")
    files["duplicates"] = tmp / "duplicates.pt"
    for name, config in (("foreign_run", {"seed": 12345}), ("unrecorded_run", None)):
        (tmp / name / "parts").mkdir(parents=True)
        (tmp / name / "parts" / "00000000_r0.pt").write_bytes(b"a finished batch")
        if config is not None:
            (tmp / name / "results_config.json").write_text(json.dumps(config))
        files[name] = tmp / name
    return {k: str(v) for k, v in files.items()}


def fill(text: str, files: dict[str, str]) -> str:
    for name, path in files.items():
        text = text.replace("{" + name + "}", path)
    return text


def run_entry(case: Case, files: dict[str, str], out_dir: Path) -> tuple[int, str]:
    """(exit status, stderr) of ``python <script>.py *argv`` run in this process, through the same
    pre-Hydra check and entry function (:func:`tests.cli.run_inprocess`)."""
    from tests.cli import run_inprocess

    argv = [fill(a, files) for a in case.argv]
    argv = [f"hydra.run.dir={out_dir}", *([] if any(a.startswith("logger=") for a in argv) else ["logger=csv"]), *argv]
    env = {k: None if v is None else fill(v, files) for k, v in case.env.items()}
    proc = run_inprocess(f"{case.script}.py", *argv, env=env)
    return proc.returncode, proc.stderr


def _code(text: str) -> str:
    """Inline code that may itself contain backticks."""
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def table() -> str:
    """The markdown table of docs/BAD_INPUT.md; {tiny} stands for :data:`TINY_TRAIN`."""
    rows = ["| # | command | what is wrong | message (`error: ...`, stable part) |", "|---|---|---|---|"]
    for n, case in enumerate(CASES, 1):
        command = " ".join([f"python {case.script}.py", *case.argv]).replace(" ".join(TINY_TRAIN), "{tiny}")
        env = " ".join(f"{k}={'(unset)' if v is None else v}" for k, v in case.env.items())
        command = f"{env} {command}" if env else command
        rows.append(f"| {n} | {_code(command.replace('|', '[pipe]'))} | {case.what} | {_code(case.message)} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(table(), end="")
