"""Running the entry points as users do: in a subprocess (:func:`run_cli`: Hydra itself, a fresh
process, DDP) or in this process (:func:`run_inprocess`: the same pre-Hydra check and entry function,
seconds cheaper, for everything that is not about the process itself)."""
from __future__ import annotations

import contextlib
import importlib
import io
import os
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def run_cli(script: str, *overrides: str, cwd: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, str(ROOT / script), *overrides], cwd=cwd or ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


#: the function each Hydra entry point's ``main`` calls with the composed config
ENTRY_FUNCTIONS = {"train.py": "train", "invert.py": "invert", "evaluation/oracle_bound.py": "oracle_bound",
                   "evaluation/sample_quality.py": "evaluate"}


def run_inprocess(script: str, *overrides: str, env: dict | None = None, edit=None) -> subprocess.CompletedProcess:
    """``python <script> *overrides`` (a script of :data:`ENTRY_FUNCTIONS`) run in this process, as
    :func:`run_cli` reports it (exit status, stdout, stderr): the same pre-Hydra check
    (``common.cli.check_overrides``) and entry function; the run directory is ``hydra.run.dir``, where
    Hydra's own files (``.hydra/``, ``<script>.log``) are not written. ``env``: variables set for the run
    (None: unset). ``edit(cfg)`` may change the composed job config first (e.g. shorten a solver). The
    process's environment, Hydra config and claimed run directories are restored afterwards."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf, open_dict

    from common.cli import check_overrides
    from common.runs import release_runs

    module = importlib.import_module(script.removesuffix(".py").replace("/", "."))
    saved_env = dict(os.environ)
    stdout, stderr = io.StringIO(), io.StringIO()
    returncode = 0
    try:
        for key, value in (env or {}).items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
            try:
                cfg = check_overrides(Path(script).stem, list(overrides))
                for node in (cfg, cfg.hydra, cfg.hydra.runtime):
                    OmegaConf.set_readonly(node, False)
                with open_dict(cfg):
                    cfg.hydra.runtime.output_dir = str(cfg.hydra.run.dir)
                HydraConfig.instance().set_config(cfg)
                job = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
                if edit is not None:
                    edit(job)
                getattr(module, ENTRY_FUNCTIONS[script])(job)
            except SystemExit as exit_:
                returncode = int(exit_.code or 0)
    finally:
        HydraConfig.instance().cfg = None  # later code must not see this run's Hydra config
        release_runs()
        wandb = sys.modules.get("wandb")
        if wandb is not None and wandb.run is not None:  # what the end of the process would do
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                wandb.finish()
        os.environ.clear()
        os.environ.update(saved_env)
    return subprocess.CompletedProcess([script, *overrides], returncode, stdout.getvalue(), stderr.getvalue())


def spread_vae(image_shape=(1, 8, 8), latent_dim: int = 8, hidden_dim: int = 48, seed: int = 0):
    """A frozen random VAE whose images spread over [0, 1] (a random decoder's are all ~0.5): a small prior."""
    from priors.vae import VAE

    torch.manual_seed(seed)
    vae = VAE(image_shape=image_shape, latent_dim=latent_dim, hidden_dim=hidden_dim).eval().requires_grad_(False)
    vae.decoder[-1].weight.mul_(6.0)
    return vae


def tiny_vae_prior(path: Path, image_shape=(1, 28, 28), seed: int = 0) -> Path:
    """A small VAE prior file with images spread over [0, 1] (a random decoder's are all ~0.5)."""
    from priors.io import save_prior
    from priors.vae import VAE

    torch.manual_seed(seed)
    config = {"_target_": "priors.vae.VAE", "image_shape": list(image_shape), "latent_dim": 8, "hidden_dim": 32}
    vae = VAE(image_shape, latent_dim=8, hidden_dim=32)
    with torch.no_grad():
        vae.decoder[-1].weight.mul_(6.0)
    return save_prior({"prior_config": config, "state_dict": vae.state_dict(), "extra": {}}, path)
