"""FMN — Forget-Me-Not: attention re-steering of the concept's tokens, run sequentially.

Paper: Zhang, Wang, Xu, Wang, Shi, "Forget-Me-Not: Learning to Forget in Text-to-Image Diffusion
Models", arXiv:2303.17591. Reference code: github.com/SHI-Labs/Forget-Me-Not at commit
a4a81e8203f968400ac76d48636d473f9386153e (2023-07-17): ``src/train_attn.py`` (re-steering),
``src/train_ti.py`` (textual inversion), ``configs/attn.yaml`` and ``configs/ti.yaml``. Settings
UnlearnCanvas used: OPTML-Group/UnlearnCanvas ``mu_forget_me_not_fgm/README.md``.
Re-implemented from culbench's research notes and a reading of that code; nothing is copied.

Per request:

1. **Images of the concept:** ``bank_size`` renders of the request's forget prompts by the
   model being edited (DDIM, ``bank_steps`` steps, no guidance; sample stream 0).
2. **Textual inversion** (``ti_steps`` > 0): one input word embedding per token of the concept's
   name, started at the name's own, is learnt so that the frozen model, prompted with the forget
   prompts carrying these vectors in the name's place, denoises those renders (diffusion loss,
   AdamW at ``ti_lr``, weight decay 0.1 as ``weight_decay_ti`` in ``configs/ti.yaml``).
3. **Attention re-steering:** ``iterations`` AdamW steps (:class:`culbench.training.Trainer`, so
   CUIG's regularisers compose: ``fmn+l2sp``) on ``param_group``. Each step noises ``batch_size``
   renders at t ~ U[0, T), runs the student on them conditioned on their prompts (with the
   learnt vectors when step 2 ran, as the reference prompts with its inverted tokens only) and
   minimises ‖A‖, the Frobenius norm of the attention probabilities that every cross-attention
   layer, head and pixel gives the concept's tokens and, with ``use_pooler``, the end-of-text
   tokens (:func:`culbench.training.cross_attention_maps`). The model's own prediction is unused.

Deviations:

1. **Data:** the reference learns from real photos of the concept (``data/<concept>/``) captioned
   "a photo of <concept>" (or "… in the style of …"); here from the edited model's renders of the
   sequence's forget prompts, captioned by those prompts (concept in context, train split).
2. **Textual inversion:** the reference adds 4 new tokens (initialised from the name's words and
   random tokens), trains them 500 steps at lr 1e-3 with a decay of their norm toward 0.4
   (``clip_ti_decay``) in a separate run, and its tool's later LoRA stage goes unused by FMN;
   here the vectors replace the input embeddings of the name's own tokens (one each), without the
   norm decay, for a budget of ``ti_steps`` (ToyWorld: 30), and are dropped after the request
   (the model gains no tokens).
3. **Loss:** the paper's attention energy Σ‖A‖² is minimised through its square root ‖A‖, as the
   reference's ``AttnController.loss`` does; the gradient has the same direction.
4. **Positions:** the concept's tokens and, with ``use_pooler``, every end-of-text token, as the
   reference marks them (by token id, so padding too on tokenizers that pad with end-of-text: SD
   1.x, ToyWorld). Batches select positions per sample (the reference's mask is repeated
   head-major, which only matches at its batch size 1).
5. **Trained parameters:** the cross-attention key and value projections (``xattn_kv``) by
   default; UnlearnCanvas runs FMN on all of cross-attention (``--only_xa``, ``param_group="xattn"``)
   and ``configs/attn.yaml`` trains the whole UNet (``param_group="full"``). On ToyWorld's
   validation prompts ``xattn`` lost far more general retention than ``xattn_kv``, erasing as much
   (figures: docs/methods_new.md).
6. **Scale:** ToyWorld defaults (``lr`` 1e-3, ``iterations`` 40, ``batch_size`` 8, 32 renders,
   30 inversion steps; cost: docs/methods_new.md) are scaled to the 2-core budget
   from a few validation checks, not yet from ``culbench tune``; the reference settings are in
   ``SD_DEFAULTS``. Sequential use: each request starts from the current weights (the reference
   forgets one concept).
7. **What the steering leaves:** as in the reference, only the concept's tokens and the
   end-of-text ones are steered; in a causal text encoder the words after the concept have read
   it too, and their attention is not steered. (In those validation checks the first three
   requests erased zorb and red, not star.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F

from culbench.api import (
    CulbenchError,
    Method,
    StepContext,
    T2IModel,
    UnlearnRequest,
    concept_positions,
    register_method,
)
from culbench.training import Trainer, cross_attention_maps, encode_with_input_vectors, indexed_bank, noised, pick

#: ``configs/attn.yaml`` and ``configs/ti.yaml`` of the reference (SD 2.1-base).
SD_DEFAULTS = {"lr": 2e-6, "iterations": 35, "batch_size": 1, "param_group": "full", "use_pooler": True,
               "ti_steps": 500, "ti_lr": 1e-3}

_TI_WEIGHT_DECAY = 0.1  # ``weight_decay_ti`` in configs/ti.yaml
_WEIGHT_DECAY = 0.01    # ``adam_weight_decay`` in configs/attn.yaml


class _Prompts:
    """The bank's prompts as padded token ids, the positions re-steering acts on (``mask``) and,
    for textual inversion, which of the name's tokens sits at each position (``slots``, -1: none)."""

    def __init__(self, tokenizer: Any, prompts: list[str], name: str, use_pooler: bool) -> None:
        length = tokenizer.model_max_length
        self.ids = tokenizer(prompts, padding="max_length", max_length=length, truncation=True,
                             return_tensors="pt").input_ids
        self.slots = torch.full_like(self.ids, -1)
        self.mask = torch.zeros_like(self.ids, dtype=torch.bool)
        for i, prompt in enumerate(prompts):  # each names the concept (FMN._bank)
            span, _ = concept_positions(tokenizer, prompt, name) or ([], 0)
            self.slots[i, span] = torch.arange(len(span))
            self.mask[i, span] = True
        if use_pooler:  # every end-of-text token: padding too, where the tokenizer pads with it
            self.mask[:, 1:] |= self.ids[:, 1:] == tokenizer.eos_token_id


