"""docs/DCGAN.md's inversion commands on the pretrained face DCGAN, run verbatim."""
import json
import os
import re
import subprocess

import pytest

from tests.cli import ROOT


def documented_block(name: str) -> str:
    text = (ROOT / "docs" / "DCGAN.md").read_text()
    match = re.search(rf"<!-- tested-block: {name} -->\n```bash\n(.*?)```", text, re.S)
    assert match, f"docs/DCGAN.md has no tested block {name!r}"
    return match.group(1)


@pytest.mark.slow
def test_documented_dpr_ilo_prilo_commands_run_on_the_face_generator(tmp_path):
    block = documented_block("dcgan-inversion")
    for entry in ("invert.py", "conf"):  # the commands name ./invert.py; outputs land in the scratch folder
        (tmp_path / entry).symlink_to(ROOT / entry)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = {"dpr_fourier": "dpr-random", "ilo_cs": "ilo-random", "prilo_inpainting": "prilo-mii"}
    for folder, method in runs.items():
        summary = json.loads((tmp_path / "outputs" / "dcgan" / folder / "summary.json").read_text())
        assert summary["method"] == method and summary["num_images"] == 1
        assert summary["config"]["data"]["_target_"] == "datamodules.PriorSamplesDataModule"
        assert 5 < summary["psnr_mean"] < 100


def test_wrong_layout_or_resolution_is_refused_with_one_line(tmp_path):
    import torch

    from tests.cli import run_inprocess
    from tests.test_dcgan import face_generator_file

    faces = face_generator_file()
    state = torch.load(faces, map_location="cpu", weights_only=True)["netG_state_dict"]
    bad = tmp_path / "bad.tar"
    torch.save({"netG_state_dict": {**state, "main.15.weight": torch.zeros(64, 3, 4, 4)}}, bad)
    cases = {bad: ("data=prior_samples", "128x128 images"),
             faces: ("data=mnist_embedded", "generates images of shape (3, 64, 64)")}
    for path, (data, needle) in cases.items():
        proc = run_inprocess("invert.py", f"prior.checkpoint={path}", data, "solver=dpr", "init=random", "logger=csv",
                             f"hydra.run.dir={tmp_path / 'run'}")
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], lines
        assert not (tmp_path / "run" / "metrics.csv").exists()
