"""Atomic writes (common/atomic.py): the previous file or the complete new one, never a partial one."""
import json

import pytest
import torch
from PIL import Image

from common import atomic
from common.checkpoint import load_tensors


def test_every_kind_round_trips_into_a_new_folder(tmp_path):
    folder = tmp_path / "new" / "folder"
    atomic.write_bytes(folder / "a.bin", b"\x00\x01")
    atomic.write_text(folder / "a.txt", "text")
    atomic.write_json(folder / "a.json", {"x": [1, 2.5]})
    atomic.torch_save({"t": torch.arange(3)}, folder / "a.pt")
    atomic.save_image(torch.ones(1, 4, 5) * 0.5, folder / "a.png")
    assert (folder / "a.bin").read_bytes() == b"\x00\x01" and (folder / "a.txt").read_text() == "text"
    assert json.loads((folder / "a.json").read_text()) == {"x": [1, 2.5]}
    assert (folder / "a.json").read_text().endswith("}\n")
    assert torch.equal(load_tensors(folder / "a.pt")["t"], torch.arange(3))
    assert Image.open(folder / "a.png").size == (5, 4)
    assert {p.stat().st_mode & 0o777 for p in folder.iterdir()} == {0o644}
    assert sorted(p.name for p in folder.iterdir()) == ["a.bin", "a.json", "a.png", "a.pt", "a.txt"]


def test_a_failing_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "result.pt"
    atomic.torch_save({"v": torch.zeros(2)}, path)
    before = path.read_bytes()

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic.torch_save({"v": torch.ones(10_000), "bad": Unpicklable()}, path)
    with pytest.raises(ValueError):
        atomic.write_json(tmp_path / "result.pt", {"nan": float("nan")}, allow_nan=False)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["result.pt"]