@register_method("fmn")
class FMN(Method):
    """FMN (Zhang et al., 2023): shrink the cross-attention the concept's tokens receive."""

    @dataclass(frozen=True)
    class Config:
        lr: float = 1e-3                 # AdamW learning rate (SD: 2e-6; UnlearnCanvas 2e-5)
        iterations: int = 40             # re-steering steps per request (SD: 35; UnlearnCanvas 100)
        batch_size: int = 8              # renders per step (SD: 1)
        param_group: Literal["xattn", "xattn_kv", "full"] = "xattn_kv"  # SD reference: full
        use_pooler: bool = True          # also steer the end-of-text token's attention
        bank_size: int = 32              # renders of the forget prompts per request
        bank_steps: int = 10             # DDIM steps per render
        ti_steps: int = 30               # textual-inversion steps first (0: the name's own tokens; SD: 500)
        ti_lr: float = 1e-3              # their AdamW learning rate (SD: 1e-3; UnlearnCanvas 1e-4)
        grad_clip: float = 1.0           # max_grad_norm

    #: ``culbench tune``: the defaults plus 7 of these points (the same budget for every method).
    tune_grid: ClassVar[dict[str, tuple[Any, ...]]] = {"lr": (3e-4, 1e-3, 3e-3), "iterations": (20, 40, 80)}

    trains = ("xattn", "xattn_kv", "full")

    def unlearn(self, model: T2IModel, request: UnlearnRequest, ctx: StepContext) -> T2IModel:
        cfg = self.config
        rng, gen = ctx.rng(), ctx.generator()
        trainer = Trainer(model, cfg.param_group, ctx, lr=cfg.lr, iterations=cfg.iterations,
                          weight_decay=_WEIGHT_DECAY, description=f"fmn: re-steering {request.concept.id}")
        emb, latents, mask = self._bank(model, request, ctx, rng, gen)
        student = trainer.student
        for _ in trainer.iterations():
            rows = torch.tensor(pick(rng, len(latents), cfg.batch_size))
            x_t, t, _ = noised(student, latents[rows], student.num_train_timesteps, gen)
            trainer.step(self.attention_norm(student, x_t, t, emb[rows], mask[rows]), cfg.grad_clip)
        return trainer.finish()

    @staticmethod
    def attention_norm(model: T2IModel, x_t: torch.Tensor, t: torch.Tensor, emb: torch.Tensor,
                       mask: torch.Tensor) -> torch.Tensor:
        """‖A‖: the attention probabilities every cross-attention layer, head and pixel of
        ``model`` gives the positions ``mask`` ``(B, L)`` marks, as one vector's norm."""
        with cross_attention_maps(model) as maps:
            model.predict(x_t, t, emb)
        keep = mask.to(maps[0].device)[:, None, None, :]
        return torch.cat([m.masked_select(keep) for m in maps]).norm()

    def _bank(self, model: T2IModel, request: UnlearnRequest, ctx: StepContext, rng: Any,
              gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Text embeddings, latents and steered positions of the renders of every target's forget
        prompts, after textual inversion of each target's name (``ti_steps`` > 0)."""
        cfg = self.config
        embs, latents, masks = [], [], []
        for n, target in enumerate(request.all_targets):  # several in the simultaneous reference mode
            name = target.concept.name
            prompts = [p for p in target.prompts if concept_positions(model.tokenizer, p, name)]
            if not prompts:
                raise CulbenchError(f"fmn: the name '{name}' of concept '{target.concept.id}' occurs in none "
                                    "of its forget prompts", "fix the concept's name in concepts.yaml or its prompts")
            size = ctx.budget.samples(cfg.bank_size)
            index, x0 = indexed_bank(model, prompts, size, rng, ctx.sample_seed(0, n * size), cfg.bank_steps)
            bank = _Prompts(model.tokenizer, [prompts[i] for i in index], name, cfg.use_pooler)
            with torch.no_grad():
                if cfg.ti_steps > 0:
                    vectors = self._invert(model, bank, x0, ctx, rng, gen, target.concept.id)
                    embs.append(encode_with_input_vectors(model, bank.ids, bank.slots, vectors))
                else:
                    embs.append(model.text_encoder(bank.ids.to(model.device))[0].float())
            latents.append(x0)
            masks.append(bank.mask)
        return torch.cat(embs), torch.cat(latents), torch.cat(masks)

    @torch.enable_grad()
    def _invert(self, model: T2IModel, bank: _Prompts, x0: torch.Tensor, ctx: StepContext, rng: Any,
                gen: torch.Generator, concept: str) -> torch.Tensor:
        """The name's tokens' input embeddings ``(k, D)`` after ``ti_steps`` AdamW steps of the
        frozen model's diffusion loss on the renders, each captioned by its prompt."""
        cfg = self.config
        table = model.text_encoder.get_input_embeddings().weight
        k = int(bank.slots.max()) + 1
        init = [table[bank.ids[bank.slots == j].to(table.device)].float().mean(0) for j in range(k)]
        vectors = torch.stack(init).detach().clone().requires_grad_(True)
        opt = torch.optim.AdamW([vectors], lr=cfg.ti_lr, weight_decay=_TI_WEIGHT_DECAY)
        steps = ctx.budget.iterations(cfg.ti_steps)
        tick: Callable[[int], None] = ctx.progress(steps, f"fmn: textual inversion of {concept}")
        for _ in range(steps):
            rows = torch.tensor(pick(rng, len(x0), cfg.batch_size))
            batch = x0[rows.to(x0.device)]
            x_t, t, noise = noised(model, batch, model.num_train_timesteps, gen)
            emb = encode_with_input_vectors(model, bank.ids[rows], bank.slots[rows], vectors)
            loss = F.mse_loss(model.predict(x_t, t, emb).float(), model.target(batch, noise, t).float())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tick(1)
        return vectors.detach()
