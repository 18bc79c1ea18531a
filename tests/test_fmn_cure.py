"""FMN and CURE do what they claim, and the helper FMN rests on records what the UNet attends to.

* ``culbench.training.cross_attention_maps``: every cross-attention layer's probabilities, on the
  mock and ToyWorld UNets (SD: tests/test_sd_backend.py), with the predictions unchanged.
* ``fmn``: after re-steering, the concept's tokens (and end-of-text) receive less attention on its
  forget prompts' renders; it trains through the Trainer, so ``fmn+l2sp`` runs.
* ``cure``: K and V stop responding along the concept's directions and barely change for the rows
  kept; each request multiplies the *current* weights by the request's own I − P_dis.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from culbench.api import StepContext, substitute
from culbench.catalog import METHODS, MODELS
from culbench.tasks import resolve_sequence
from culbench.training import cross_attention_maps, encode_with_input_vectors, noised, prompt_rows


def _kv(model) -> dict[str, torch.Tensor]:  # noqa: ANN001
    kv = set(model.parameter_groups()["xattn_kv"])
    return {n: p.detach().clone() for n, p in model.unet.named_parameters() if n in kv}


@pytest.mark.parametrize("backend", ["mock", "toyworld"])
def test_cross_attention_maps_record_every_layer_and_change_nothing(backend: str) -> None:
    model = MODELS.get(backend)(device="cpu")
    prompts = ["a red square on the left", "a blue circle"]
    x, t, emb = torch.randn(2, *model.latent_shape), torch.tensor([10, 700]), model.encode(prompts)
    fused = model.predict(x, t, emb)
    before = [m.processor for n, m in model.unet.named_modules() if n.endswith("attn2")]
    with cross_attention_maps(model) as maps:
        recorded = model.predict(x, t, emb)
    assert len(maps) == len(before) and all(m.shape[0] == 2 and m.shape[-1] == emb.shape[1] for m in maps)
    assert all(torch.allclose(m.sum(-1), torch.ones(())) for m in maps)  # (B, heads, pixels, tokens)
    torch.testing.assert_close(recorded, fused, rtol=1e-4, atol=1e-5)
    assert [m.processor for n, m in model.unet.named_modules() if n.endswith("attn2")] == before
    with cross_attention_maps(model) as maps:  # differentiable: gradients reach the keys
        model.predict(x, t, emb)
        maps[0][..., 2].sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters("xattn_kv"))


def _fmn_probe(model, request):  # noqa: ANN001, ANN202
    """A fixed batch of the concept's renders, noised, and the attention norm FMN minimises."""
    fmn_cls = METHODS.get("fmn")
    from culbench.methods.fmn import _Prompts

    prompts = list(request.target.prompts)
    x0 = model.sample(prompts, list(range(len(prompts))), steps=4, guidance=1.0, output="latent")
    x_t, t, _ = noised(model, x0, model.num_train_timesteps, torch.Generator().manual_seed(0))
    bank = _Prompts(model.tokenizer, prompts, request.concept.name, use_pooler=True)
    emb = model.encode(prompts)

    def norm(m) -> float:  # noqa: ANN001
        with torch.no_grad():
            return float(fmn_cls.attention_norm(m, x_t, t, emb, bank.mask))

    return norm


def test_fmn_lowers_the_attention_the_concept_receives_and_trains_only_its_group() -> None:
    fmn_cls = METHODS.get("fmn")
    model = MODELS.get("mock")(device="cpu")
    request = resolve_sequence("mock").request(1)
    norm = _fmn_probe(model, request)
    before, kv = norm(model), _kv(model)
    config = fmn_cls.Config(lr=3e-2, iterations=20, bank_size=8, bank_steps=2, ti_steps=3)
    edited = fmn_cls(config).unlearn(model, request, StepContext(step=1, seed=0))
    assert norm(edited) < 0.85 * before
    changed = {n for n, p in edited.unet.named_parameters() if not torch.equal(p, model.unet.get_parameter(n))}
    assert changed and changed <= set(kv) and all(torch.equal(kv[n], p) for n, p in _kv(model).items())


