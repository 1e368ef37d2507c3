"""Measurement files are checked before solving: each inconsistency is one line."""
import pytest
import torch

from common.errors import UserInputError
from operators import FourierPhaseRetrieval, GaussianPhaseRetrieval, operator_state
from operators.measurement_file import load_measurement_file

SHAPE = (1, 8, 8)


def write(path, y=None, index=None, operator=None, **extra):
    op = operator or FourierPhaseRetrieval(SHAPE)
    y = op(torch.rand(4, *SHAPE)) if y is None else y
    index = torch.arange(len(y)) if index is None else index
    torch.save({"y": y, "index": index, "operator": operator_state(op), **extra}, path)
    return path


def test_a_valid_file_gives_samples_and_its_operator(tmp_path):
    samples, op = load_measurement_file(write(tmp_path / "m.pt", index=torch.tensor([7, 3, 9, 0])),
                                        FourierPhaseRetrieval(SHAPE))
    assert [s["index"] for s in samples] == [7, 3, 9, 0] and op.name == "fourier_pr"


@pytest.mark.parametrize("kwargs, needle", [
    ({"index": torch.tensor([0, 1, 1, 1])}, "duplicate sample indices (1 repeated, e.g. 1 x3)"),
    ({"index": torch.zeros(4, dtype=torch.long)}, "duplicate sample indices"),
    ({"index": torch.tensor([0, -1, 2, 3])}, "negative sample indices"),
    ({"index": torch.tensor([0.0, 1.0, 2.0, 3.0])}, "1-D integer tensor"),
    ({"index": torch.arange(3)}, "holds 4 measurements but 3 indices"),
    ({"y": torch.full((4, 1, 8, 8), float("nan"))}, "NaN or Inf"),
    ({"y": -torch.ones(4, 1, 8, 8)}, "must be magnitudes >= 0"),
    ({"y": torch.ones(4, 1, 9, 9)}, "do not fit operator"),
    ({"y": torch.ones(0, 1, 8, 8), "index": torch.arange(0)}, "holds no measurements"),
])
def test_inconsistent_files_are_refused(tmp_path, kwargs, needle):
    with pytest.raises(UserInputError) as err:
        load_measurement_file(write(tmp_path / "m.pt", **kwargs), FourierPhaseRetrieval(SHAPE))
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_other_files_and_operators_are_refused(tmp_path):
    fourier = FourierPhaseRetrieval(SHAPE)
    torch.save(operator_state(fourier), tmp_path / "op.pt")
    for path, needle in ((tmp_path / "op.pt", "is an operator file"), (tmp_path / "none.pt", "does not exist"),
                         (tmp_path, "is a directory")):
        with pytest.raises(UserInputError, match=needle):
            load_measurement_file(path, fourier)
    with pytest.raises(UserInputError, match="do not match the configured operator"):
        load_measurement_file(write(tmp_path / "m.pt"), GaussianPhaseRetrieval(SHAPE, m=10))
