"""Every row of docs/BAD_INPUT.md: one `error:` line with the documented message, exit 2, nothing written."""
from pathlib import Path

import pytest
import torch

from tests.bad_inputs import CASES, fill, make_files, run_entry, table
from tests.cli import run_cli

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return make_files(tmp_path_factory.mktemp("bad_input_files"))


def test_the_document_lists_exactly_these_cases():
    doc = (ROOT / "docs" / "BAD_INPUT.md").read_text()
    assert table() in doc, "docs/BAD_INPUT.md is out of date: python -m tests.bad_inputs prints its table"
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", CASES, ids=[f"{n + 1}:{c.script}:{c.what}" for n, c in enumerate(CASES)])
def test_bad_input_gives_its_one_line_and_exit_2(case, files, tmp_path):
    if case.needs_no_gpu and torch.cuda.is_available():
        pytest.skip("the machine has a GPU")
    out = tmp_path / "run"
    before = {p: p.stat().st_mtime_ns for p in Path(files["tmp"]).iterdir()}
    code, stderr = run_entry(case, files, out)
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), stderr[-2000:]
    assert fill(case.message, files) in lines[0], lines[0]
    assert not out.exists() or not any(out.rglob("*.csv")) and not any(out.rglob("*.pt"))
    assert {p: p.stat().st_mtime_ns for p in Path(files["tmp"]).iterdir()} == before  # nothing touched or added


@pytest.mark.slow
def test_entry_points_print_the_same_lines(files, tmp_path):
    """The real command line (Hydra, a fresh process) for a few rows."""
    for number in (1, 10, 31):
        case = CASES[number - 1]
        proc = run_cli(f"{case.script}.py", f"hydra.run.dir={tmp_path / 'run'}", "logger=csv",
                       *(fill(a, files) for a in case.argv))
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert proc.returncode == 2 and len(lines) == 1 and fill(case.message, files) in lines[0], proc.stderr[-2000:]
    assert not any((tmp_path / "run").rglob("*.csv")) and not (Path(files["tmp"]) / "victim.txt").exists()
