"""The adversarial prompt attack probe: can an attacker who sees the weights find words that
make the unlearned model draw a forgotten concept again?

White-box concept inversion in the manner of Pham et al., "Circumventing Concept Erasure
Methods for Text-to-Image Generative Models" (ICLR 2024): per forgotten concept, the concept's
name in its evaluation prompts is replaced by ``tokens`` soft tokens, input word embeddings
that are optimised (textual inversion: everything else frozen) so that the checkpoint, prompted
with them, denoises images of the concept. The training images (``culbench.probes.images``) are,
on ToyWorld, renders of the scenes those prompts describe (``renders`` jittered renders per
prompt, encoded with the model's VAE) and, on Stable Diffusion, ``generated`` images the run's
base model (step 0) draws from those prompts (``gen_steps`` DDIM steps, the run's guidance,
image ``j`` from prompt ``j mod P``); each is captioned by its reworded prompt; the loss is the
diffusion loss (``model.target`` vs ``model.predict``, t uniform over ``[t_min, T)``). Success is
then judged like the run's evaluation: fresh samples (``seeds_for``: never the run's evaluation
seeds) of the reworded prompts with the learned tokens, judged by the run's judge for the
concept; ``presence`` is the attack's success rate.

Budget (``Config``; every key is ``--set attack.KEY=VALUE``): ``tokens`` soft tokens,
``steps`` Adam steps of ``batch`` training images each at learning rate ``lr`` and timesteps
from ``[t_min, T)`` (the noisy part of the schedule, where the prompt decides what is drawn),
``renders`` renders per prompt (ToyWorld) or ``generated`` images of ``gen_steps`` sampler steps
(SD: the expensive part, so fewer than the 4 × 20 a ToyWorld concept gets), and ``prompts`` ×
``seeds`` judged images per concept (the training set is all of the concept's evaluation
prompts). Everything is seeded from the probe
seed and the concept id, so the same checkpoint and config give the same result.

Deviations:

* Soft tokens start at the word embedding of the concept's anchor (``init=anchor``), not at
  the concept's own name, so that the step-0 sanity check (every concept found on the base
  model) tests the optimisation rather than the prompt; ``init=name`` starts from the name
  (the attack then begins where the run's own evaluation is), ``init=WORD`` from any word.
* Pham et al. learn one token from a handful of real images of the concept; on ToyWorld the
  images are renders of the very scenes the prompts ask for (ToyWorld renders any scene), which
  makes the attack stronger per step and lets the budget be small. On Stable Diffusion they are
  the base model's own images of those prompts (the attacker's images of the concept, as in SD
  concept-inversion and relearning attacks), with seeds that are neither evaluation nor
  judging seeds; the data fingerprint names the source (``images``) and, on SD, the base
  model's weights hash.
* No discrete search: UnlearnDiffAtk (Zhang et al., arXiv 2310.11868) optimises prepended
  vocabulary tokens against the unlearned model; the nearest vocabulary word to each learned
  token is recorded (``nearest``) but not sampled.
* Soft tokens sit where the name's tokens were: one soft token replaces a multi-token name
  (CLIP BPE splits "Pikachu"), and ``init=name`` starts from the mean of those tokens.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from culbench.errors import RunError
from culbench.probes.base import Probe, ProbeTarget, seeds_for
from culbench.probes.images import (
    BASE_MODEL,
    concept_latents,
    image_source,
    render_latents,
    source_fingerprint,
)
from culbench.request import substitute

#: stands for one soft token in a reworded prompt: a word no prompt holds, added to a copy of the
#: model's tokenizer as one token (``soft_prompts``)
PLACEHOLDER = "softtokenslot"


@dataclass(frozen=True)
class SoftPrompts:
    """Reworded prompts as token ids, with the soft token each position holds (``-1``: none)."""

    prompts: list[str]
    ids: torch.Tensor    # (P, L) token ids; soft positions hold the unknown-word token
    slots: torch.Tensor  # (P, L) index of the soft token at each position, -1 elsewhere


def soft_prompts(tokenizer: Any, prompts: Sequence[str], name: str, tokens: int) -> SoftPrompts:
    """``prompts`` with every whole-word ``name`` replaced by ``tokens`` soft token positions.

    Any tokenizer (ToyWorld's word-level one, SD's CLIP BPE): the placeholder word is added to a
    copy of it as a token of its own, so each soft position is one token; soft positions hold the
    unknown-word token (id 0 where there is none). A prompt that the tokenizer truncates anyway
    (a long prompt on a short-context model) may stay truncated as long as no soft position is cut
    off; soft tokens must not make a prompt longer than the context.
    """
    marking = copy.deepcopy(tokenizer)
    marking.add_tokens([PLACEHOLDER])
    marker = marking.convert_tokens_to_ids(PLACEHOLDER)
    reworded = [substitute(p, name, " ".join([PLACEHOLDER] * tokens)) for p in prompts]
    length = tokenizer.model_max_length
    for original, text in zip(prompts, reworded, strict=True):
        if text == original:
            raise RunError(f"attack: evaluation prompt {original!r} does not name {name!r}",
                           "fix the sequence's prompts: the attack rewords the concept's name")
        if len(marking(text).input_ids) > max(length, len(tokenizer(original).input_ids)):
            raise RunError(f"attack: {tokens} soft tokens make {original!r} longer than "
                           f"{length} tokens", "use fewer soft tokens (--set attack.tokens=1)")
    ids = marking(reworded, padding="max_length", max_length=length, truncation=True,
                  return_tensors="pt").input_ids
    soft = ids == marker
    for original, text, row in zip(prompts, reworded, soft, strict=True):
        if int(row.sum()) < marking(text).input_ids.count(marker):
            raise RunError(f"attack: {name!r} falls past the model's {length} text tokens in "
                           f"{original!r}", "shorten the prompt or use fewer soft tokens")
    ids[soft] = tokenizer.unk_token_id if tokenizer.unk_token_id is not None else 0
    slots = torch.full_like(ids, -1)
    slots[soft] = (soft.long().cumsum(1)[soft] - 1) % tokens  # each occurrence: slots 0..k-1
    return SoftPrompts(reworded, ids, slots)


def encode_soft(model: Any, prompts: SoftPrompts, rows: torch.Tensor | slice,
                vectors: torch.Tensor) -> torch.Tensor:
    """Text embeddings ``(B, L, D)`` of ``prompts`` rows ``rows`` with the soft positions'
    input word embeddings set to ``vectors`` ``(k, D)`` (differentiable in ``vectors``)."""
    from culbench.training import encode_with_input_vectors

    return encode_with_input_vectors(model, prompts.ids[rows], prompts.slots[rows], vectors)


def word_vector(model: Any, word: str) -> torch.Tensor:
    """The mean input embedding ``(D,)`` of ``word``'s tokens (refuses an unknown word)."""
    tok = model.tokenizer
    ids = [i for i in tok(word, add_special_tokens=False).input_ids]
    if not ids or tok.unk_token_id in ids:
        raise RunError(f"attack: '{word}' is not in the model's vocabulary",
                       "set attack.init to 'anchor' or a word of the model's vocabulary")
    table = model.text_encoder.get_input_embeddings().weight
    return table[torch.tensor(ids, device=table.device)].detach().float().mean(0)


