"""benchmarks/batch_rounding.py: a row per operator config, exact equality where the operator acts pixel by pixel,
and agreement to float32 rounding everywhere (a batch never changes an image's measurement beyond rounding)."""
from __future__ import annotations

import json

import pytest

import benchmarks.common
from benchmarks.batch_rounding import compare, main
from common.cli import CONF_DIR

OPERATORS = sorted(p.stem for p in (CONF_DIR / "operator").glob("*.yaml"))


@pytest.mark.parametrize("operator", ["inpainting", "denoising"])
def test_a_pixelwise_operator_gives_a_batch_row_the_bits_of_the_image_alone(operator):
    row = compare(operator, batch=3)
    assert row["measurement_identical"] and row["gradient_identical"]
    assert row["measurement_max_abs_diff"] == 0 == row["gradient_max_abs_diff"]


def test_every_operator_config_gets_a_row_that_agrees_to_float32_rounding(tmp_path, monkeypatch):
    monkeypatch.setattr(benchmarks.common, "RESULTS_DIR", tmp_path)
    rows = main(["--batch", "2"])
    saved = json.loads((tmp_path / "batch_rounding.json").read_text())
    assert [r["operator"] for r in rows] == [r["operator"] for r in saved["rows"]] == OPERATORS
    for r in rows:
        assert r["measurement_identical"] == (r["measurement_max_abs_diff"] == 0)
        assert r["measurement_max_abs_diff"] < 1e-4 and r["gradient_max_abs_diff"] < 1e-3, r
