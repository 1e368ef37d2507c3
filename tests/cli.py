"""Running the entry points as users do, in a subprocess."""
from __future__ import annotations

import contextlib
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


def run_in_process(script: str, argv: list[str], edit=None) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of ``python <script>.py *argv`` run in this process, through the same
    pre-Hydra check and entry function (Hydra's own run-directory creation is left out; ``hydra.run.dir``
    is the run directory). ``edit(cfg)`` may change the composed job config first (e.g. shorten a solver)."""
    import importlib

    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf, open_dict

    from common.cli import check_overrides

    stdout, stderr = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
            try:
                cfg = check_overrides(script, argv)
                for node in (cfg, cfg.hydra, cfg.hydra.runtime):
                    OmegaConf.set_readonly(node, False)
                with open_dict(cfg):
                    cfg.hydra.runtime.output_dir = str(cfg.hydra.run.dir)
                HydraConfig.instance().set_config(cfg)
                job = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
                if edit is not None:
                    edit(job)
                getattr(importlib.import_module(script), script)(job)
                return 0, stdout.getvalue(), stderr.getvalue()
            except SystemExit as exit_:
                return int(exit_.code or 0), stdout.getvalue(), stderr.getvalue()
    finally:
        HydraConfig.instance().cfg = None  # later code must not see this run's Hydra config


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