def nearest_words(model: Any, vectors: torch.Tensor) -> list[str]:
    """The vocabulary word whose input embedding is closest (cosine) to each vector."""
    table = model.text_encoder.get_input_embeddings().weight.detach().float()
    sims = torch.nn.functional.normalize(vectors.detach().float().to(table.device), dim=-1) @ \
        torch.nn.functional.normalize(table, dim=-1).T
    return model.tokenizer.convert_ids_to_tokens(sims.argmax(-1).tolist())


def concept_seed(base: int, concept: str) -> int:
    """A seed for one concept's attack: the probe seed and the concept id, not the probing order."""
    return base * 1_000_003 + int(hashlib.sha256(concept.encode()).hexdigest()[:8], 16)


def invert(model: Any, prompts: SoftPrompts, latents: torch.Tensor, init: torch.Tensor, *,
           steps: int, batch: int, lr: float, t_min: int, seed: int,
           tick: Callable[..., None] = lambda n=1: None) -> tuple[torch.Tensor, float | None]:
    """Soft token vectors ``(k, D)`` from ``init`` after ``steps`` Adam steps on the diffusion
    loss of ``batch`` latents (row ``j`` captioned by prompt ``j mod P``) at timesteps drawn from
    ``[t_min, T)``; returns them and the mean loss of the last step (``None`` for 0 steps)."""
    from culbench.training import noised

    gen = torch.Generator().manual_seed(seed)
    vectors = init.detach().clone().to(model.device).requires_grad_(True)
    optimiser = torch.optim.Adam([vectors], lr=lr)
    n_prompts, loss_value = len(prompts.prompts), None
    for _ in range(steps):
        rows = torch.randint(0, len(latents), (min(batch, len(latents)),), generator=gen)
        x0 = latents[rows.to(latents.device)]
        x_t, t, noise = noised(model, x0, model.num_train_timesteps, gen, t_min)
        emb = encode_soft(model, prompts, rows % n_prompts, vectors)
        loss = torch.nn.functional.mse_loss(model.predict(x_t, t, emb).float(),
                                            model.target(x0, noise, t).float())
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        loss_value = float(loss.detach())
        tick(1)
    return vectors.detach(), loss_value


