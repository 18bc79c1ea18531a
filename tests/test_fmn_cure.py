"""``culbench.training.cross_attention_maps`` records what every cross-attention layer attends to, on
the mock and ToyWorld UNets (SD: tests/test_sd_backend.py), with the predictions unchanged."""

from __future__ import annotations

import pytest
import torch

from culbench.catalog import MODELS
from culbench.training import cross_attention_maps


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
