"""The CUDA-graph path of ToyWorld's training step (``train_unet(cuda_graph=True)``): ignored off
CUDA; on a GPU, the same training as the eager step."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from culbench.toyworld import model as tw_model
from culbench.toyworld import train as recipe_code


def test_the_graph_flag_changes_nothing_off_cuda() -> None:
    torch.manual_seed(0)
    unet = tw_model.build_parts(8)["unet"]
    x, t = torch.randn(2, 8, 8, 8), torch.tensor([3, 500])
    e = torch.randn(2, tw_model.MAX_TOKENS, unet.config.cross_attention_dim)
    graphed = recipe_code.unet_step(unet, "cpu", tuple(x.shape), tuple(e.shape), emb_grad=False, graph=True)
    assert torch.equal(graphed(x, t, e), unet(x, t, encoder_hidden_states=e).sample)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_graphs_train_as_the_eager_step() -> None:
    recipe = replace(recipe_code.Recipe(seed=3), unet_steps=30, n_images=256, unet_warmup=5, unet_batch=16)
    images, captions = recipe_code.render_training_set(recipe, None)
    latents = torch.randn(len(images), 8, 8, 8)  # the step's arithmetic does not need real latents

    def trained(graph: bool) -> dict[str, torch.Tensor]:
        unet, _ = recipe_code.train_unet(latents, captions, recipe, log=lambda m: None, device="cuda",
                                         cuda_graph=graph)
        return {k: v.float().cpu() for k, v in unet.state_dict().items()}

    eager, graphed = trained(False), trained(True)
    assert all(torch.allclose(eager[k], graphed[k], atol=1e-5, rtol=1e-4) for k in eager)