class SoftPromptAttack(Probe):
    """Presence of each forgotten concept after a white-box soft prompt attack on its name."""

    name = "attack"
    backends = ("toyworld", "sd")
    version = 1

    @dataclass(frozen=True)
    class Config:
        tokens: int = 1             # soft tokens that replace the concept's name
        steps: int = 20             # Adam steps per concept
        batch: int = 8              # training images per step
        lr: float = 0.1             # Adam learning rate on the soft token embeddings
        t_min: int = 500            # training timesteps are drawn from [t_min, T): the noisy half
        renders: int = 4            # ToyWorld: jittered renders per evaluation prompt (training images)
        generated: int = 16         # SD: images the base model draws of the concept (training images)
        gen_steps: int = 25         # SD: DDIM steps for each of those images
        init: str = "anchor"        # start: the anchor's word, "name" (the concept's) or a word
        prompts: int | None = None  # judged prompts per concept (None: the profile's)
        seeds: int = 1              # fresh seeds per judged prompt

        def __post_init__(self) -> None:
            for key in ("tokens", "batch", "renders", "generated", "gen_steps", "seeds"):
                if getattr(self, key) < 1:
                    raise ValueError(f"attack.{key} must be at least 1, not {getattr(self, key)}")
            few_prompts = self.prompts is not None and self.prompts < 1
            if min(self.steps, self.t_min) < 0 or self.lr <= 0 or few_prompts:
                raise ValueError("attack.steps and attack.t_min must be >= 0, attack.lr > 0 "
                                 "and attack.prompts >= 1")
            if not self.init.strip():
                raise ValueError("attack.init must be 'anchor', 'name' or a vocabulary word")

    def data_fingerprint(self, target: ProbeTarget) -> dict[str, Any]:
        return source_fingerprint(target)

    def run(self, target: ProbeTarget,
            progress: Callable[[int, str], Callable[..., None]]) -> dict[str, Any]:
        model = target.model()
        last = model.num_train_timesteps
        if self.config.t_min >= last:
            raise RunError(f"attack.t_min={self.config.t_min} leaves none of the model's "
                           f"{last} timesteps",
                           f"set attack.t_min below {last}")
        limit = self.config.prompts or target.profile.get("prompts_per_concept") \
            or target.seq.spec.eval.prompts_per_concept
        concepts = {cid: self._attack(target, model, cid, limit, progress) for cid in target.probed}
        presence = [c["presence"] for c in concepts.values()]
        own = [c["own_presence"] for c in concepts.values() if c["own_presence"] is not None]
        return {"concepts": concepts, "summary": {
            "presence": round(sum(presence) / len(presence), 4) if presence else None,
            "own_presence": round(sum(own) / len(own), 4) if own else None}}

    def _init_word(self, target: ProbeTarget, cid: str) -> str:
        if self.config.init == "name":
            return target.seq.concepts[cid].name
        if self.config.init != "anchor":
            return self.config.init
        anchor = target.seq.concepts[cid].anchor
        if anchor is None:
            raise RunError(f"attack: concept {cid} has no anchor to start the soft tokens from",
                           "set attack.init to a vocabulary word")
        return target.seq.concepts[anchor].name

    def _attack(self, target: ProbeTarget, model: Any, cid: str, limit: int,
                progress: Callable[[int, str], Callable[..., None]]) -> dict[str, Any]:
        cfg, concept = self.config, target.seq.concepts[cid]
        train = list(target.seq.prompts[cid].eval)
        prompts = soft_prompts(model.tokenizer, train, concept.name, cfg.tokens)
        seed = concept_seed(target.seed, cid)
        judged = list(range(min(limit, len(train)))) * cfg.seeds  # prompt index per judged image
        drawn = cfg.generated if image_source(target) == BASE_MODEL else 0
        tick = progress(drawn + cfg.steps + len(judged), f"attack: {cid} (step {target.step})")

        def rendered() -> tuple[torch.Tensor, list[str]]:
            return render_latents(model, train, cfg.renders, seed % 2**31), train * cfg.renders

        # latent row j shows train[j mod P] (renders and generated images alike)
        latents, _ = concept_latents(target, model, cid, count=cfg.generated, seed=seed,
                                     steps=cfg.gen_steps, render=rendered, tick=tick)
        init = word_vector(model, self._init_word(target, cid)).expand(cfg.tokens, -1)
        vectors, loss = invert(model, prompts, latents, init, steps=cfg.steps, batch=cfg.batch,
                               lr=cfg.lr, t_min=cfg.t_min, seed=seed, tick=tick)
        with torch.no_grad():
            cond = encode_soft(model, prompts, torch.tensor(judged), vectors)
        hits = present_with(target, model, [prompts.prompts[i] for i in judged], cond,
                            seeds_for(target.seed, len(judged)), cid, tick)
        return concept_result(judged, hits, target, cid) | {
            "loss": None if loss is None else round(loss, 5),
            "nearest": nearest_words(model, vectors)}


