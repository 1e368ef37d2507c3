"""Output a scientist can read: help per script, one copy of each log line, no adverts or noise,
no progress bars in log files, W&B's lines before the results table, README self-contained."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from common.help import groups, help_text
from common.output import progress_bars
from tests.cli import ROOT


def test_help_lists_the_scripts_own_groups_and_keys():
    invert = help_text("invert", "Solve inverse problems.")
    assert set(groups("invert")) == {"data", "operator", "prior", "solver", "init", "trainer", "logger"}
    assert "*vae                  The VAE of `python train.py model=vae`" in invert  # not the @package header
    assert "  model\n" not in invert and "  solver\n" in invert
    assert "*prilo" in invert and "Fienup's hybrid input-output" in invert  # options with their comment line
    assert "num_images=64\n      the first num_images of the test split" in invert
    train = help_text("train", "Train a prior.")
    assert "  model\n" in train and "  solver\n" not in train and "  init\n" not in train
    assert "overwrite=false\n      an existing export_path" in train


@pytest.mark.slow
def test_help_flag_prints_it_and_exits_0():
    proc = subprocess.run([sys.executable, str(ROOT / "invert.py"), "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("usage: python invert.py") and "Config groups" in proc.stdout


def test_progress_bars_only_on_a_terminal(monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    assert progress_bars(None) is False and progress_bars(True) is True
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert progress_bars(None) is True and progress_bars(False) is False


def test_readme_points_nowhere_outside_the_repository():
    readme = (ROOT / "README.md").read_text()
    assert "../" not in readme.replace(".../last.ckpt", "") and "shared/seeds" not in readme


@pytest.mark.slow
def test_a_run_logged_to_a_file_is_readable(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1", "WANDB_SILENT": "false"}
    proc = subprocess.run([sys.executable, str(ROOT / "invert.py"), "solver=hio", "solver.iterations=20",
                           "num_images=2", "restarts=1", "logger=wandb", f"hydra.run.dir={out}"],
                          cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    text = proc.stdout
    assert proc.returncode == 0, text[-3000:]
    assert "\r" not in text and "Predicting" not in text  # no progress bars when not on a terminal
    assert text.count("GPU available") == 1  # Lightning's info lines once
    for noise in ("💡", "Tip:", "LeafSpec", "predict returned None", "anonymous setting"):
        assert noise not in text, noise
    table = text.index("| method |")
    assert "95% confidence interval" in text[table:]
    assert "wandb sync" in text and text.index("wandb sync") < table  # W&B's closing lines come first
    assert Path(out, "invert.log").read_text().count("GPU available") == 1
