"""CUIG's regularisers as add-ons: ``finetune+l2sp`` and friends do what they claim, on any
gradient-trained method, and refuse a method that never trains through the Trainer."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from culbench import runfolder as rf
from culbench.catalog import METHODS
from culbench.errors import CulbenchError
from culbench.regularisers import GradProj, projector
from culbench.runner import run


def _step1(out: Path, method: str, *overrides: str) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The trained weights before and after step 1 of ``method`` on the mock sequence."""
    run_dir = run(method, sequence="mock", profile="smoke", out=out, threads=1, overrides=overrides)
    from culbench.catalog import MODELS

    model = MODELS.get("mock")(device="cpu")
    base = model.state_dict()
    after = rf.load_weights(rf.step_dir(run_dir, 1) / rf.WEIGHTS, base)
    return base, after


def _moved(base: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> tuple[float, float]:
    """(L2 distance, share of elements changed) between two state dicts."""
    diffs = [(after[k].float() - base[k].float()).flatten() for k in base]
    flat = torch.cat(diffs)
    return float(flat.norm()), float((flat != 0).float().mean())


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> tuple[float, float]:
    return _moved(*_step1(tmp_path_factory.mktemp("plain"), "finetune"))


def test_l2sp_keeps_the_weights_near_where_the_request_started(plain, tmp_path: Path) -> None:
    anchored = _moved(*_step1(tmp_path, "finetune+l2sp", "l2sp.weight=1e7"))
    assert anchored[0] < 0.5 * plain[0]


def test_l1sp_shrinks_the_update_too(plain, tmp_path: Path) -> None:
    assert _moved(*_step1(tmp_path, "finetune+l1sp", "l1sp.weight=1e5"))[0] < plain[0]


def test_selft_changes_only_its_top_share(plain, tmp_path: Path) -> None:
    base, after = _step1(tmp_path, "finetune+selft", "selft.topk=0.05")
    assert _moved(base, after)[1] <= 0.05 + 1e-6 < plain[1]


def test_gradproj_removes_the_gradient_along_the_kept_embeddings() -> None:
    gen = torch.Generator().manual_seed(0)
    C = torch.randn(16, 5, generator=gen)
    reg = GradProj()
    reg._projector = projector(C)
    w = torch.nn.Parameter(torch.randn(8, 16, generator=gen))
    w.grad = torch.randn(8, 16, generator=gen)
    before = w.grad.clone()
    reg._which = [True]
    reg.on_grad([w], 0)
    assert float((w.grad @ C).abs().max()) < 1e-4 < float((before @ C).abs().max())
    # what is left is the part of the gradient orthogonal to C: projecting again changes nothing
    assert torch.allclose(w.grad @ reg._projector, w.grad, atol=1e-4)


def test_gradproj_runs_in_a_method_and_moves_kv_less_along_kept_concepts(tmp_path: Path) -> None:
    base, after = _step1(tmp_path, "finetune+gradproj", "finetune.param_group=xattn_kv")
    plain_base, plain_after = _step1(tmp_path / "p", "finetune", "finetune.param_group=xattn_kv")
    from culbench.api import StepContext
    from culbench.catalog import MODELS
    from culbench.tasks import resolve_sequence

    reg = GradProj()
    reg.prepare(MODELS.get("mock")(device="cpu"), resolve_sequence("mock").request(1), StepContext(step=1, seed=0))
    P = reg._projector
    inside = []  # share of the K/V update that lies in the kept concepts' span, with and without
    for b, a in ((base, after), (plain_base, plain_after)):
        kv = [(a[k] - b[k]).float() for k in b if a[k].dim() == 2 and a[k].shape[1] == P.shape[0]
              and not torch.equal(a[k], b[k])]
        assert kv
        inside.append(sum(float((d - d @ P).norm() ** 2) for d in kv) / sum(float(d.norm() ** 2) for d in kv))
    assert inside[0] < 0.5 * inside[1], inside  # Adam rescales elements: not exactly 0


def test_a_closed_form_method_refuses_a_regulariser(tmp_path: Path) -> None:
    with pytest.raises(CulbenchError, match="regulariser l2sp never acted.*Trainer"):
        run("uce+l2sp", sequence="mock", profile="smoke", out=tmp_path, threads=1)


def test_composed_names_and_settings_are_checked() -> None:
    from culbench.config import build_config, parse_overrides

    cls = METHODS.get("esd+l2sp+selft")
    config = build_config(cls.Config, "esd+l2sp+selft",
                          parse_overrides(["esd.lr=1e-4", "l2sp.weight=10", "selft.topk=0.2"], "esd+l2sp+selft"))
    assert (config.lr, config.l2sp.weight, config.selft.topk) == (1e-4, 10.0, 0.2)
    with pytest.raises(CulbenchError, match="unknown regulariser 'l2spp'.*did you mean: l2sp"):
        METHODS.get("esd+l2spp")
    with pytest.raises(CulbenchError, match="unknown config key 'l2sp.wieght'"):
        build_config(cls.Config, "esd+l2sp+selft", parse_overrides(["l2sp.wieght=1"], "esd+l2sp+selft"))
    with pytest.raises(CulbenchError, match="twice"):
        METHODS.get("esd+l2sp+l2sp")


def test_gradproj_refuses_a_method_that_trains_no_kv_projection(tmp_path: Path) -> None:
    with pytest.raises(CulbenchError, match="gradproj: the method trains no cross-attention key/value projection"):
        run("finetune+gradproj", sequence="mock", profile="smoke", out=tmp_path, threads=1,
            overrides=["finetune.param_group=non_xattn"])