def present_with(target: ProbeTarget, model: Any, prompts: Sequence[str], cond: torch.Tensor,
                 seeds: Sequence[int], concept: str, tick: Callable[..., None]) -> list[bool]:
    """Whether the sample conditioned on each row of ``cond`` shows ``concept`` (run's judge)."""
    batch, out = int(target.profile.get("batch_size") or 64), []
    for start in range(0, len(prompts), batch):
        chunk = list(prompts[start : start + batch])
        images = model.sample(chunk, list(seeds[start : start + batch]),
                              embeddings=cond[start : start + batch], **target.sampler)
        out += list(target.judge()(images, [target.seq.concepts[concept]] * len(chunk)).present)
        tick(len(chunk))
    return out


def concept_result(judged: Sequence[int], hits: Sequence[bool], target: ProbeTarget,
                   cid: str) -> dict[str, Any]:
    """Presence after the attack, per prompt, and the run's own presence of ``cid`` at this step."""
    from culbench.runfolder import read_step

    per_prompt: dict[int, list[bool]] = {}
    for index, hit in zip(judged, hits, strict=True):
        per_prompt.setdefault(index, []).append(hit)
    own = read_step(target.run_dir, target.step)["cells"].get(cid, {}).get("presence")
    return {"presence": round(sum(hits) / len(hits), 4), "n": len(hits),
            "own_presence": None if own is None else round(float(own), 4),
            "prompt_hits": [sum(per_prompt[i]) for i in sorted(per_prompt)],
            "prompt_images": [len(per_prompt[i]) for i in sorted(per_prompt)]}
