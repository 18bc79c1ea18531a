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


def _tiny_pair() -> tuple:
    from culbench.mocks.model import build_mock_model
    from culbench.training import trainable_copy

    teacher = build_mock_model()
    student, params = trainable_copy(teacher, "full")
    with torch.no_grad():  # make the student differ from the teacher
        for p in params:
            p.add_(0.05 * torch.randn_like(p))
    return teacher, student


def _hand_mse(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a - b) ** 2).sum() / a.numel())


def test_loss_terms_match_a_hand_computation() -> None:
    from culbench.methods.dfr import losses

    torch.manual_seed(0)
    teacher, student = _tiny_pair()
    base = _tiny_pair()[1]  # a third, different model as the "base" preservation teacher
    shape = teacher.latent_shape
    xf, xr = torch.randn(3, *shape), torch.randn(2, *shape)
    tf, tr = torch.tensor([5, 300, 699]), torch.tensor([10, 900])
    forget, mapped = ["a red star"] * 3, ["a green star", "a blue star", "a green star"]
    retain = ["a pink circle", "a yellow square"]
    with torch.no_grad():
        s_f = student.predict(xf, tf, student.encode(forget))
        s_r = student.predict(xr, tr, student.encode(retain))
        want_u = _hand_mse(s_f, teacher.predict(xf, tf, teacher.encode(mapped)))
        want_p = _hand_mse(s_r, teacher.predict(xr, tr, teacher.encode(retain)))
        want_p_base = _hand_mse(s_r, base.predict(xr, tr, base.encode(retain)))
        true_target = torch.randn_like(xr)
        want_p_replay = _hand_mse(s_r, true_target)

    loss_u, loss_p = losses(student, teacher, teacher, (xf, tf), forget, mapped, (xr, tr), retain)
    assert loss_u.item() == pytest.approx(want_u, rel=1e-4) and loss_p.item() == pytest.approx(want_p, rel=1e-4)
    assert want_u > 0 and want_p > 0  # the student really differs from the teacher
    _, loss_p = losses(student, teacher, base, (xf, tf), forget, mapped, (xr, tr), retain)
    assert loss_p.item() == pytest.approx(want_p_base, rel=1e-4)
    _, loss_p = losses(student, teacher, teacher, (xf, tf), forget, mapped, (xr, tr), retain, true_target)
    assert loss_p.item() == pytest.approx(want_p_replay, rel=1e-4)
    # gradients reach the student only
    (loss_u + loss_p).backward()
    assert all(p.grad is None for p in teacher.unet.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.unet.parameters())


def test_unlearn_never_modifies_the_teacher_or_the_base() -> None:
    from culbench.api import Budget, StepContext
    from culbench.mocks.model import build_mock_model

    seq = resolve_sequence("mock")
    model, base = build_mock_model(), build_mock_model()
    before = {k: v.clone() for k, v in model.unet.state_dict().items()}
    ctx = StepContext(step=1, seed=0, budget=Budget(2, 4), base_model=lambda: base)
    method = DFR(DFR.Config(iterations=2, teacher="base"))
    method.on_sequence_start(model, ctx)
    student = method.unlearn(model, seq.request(1), ctx)
    after = model.unet.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # M_{k-1} (the teacher) untouched
    assert all(torch.equal(before[k], v) for k, v in base.unet.state_dict().items())  # base untouched
    assert any(not torch.equal(before[k], v) for k, v in student.unet.state_dict().items())  # student moved


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_closed_form_pull_equals_the_regularisation_loss_term(reduction: str) -> None:
    """dfr adds λ_reg·∇L_reg through ``step(pull=...)``: the update must equal autograd on the term."""
    from culbench.training import optimiser, step

    torch.manual_seed(0)
    start = [torch.randn(4, 3), torch.randn(5)]
    anchor = [torch.randn(4, 3), torch.randn(5)]
    x = torch.randn(4)
    lam = 0.3
    scale = 1.0 / 17 if reduction == "mean" else 1.0
    after = []
    for closed in (False, True):
        params = [torch.nn.Parameter(t.clone()) for t in start]
        opt, sched = optimiser(params, lr=0.1, warmup=1, weight_decay=1e-2)
        for _ in range(3):
            loss = ((params[0] @ x[:3]) ** 2).sum() + params[1].sum()
            if closed:
                step(loss, opt, sched, params, 1.0, pull=(anchor, lam * scale))
            else:
                step(loss + lam * regularisation(params, anchor, reduction), opt, sched, params, 1.0)
        after.append([p.detach() for p in params])
    for a, b in zip(*after):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_weighted_pull_equals_the_ewc_loss_term() -> None:
    """sa's EWC term goes through ``step(pull=..., pull_weights=fisher)``: same update as autograd."""
    from culbench.training import optimiser, step

    torch.manual_seed(1)
    start, anchor, fisher = [torch.randn(3, 2)], [torch.randn(3, 2)], [torch.rand(3, 2)]
    after = []
    for closed in (False, True):
        params = [torch.nn.Parameter(start[0].clone())]
        opt, sched = optimiser(params, lr=0.05)
        for _ in range(3):
            loss = (params[0] ** 3).sum()
            if closed:
                step(loss, opt, sched, params, 1.0, pull=(anchor, 50.0), pull_weights=fisher)
            else:
                ewc = (fisher[0] * (params[0] - anchor[0]) ** 2).sum()
                step(loss + 50.0 * ewc, opt, sched, params, 1.0)
        after.append(params[0].detach())
    torch.testing.assert_close(after[0], after[1], rtol=1e-6, atol=1e-7)


def test_lacu_replays_the_closest_given_retain_concepts() -> None:
    import torch

    from culbench.catalog import METHODS, MODELS
    from culbench.tasks import resolve_sequence

    lacu = METHODS.get("lacu")
    request = resolve_sequence("mock").request(2)
    model = MODELS.get("mock")(device="cpu")
    given = [s for s in request.related + request.general if s.prompts]
    one = lacu(lacu.Config(lacu_replay_concepts=1))._local_replay(request, model, torch.Generator().manual_seed(0))
    again = lacu(lacu.Config(lacu_replay_concepts=1))._local_replay(request, model, torch.Generator().manual_seed(0))
    every = lacu(lacu.Config(lacu_replay_concepts=99))._local_replay(request, model, torch.Generator().manual_seed(0))
    assert one == again and one in [list(s.prompts) for s in given]  # one whole concept's prompts
    assert every == [p for s in given for p in s.prompts]  # all of them, in the request's order
    assert lacu.Config().mapping == "lacu" and lacu.role == "ranked"
