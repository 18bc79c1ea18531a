"""SPM does what its docstring claims.

* Each request adds one rank-``rank`` membrane per ``Linear`` / ``Conv2d`` of the transformer blocks
  (cross-attention only with ``target="xattn"``), merged into the weights: every changed tensor is
  such a layer's weight and its change has rank 1; the merged weight gives the hooked branch's output.
* The erase term works (the concept's prediction moves toward the negatively guided target) and the
  anchor samples follow the reference's recipe.
* It trains through culbench's optimiser step with ``ctx.regularisers``: ``spm+l2sp`` runs,
  ``gradproj`` is refused.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from culbench.api import CulbenchError, StepContext
from culbench.catalog import METHODS, MODELS
from culbench.tasks import resolve_sequence

SMALL = {"iterations": 3, "batch_size": 2, "anchor_batch": 2, "ddim_steps": 3}


def _deltas(before, after) -> dict[str, torch.Tensor]:  # noqa: ANN001
    b = before.state_dict()
    return {k: v - b[k] for k, v in after.state_dict().items() if not torch.equal(v, b[k])}


@pytest.mark.parametrize("target", ["transformer", "xattn"])
def test_each_request_merges_one_rank1_membrane_into_the_transformer_layers(target: str) -> None:
    from culbench.methods.spm import membrane_layers

    spm_cls = METHODS.get("spm")
    model = MODELS.get("mock")(device="cpu")
    layers = {f"{name}.weight" for name, _ in membrane_layers(model.unet, target)}
    assert any("proj_in" in n for n in layers) == (target == "transformer")
    assert all(".attn2." in n for n in layers) == (target == "xattn")
    seq = resolve_sequence("mock")
    spm = spm_cls(spm_cls.Config(target=target, **SMALL))
    base = lambda: model  # noqa: E731
    first = spm.unlearn(model, seq.request(1), StepContext(step=1, seed=1, base_model=base))
    second = spm.unlearn(first, seq.request(2), StepContext(step=2, seed=2, base_model=base))
    for before, after in ((model, first), (first, second)):
        delta = _deltas(before, after)
        assert set(delta) == layers
        for d in delta.values():  # rank 1 up to float32 rounding of W + ΔW − W
            sv = torch.linalg.svdvals(d.flatten(1).double())
            assert sv[0] > 0 and (len(sv) == 1 or sv[1] < 1e-3 * sv[0])


def test_the_merged_weight_gives_the_membrane_branch_output() -> None:
    from culbench.methods.spm import Membrane

    gen = torch.Generator().manual_seed(0)
    cases = ((torch.nn.Linear(6, 5), torch.randn(3, 4, 6)),
             (torch.nn.Conv2d(6, 5, 3, padding=1), torch.randn(2, 6, 4, 4)))
    for layer, x in cases:
        mem = Membrane(layer, rank=1, alpha=1.0, gen=gen)
        assert not mem(x).any()  # up starts at zero: training starts from the model itself
        with torch.no_grad():
            mem.up.normal_(generator=gen)
            hooked = layer(x) + mem(x)
            layer.weight.add_(mem.weight_delta())
        torch.testing.assert_close(layer(x), hooked, rtol=1e-5, atol=1e-5)


def test_random_anchors_follow_the_reference_sampling() -> None:
    from culbench.methods.spm import random_anchors

    target = torch.randn(7, 16)
    anchors = random_anchors(target, 50, random.Random(0), torch.Generator().manual_seed(0))
    ratio = anchors.flatten(1).norm(dim=1) / target.norm()
    assert anchors.shape == (50, 7, 16) and bool(((ratio > 0.8 - 1e-5) & (ratio < 1.2 + 1e-5)).all())
    assert float(ratio.std()) > 0.05  # scaled at random, not all to one norm


def test_the_erase_term_moves_the_concept_toward_the_negatively_guided_target() -> None:
    spm_cls = METHODS.get("spm")
    model = MODELS.get("mock")(device="cpu")
    request = resolve_sequence("mock").request(1)
    prompts = list(request.target.prompts)[:4]
    x_t, t = model.sample_partial(prompts, [0, 1, 2, 3], steps=4, stop=2, guidance=3.0)
    with torch.no_grad():
        e_null = model.predict(x_t, t, model.encode([""] * 4))
        goal = 2 * e_null - model.predict(x_t, t, model.encode(prompts))

    def gap(m) -> float:  # noqa: ANN001
        with torch.no_grad():
            return float(torch.nn.functional.mse_loss(m.predict(x_t, t, m.encode(prompts)), goal))

    config = spm_cls.Config(lr=1e-2, iterations=20, batch_size=4, anchor_batch=2, ddim_steps=4, la_strength=1.0)
    edited = spm_cls(config).unlearn(model, request, StepContext(step=1, seed=0))
    assert gap(edited) < 0.8 * gap(model), (gap(edited), gap(model))


def test_spm_takes_l2sp_and_refuses_gradproj_and_a_base_anchor(tmp_path: Path) -> None:
    from culbench.runner import run

    run_dir = run("spm+l2sp", sequence="mock", profile="smoke", out=tmp_path, threads=1,
                  overrides=("l2sp.weight=10",))  # l2sp acted, or the run would have stopped
    assert (run_dir / "summary.json").is_file()
    with pytest.raises(CulbenchError, match="gradproj: the method trains no cross-attention key/value projection"):
        run("spm+gradproj", sequence="mock", profile="smoke", out=tmp_path / "proj", threads=1)
    with pytest.raises(CulbenchError, match=r"l2sp.anchor=base: the method trains parameters the step-0 model"):
        run("spm+l2sp", sequence="mock", profile="smoke", out=tmp_path / "base", threads=1,
            overrides=("l2sp.anchor=base",))  # refused by the regulariser itself, when training opens


def test_latent_anchoring_keeps_the_anchor_predictions_in_place() -> None:
    spm_cls = METHODS.get("spm")
    model = MODELS.get("mock")(device="cpu")
    request = resolve_sequence("mock").request(1)
    kept = [p for s in (*request.related, *request.general) for p in s.prompts][:4]
    x_t, t = model.sample_partial(kept, [0, 1, 2, 3], steps=4, stop=2, guidance=1.0)

    def drift(m) -> float:  # noqa: ANN001
        with torch.no_grad():
            return float((m.predict(x_t, t, m.encode(kept)) - model.predict(x_t, t, model.encode(kept))).pow(2).mean())

    def edited(la_strength: float):  # noqa: ANN202
        config = spm_cls.Config(lr=1e-2, iterations=15, batch_size=4, anchor_batch=4, ddim_steps=4,
                                anchors="retain", la_strength=la_strength)
        return spm_cls(config).unlearn(model, request, StepContext(step=1, seed=0))

    assert drift(edited(1000.0)) < 0.5 * drift(edited(0.0))
