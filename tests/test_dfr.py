"""dfr's pieces: the regulariser's two reductions and its mapping options."""

from __future__ import annotations

import pytest
import torch

from culbench.methods.dfr import DFR, regularisation
from culbench.tasks import resolve_sequence


def test_regularisation_sum_and_mean() -> None:
    student = [torch.nn.Parameter(torch.tensor([1.0, 2.0])), torch.nn.Parameter(torch.tensor([[0.0, 0.0]]))]
    anchor = [torch.tensor([0.0, 0.0]), torch.tensor([[1.0, 1.0]])]
    assert regularisation(student, anchor, "sum").item() == pytest.approx(1 + 4 + 1 + 1)
    assert regularisation(student, anchor, "mean").item() == pytest.approx(7 / 4)


@pytest.mark.parametrize("mapping", ["contextual", "fixed", "null"])
def test_mapping_options(mapping: str) -> None:
    request = resolve_sequence("toy10").request(3)  # red, anchor green
    method = DFR(DFR.Config(mapping=mapping))
    mapped = method._mapped(request)
    assert len(mapped) == len(request.forget)
    if mapping == "null":
        assert set(mapped) == {""}
    else:
        assert all("green" in m and "red" not in m.split() for m in mapped)
