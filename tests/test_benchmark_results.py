"""benchmarks.common.save_results: every results file says what hardware measured it (RESULTS.md quotes it)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

import benchmarks.common
from benchmarks.common import cpu_model, save_results


def test_results_file_names_the_cpu_model_count_gpus_and_torch_build(tmp_path, monkeypatch):
    monkeypatch.setattr(benchmarks.common, "RESULTS_DIR", tmp_path)
    save_results("hardware_probe", {"rows": []})
    machine = json.loads((tmp_path / "hardware_probe.json").read_text())["machine"]
    assert machine.startswith(f"{cpu_model()}, {os.cpu_count()} CPUs, ")
    assert machine.endswith(f", torch {torch.__version__}")
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    assert all(name in machine for name in gpus) and (("no GPU" in machine) == (not gpus))


def test_cpu_model_is_the_model_name_the_os_reports_not_the_architecture():
    cpuinfo = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
             if line.startswith("model name")] if cpuinfo.exists() else []
    if names:
        assert cpu_model() == names[0]
    else:
        assert cpu_model()  # the architecture at least, e.g. on macOS