def test_fmn_textual_inversion_finds_the_concept_the_renders_show() -> None:
    """Renders of "red" prompts, inverted from the word "green" in its place: the learnt vector
    denoises them better than "green" does."""
    from culbench.methods.fmn import _Prompts

    fmn_cls = METHODS.get("fmn")
    model = MODELS.get("toyworld")(device="cpu", version=2)
    prompts = [p for p in resolve_sequence("toy10@2").prompts["red"].val[:8]]
    x0 = model.sample([p.prompt for p in prompts], list(range(8)), steps=10, guidance=1.0, output="latent")
    bank = _Prompts(model.tokenizer, [substitute(p.prompt, "red", "green") for p in prompts], "green", True)
    fmn = fmn_cls(fmn_cls.Config(ti_steps=40, ti_lr=1e-2, batch_size=8))
    ctx = StepContext(step=1, seed=0)
    vectors = fmn._invert(model, bank, x0, ctx, ctx.rng(), ctx.generator(), "red")
    green = model.text_encoder.get_input_embeddings().weight[bank.ids[bank.slots == 0][:1]]
    x0, ids, slots = x0.repeat(4, 1, 1, 1), bank.ids.repeat(4, 1), bank.slots.repeat(4, 1)
    x_t, t, noise = noised(model, x0, model.num_train_timesteps, torch.Generator().manual_seed(5))

    def loss(v: torch.Tensor) -> float:
        with torch.no_grad():
            emb = encode_with_input_vectors(model, ids, slots, v)
            return float(torch.nn.functional.mse_loss(model.predict(x_t, t, emb), model.target(x0, noise, t)))

    assert loss(vectors) < 0.5 * loss(green), (loss(vectors), loss(green))


def test_fmn_takes_cuig_regularisers(tmp_path: Path) -> None:
    from culbench.runner import run

    run_dir = run("fmn+l2sp", sequence="mock", profile="smoke", out=tmp_path, threads=1,
                  overrides=("l2sp.weight=1e4",))  # l2sp acted, or the run would have stopped
    assert (run_dir / "summary.json").is_file()


def test_cure_stops_kv_responding_along_the_concept_and_keeps_the_retained_rows() -> None:
    """Linear algebra of the Spectral Eraser: forget rows along e0 (and a shared e1), kept rows along
    e1 and e2; after W ← W (I − P_dis), K/V outputs for the forget rows' own direction are gone,
    those for the kept rows barely move."""
    from culbench.methods.cure import spectral_eraser

    gen = torch.Generator().manual_seed(0)
    noise = 0.01 * torch.randn(40, 8, generator=gen)
    forget = torch.zeros(40, 8)
    forget[:20, 0], forget[20:, 1] = 3.0, 1.0
    keep = torch.zeros(40, 8)
    keep[:20, 1], keep[20:, 2] = 1.0, 1.0
    forget, keep = forget + noise, keep + noise.roll(1, 0)
    W = torch.randn(6, 8, generator=gen, dtype=torch.float64)
    edited = W @ (torch.eye(8, dtype=torch.float64) - spectral_eraser(forget, keep, alpha=50.0))
    e0 = torch.eye(8, dtype=torch.float64)[0]
    assert (edited @ e0).norm() < 0.05 * (W @ e0).norm()
    kept = keep.double() @ W.T
    assert (keep.double() @ edited.T - kept).norm() < 0.05 * kept.norm()


@pytest.mark.parametrize("backend", ["mock", "toyworld"])
def test_cure_edits_kv_sequentially_and_erases_more_than_it_keeps(backend: str) -> None:
    cure_cls = METHODS.get("cure")
    model = MODELS.get(backend)(device="cpu")
    seq = resolve_sequence("mock" if backend == "mock" else "toy10@2")
    cure = cure_cls()
    ctx1, ctx2 = StepContext(step=1, seed=1), StepContext(step=2, seed=2)
    first = cure.unlearn(model, seq.request(1), ctx1)
    second = cure.unlearn(first, seq.request(2), ctx2)
    m1, m2 = cure.projection(model, seq.request(1), ctx1), cure.projection(first, seq.request(2), ctx2)
    for name, w0 in _kv(model).items():  # W_2 = W_0 (I − P_1)(I − P_2): each from the current weights
        torch.testing.assert_close(second.unet.get_parameter(name).double(), w0.double() @ m1 @ m2,
                                   rtol=1e-4, atol=1e-5)
    request = seq.request(1)
    rng = ctx1.rng()
    forget = cure.forget_rows(model, request, rng).double()
    kept = torch.cat(prompt_rows(model, request.retain_prompts("all"))).double()
    for name, w0 in _kv(model).items():
        w1 = first.unet.get_parameter(name).double()
        lost = 1 - (forget @ w1.T).norm() / (forget @ w0.double().T).norm()
        moved = (kept @ (w1 - w0.double()).T).norm() / (kept @ w0.double().T).norm()
        assert lost > 0 and moved < lost, (name, float(lost), float(moved))
