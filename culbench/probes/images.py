"""Where the attack probes (``attack``, ``relearn``) get images of a concept from.

The attacker of both probes holds images of the concept it wants back. ToyWorld draws them:
renders of scenes that show the concept (each probe picks its scenes). A backend without a
renderer (Stable Diffusion) takes the standard setup of SD relearning and concept-inversion
attacks instead: images the run's **base model** (step 0, the model before any unlearning, built
with the run's model options) draws from the concept's own-name evaluation prompts, with seeds
(:func:`generation_seeds`) that are neither evaluation nor probe-judging seeds. They are kept as
the base model's latents (what encoding the decoded images with its VAE would give back, without
the round trip).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from culbench.probes.base import ProbeTarget

RENDER, BASE_MODEL = "render", "base-model"  # the two image sources
#: first generation seed: far above evaluation seeds (< 10**6) and probe-judging ones (``seeds_for``)
GENERATION_SEEDS = 2**40
_PER_SEED = 2**16  # generation seeds per concept seed


def image_source(target: ProbeTarget) -> str:
    """``render`` for a ToyWorld run (its renderer draws the concept), else ``base-model``."""
    return RENDER if target.identity["model"]["backend"] == "toyworld" else BASE_MODEL


def generation_seeds(seed: int, n: int) -> list[int]:
    """``n`` sample seeds for the base model's images of a concept, from a concept's ``seed``.

    >>> generation_seeds(0, 2) == [2**40, 2**40 + 1] and generation_seeds(1, 1) == [2**40 + 2**16]
    True
    """
    if not 0 <= n <= _PER_SEED:
        raise ValueError(f"at most {_PER_SEED} generated images per concept, not {n}")
    return [GENERATION_SEEDS + (seed % 2**31) * _PER_SEED + i for i in range(n)]


def base_model(target: ProbeTarget) -> Any:
    """The run's base model (step 0), built once per target (the target's own model at step 0)."""
    if target.step == 0:
        return target.model()
    if "base_model" not in target._cache:
        from culbench.evaluation.judge_agreement import step_model

        target._cache["base_model"] = step_model(target.run_dir, 0, target.manifest, target.seq,
                                                 target.device)
    return target._cache["base_model"]


def source_fingerprint(target: ProbeTarget) -> dict[str, Any]:
    """What a probe's images depend on beyond its config: the render version on ToyWorld, the
    base model's weights (step 0's hash) elsewhere; ``images`` names the source."""
    if image_source(target) == RENDER:
        from culbench.toyworld.render import RENDER_VERSION

        return {"images": RENDER, "render_version": RENDER_VERSION}
    from culbench.runfolder import read_step

    return {"images": BASE_MODEL, "base_model_sha256": read_step(target.run_dir, 0)["model_sha256"]}


def concept_latents(target: ProbeTarget, model: Any, cid: str, *, count: int, seed: int, steps: int,
                    render: Callable[[], tuple[torch.Tensor, list[str]]],
                    tick: Callable[..., None] = lambda n=1: None) -> tuple[torch.Tensor, list[str]]:
    """The attacker's images of ``cid``: ``model``-space latents ``(N, C, h, w)`` and captions.

    On ToyWorld: ``render()`` (the probe's own renders). Elsewhere: ``count`` images the base model
    draws with ``steps`` DDIM steps and the run's guidance, image ``j`` from evaluation prompt
    ``j mod P`` (its caption), seeds ``generation_seeds(seed, count)``; ``tick`` counts them.
    """
    if image_source(target) == RENDER:
        return render()
    evaluation = list(target.seq.prompts[cid].eval)
    captions = [evaluation[j % len(evaluation)] for j in range(count)]
    latents = base_model(target).sample(captions, generation_seeds(seed, count), steps=steps,
                                        guidance=target.sampler["guidance"], output="latent",
                                        progress=tick)
    return latents.to(model.device, next(model.unet.parameters()).dtype), captions


@torch.no_grad()
def render_latents(model: Any, prompts: Sequence[str], copies: int, seed: int) -> torch.Tensor:
    """VAE latents ``(copies·P, C, h, w)`` of jittered ToyWorld renders of the scenes ``prompts``
    describe; row ``j`` shows prompt ``j mod P``."""
    from culbench.toyworld.data import render_prompts
    from culbench.toyworld.model import to_pixels

    images = render_prompts(list(prompts) * copies, seed=seed).to(model.device)
    latents = model.vae.encode(to_pixels(images)).latent_dist.mean
    return latents * model.vae.config.scaling_factor
