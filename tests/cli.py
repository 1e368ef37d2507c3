"""Running the entry points as users do, in a subprocess."""
from __future__ import annotations

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
