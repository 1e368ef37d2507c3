"""benchmarks/gpu_check.sh keeps working: its --cpu-smoke mode runs every measurement at tiny sizes,
and without a GPU the real mode stops with one line and exit 2."""
import json
import os
import subprocess

import pytest
import torch

from tests.cli import ROOT

SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"


def run(*args):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=900, env=env)


@pytest.mark.slow
def test_cpu_smoke_measures_everything_and_writes_json():
    out = ROOT / "benchmarks" / "results" / "gpu_check_cpu_smoke.json"
    proc = run("--cpu-smoke")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    train = {(r["mode"], r["precision"], r["channels_last"]) for r in result["training"]}
    assert train == {(m, p, c) for m in ("vanilla", "rtil") for p in ("fp32", "bf16") for c in (False, True)}
    assert {(r["precision"], r["kernels"]) for r in result["inversion"]} == {
        (p, k) for p in ("fp32", "bf16") for k in ("eager", "compiled")}
    assert all(r["iterations_per_second"] > 0 for r in result["training"])
    assert all(r["ilo_steps_per_second"] > 0 and r["prilo_images_per_second"] > 0 for r in result["inversion"])


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on machines without a GPU")
def test_without_a_gpu_it_fails_with_one_line():
    proc = run()
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and proc.stderr.startswith("error: no CUDA GPU")
