"""The ToyWorld pretraining recipe: judge, VAE, text encoder + UNet, then CLIP, from one seed.

``culbench toyworld train --out DIR`` reproduces the shipped weights (up to float
non-determinism across machines); ``--exclude`` drops the scenes whose captions name given
concepts, which is how the retrain-from-scratch oracle is built.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from culbench import provenance
from culbench.toyworld import assets
from culbench.toyworld import model as tw_model

Log = Callable[[str], None]


@dataclass(frozen=True)
class Recipe:
    """Every knob of the pretraining recipe (recorded in ``toyworld.json``)."""

    seed: int = 0
    n_images: int = 60_000          # rendered training scenes (jittered)
    character_rate: float = 0.2     # share of scenes showing a named character
    judge_images: int = 40_000
    judge_epochs: int = 4
    vae_steps: int = 3_000
    vae_batch: int = 64
    vae_lr: float = 1e-3
    vae_kl: float = 1e-6            # KL weight (SD-style: tiny, the latent stays near-deterministic)
    latent_channels: int = 8
    unet_steps: int = 10_000
    unet_batch: int = 128
    unet_lr: float = 1e-3
    unet_warmup: int = 200
    prompt_dropout: float = 0.1     # empty prompt rate, for classifier-free guidance
    ema: float = 0.999
    grad_clip: float = 1.0
    held_out: int = 3_000           # held-out renders for the judge/VAE accuracy report
    clip_steps: int = 600
    clip_batch: int = 256
    clip_lr: float = 2e-3
    report_profile: str = "standard-6x6"  # profile of the base-presence report written at the end
    report_fid_samples: int = 2_000   # per FID seed (two seeds); 0 skips the FID report
    model_version: int = 1          # 2: captions with synonyms and character paraphrases (lexicon)
    warm_start: int = 0             # >0: text encoder + UNet start from that shipped version (warmstart)


def render_training_set(recipe: Recipe, exclude: Callable[[Any], bool] | None,
                        named: Sequence[str] = ()) -> tuple[torch.Tensor, list[str]]:
    """Jittered renders ``(N, 3, 32, 32)`` in [0, 1] and one caption each (``recipe.model_version``'s
    captions). Rows whose caption names a concept in ``named`` under any name (a version-2
    paraphrase names a character's parts) are dropped as well as the scenes ``exclude`` rejects."""
    from culbench.toyworld.data import caption, caption_concepts, sample_scenes
    from culbench.toyworld.render import render

    scenes = sample_scenes(recipe.n_images, seed=recipe.seed, exclude=exclude,
                           character_rate=recipe.character_rate)
    rng = np.random.default_rng(recipe.seed + 1)
    images = np.stack([render(s, 32, rng) for s in scenes])
    captions = [caption(s, rng, recipe.model_version) for s in scenes]
    keep = [i for i, (s, c) in enumerate(zip(scenes, captions, strict=True))
            if not set(named) & caption_concepts(c, s)]
    if len(keep) < len(scenes):
        images, captions = images[keep], [captions[i] for i in keep]
    tensor = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255)
    return tensor, captions


def train_vae(images: torch.Tensor, recipe: Recipe, log: Log) -> tuple[Any, float]:
    """Train the AutoencoderKL; return it and the latent scaling factor (1 / latent std)."""
    torch.manual_seed(recipe.seed + 10)
    vae = tw_model.build_parts(recipe.latent_channels)["vae"]
    gen = torch.Generator().manual_seed(recipe.seed + 11)
    opt = torch.optim.AdamW(vae.parameters(), lr=recipe.vae_lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.vae_lr, total_steps=recipe.vae_steps)
    start = time.perf_counter()
    vae.train()
    for step in range(recipe.vae_steps):
        idx = torch.randint(len(images), (recipe.vae_batch,), generator=gen)
        x = tw_model.to_pixels(images[idx])
        posterior = vae.encode(x).latent_dist
        z = posterior.sample(generator=gen)
        recon = vae.decode(z).sample
        loss = (recon - x).abs().mean() + ((recon - x) ** 2).mean() + recipe.vae_kl * posterior.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), recipe.grad_clip)
        opt.step()
        sched.step()
        if (step + 1) % 250 == 0:
            log(f"vae step {step + 1}/{recipe.vae_steps}: loss {loss.item():.4f} "
                f"({time.perf_counter() - start:.0f} s)")
    vae.eval()
    latents = encode_latents(vae, images[:4096], 1.0)
    return vae, float(1.0 / latents.std())


@torch.no_grad()
def encode_latents(vae: Any, images: torch.Tensor, scale: float) -> torch.Tensor:
    """Posterior means × ``scale`` for all images (deterministic)."""
    out = [vae.encode(tw_model.to_pixels(images[i : i + 512])).latent_dist.mean
           for i in range(0, len(images), 512)]
    return torch.cat(out) * scale


@torch.no_grad()
def decode_latents(vae: Any, latents: torch.Tensor, scale: float) -> torch.Tensor:
    out = [vae.decode(latents[i : i + 512] / scale).sample for i in range(0, len(latents), 512)]
    return (torch.cat(out) / 2 + 0.5).clamp(0, 1)


def train_unet(latents: torch.Tensor, captions: Sequence[str], recipe: Recipe, log: Log,
               progress: Callable[[int], None] | None = None, text_encoder: Any = None,
               device: str | torch.device = "cpu", resume: dict[str, Any] | None = None,
               snapshot: Callable[[dict[str, Any]], None] | None = None,
               snapshot_every: int = 500, cuda_graph: bool | None = None,
               init: tuple[dict[str, Any], dict[str, Any]] | None = None) -> tuple[Any, Any]:
    """Train text encoder + UNet jointly (v-prediction, cosine schedule, EMA); return EMA copies.

    ``init`` (UNet and text-encoder state dicts) starts from those weights (the retrain oracle's
    add-back fine-tunes start from its prior). A given ``text_encoder`` is used frozen and only the
    UNet is trained (the oracle's ``text_encoder=frozen`` variant). Training runs on ``device``;
    every random draw comes from one CPU generator, so the draws do not depend on the device.

    ``snapshot(state)`` is called every ``snapshot_every`` steps with the whole training state
    (weights, EMA, optimiser, schedule, generator, step); passing that ``state`` back as
    ``resume`` continues the run exactly where it stopped (the result is bit-identical to an
    uninterrupted run on the same machine: tested).

    ``cuda_graph`` (default: ``CULBENCH_CUDA_GRAPH=1`` in the environment; CUDA only) runs the
    UNet's forward and backward as CUDA graphs (:func:`unet_step`), for a GPU job bound by its own
    launch overhead (several ``--step`` jobs sharing one GPU: docs/oracle_runs.md).
    """
    torch.manual_seed(recipe.seed + 20)
    unet, text, tokens, empty, sched = _unet_parts(captions, recipe, text_encoder, init, device)
    frozen_text = text_encoder is not None
    params = list(unet.parameters()) + ([] if frozen_text else list(text.parameters()))
    opt = torch.optim.AdamW(params, lr=recipe.unet_lr, weight_decay=1e-2)
    lr_sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / recipe.unet_warmup)
                                                 * 0.5 * (1 + math.cos(math.pi * s / recipe.unet_steps)))
    ema_unet = copy.deepcopy(unet).requires_grad_(False)
    ema_text = text if frozen_text else copy.deepcopy(text).requires_grad_(False)
    pairs = [(ema_unet, unet)] + ([] if frozen_text else [(ema_text, text)])
    gen = torch.Generator().manual_seed(recipe.seed + 21)
    modules = {"unet": unet, "ema_unet": ema_unet, "opt": opt, "lr_sched": lr_sched,
               **({} if frozen_text else {"text": text, "ema_text": ema_text})}
    first = 0
    if resume is not None:
        for name, module in modules.items():
            module.load_state_dict(resume[name])
        gen.set_state(resume["generator"])
        first = int(resume["step"])
        if progress is not None:
            progress(first)
    ema_params = [p for ema, _ in pairs for p in ema.parameters()]
    live_params = [p for _, live in pairs for p in live.parameters()]
    start = time.perf_counter()
    unet.train()
    if not frozen_text:
        text.train()
    if cuda_graph is None:
        cuda_graph = os.environ.get(provenance.CUDA_GRAPH) == "1"
    denoise = unet_step(unet, device, (recipe.unet_batch, *latents.shape[1:]),
                        (recipe.unet_batch, tw_model.MAX_TOKENS, text.config.hidden_size),
                        emb_grad=not frozen_text, graph=cuda_graph)
    for step in range(first, recipe.unet_steps):
        x_t, target, t, ids = _batch(latents, tokens, empty, recipe, sched, gen, device)
        with torch.set_grad_enabled(not frozen_text):
            emb = text(ids)[0]
        pred = denoise(x_t, t, emb)
        loss = torch.nn.functional.mse_loss(pred, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, recipe.grad_clip)
        opt.step()
        lr_sched.step()
        with torch.no_grad():  # one fused update on a GPU (on CPU the same per-tensor lerp_, bit for bit)
            decay = min(recipe.ema, (1 + step) / (10 + step))
            torch._foreach_lerp_(ema_params, live_params, 1 - decay)
        if progress is not None:
            progress(1)
        if snapshot is not None and (step + 1) % snapshot_every == 0 and step + 1 < recipe.unet_steps:
            snapshot({"step": step + 1, "generator": gen.get_state(),
                      **{name: module.state_dict() for name, module in modules.items()}})
        if (step + 1) % 500 == 0:
            log(f"unet step {step + 1}/{recipe.unet_steps}: loss {loss.item():.4f} "
                f"({time.perf_counter() - start:.0f} s)")
    return ema_unet.eval(), ema_text.eval()


def _unet_parts(captions: Sequence[str], recipe: Recipe, text_encoder: Any, init: Any,
                device: str | torch.device) -> tuple[Any, Any, torch.Tensor, torch.Tensor, Any]:
    """:func:`train_unet`'s start on ``device``: ``(unet, text encoder, tokens, empty caption's tokens, scheduler)``."""
    parts = tw_model.build_parts(recipe.latent_channels, recipe.model_version)
    unet, text, tok, sched = parts["unet"], parts["text_encoder"], parts["tokenizer"], parts["scheduler"]
    if recipe.warm_start:
        from culbench.toyworld.warmstart import warm_states

        unet_state, text_state = warm_states(recipe.warm_start, recipe.model_version, recipe.seed + 22)
        unet.load_state_dict(unet_state)
        text.load_state_dict(text_state)
    if init is not None:
        unet.load_state_dict(init[0])
        text.load_state_dict(init[1])
    unet.to(device)
    text = text.to(device) if text_encoder is None else text_encoder.to(device).eval().requires_grad_(False)
    tokens = tok(list(captions) + [""], padding="max_length", max_length=tw_model.MAX_TOKENS,
                 truncation=True, return_tensors="pt").input_ids
    return unet, text, tokens[:-1], tokens[-1], sched


def _batch(latents: torch.Tensor, tokens: torch.Tensor, empty: torch.Tensor, recipe: Recipe, sched: Any,
           gen: torch.Generator, device: str | torch.device) -> tuple[torch.Tensor, ...]:
    """One training batch ``(x_t, v target, t, caption tokens)``: rows, prompt dropout, noise and
    timesteps drawn from ``gen`` in that order."""
    idx = torch.randint(len(latents), (recipe.unet_batch,), generator=gen)
    x0, ids = latents[idx], tokens[idx].clone()
    drop = torch.rand(len(idx), generator=gen) < recipe.prompt_dropout
    ids[drop] = empty
    noise = torch.randn(x0.shape, generator=gen)
    t = torch.randint(0, sched.config.num_train_timesteps, (len(idx),), generator=gen)
    x0, noise, t, ids = x0.to(device), noise.to(device), t.to(device), ids.to(device)
    return sched.add_noise(x0, noise, t), sched.get_velocity(x0, noise, t), t, ids


def unet_step(unet: Any, device: str | torch.device, sample: tuple[int, ...], emb: tuple[int, ...],
              emb_grad: bool, graph: bool) -> Callable[..., torch.Tensor]:
    """``denoise(x_t, t, emb)``: the UNet's prediction, eager or, with ``graph`` on a CUDA device,
    through ``torch.cuda.make_graphed_callables`` (forward and backward captured once, for inputs
    of these shapes; its warm-up computes gradients with ``autograd.grad``, so it trains nothing)."""
    if not (graph and torch.device(device).type == "cuda"):
        return lambda x_t, t, e: unet(x_t, t, encoder_hidden_states=e).sample

    class Denoise(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.unet = unet

        def forward(self, x_t: torch.Tensor, t: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
            return self.unet(x_t, t, encoder_hidden_states=e).sample

    args = (torch.zeros(sample, device=device), torch.zeros(sample[0], dtype=torch.long, device=device),
            torch.zeros(emb, device=device, requires_grad=emb_grad))
    return torch.cuda.make_graphed_callables(Denoise(), args, allow_unused_input=True)


def save_model(out: Path, vae: Any, unet: Any, text: Any, scale: float, recipe: Recipe,
               extra: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    for name, module in (("vae", vae), ("unet", unet), ("text_encoder", text)):
        # stored as float16 to keep the package small (the UNet is 3.9 M parameters); loaded
        # into float32 models, so what ships is exactly what every run starts from
        state = {k: v.to(torch.float16 if v.is_floating_point() else v.dtype).contiguous()
                 for k, v in module.state_dict().items()}
        save_file(state, str(out / f"{name}.safetensors"))
    meta = {"latent_channels": recipe.latent_channels, "scaling_factor": scale,
            "recipe": asdict(recipe), **extra}
    if recipe.model_version != 1:  # version-1 folders stay byte-identical to the shipped ones
        meta["model_version"] = recipe.model_version
    (out / "toyworld.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    assets.write_sums(out)


def concept_filter(concepts: Sequence[str]) -> Callable[[Any], bool] | None:
    """``exclude(scene)``: True when the scene's captions name any of ``concepts``
    (``data.named_concepts``): a forgotten colour removes every object scene in that colour, but
    not the scenes of a character drawn in it (kix is blue), which are captioned by name only.
    That is the benchmark's own notion of the concept: toy10 asks for kix to be retained when
    "blue" is forgotten, so an oracle that also dropped kix's scenes would penalise exactly the
    methods that do what the benchmark asks.

    Names ToyWorld does not know raise (a typo would otherwise exclude nothing, silently).
    """
    import difflib

    from culbench.errors import ConfigError
    from culbench.toyworld.data import concept_slots, named_concepts

    wanted = set(concepts)
    if not wanted:
        return None
    known = set(concept_slots()) - {"none"}
    unknown = sorted(wanted - known)
    if unknown:
        name = unknown[0]
        close = difflib.get_close_matches(name, sorted(known), n=3)
        hint = f" (did you mean: {', '.join(close)})" if close else ""
        raise ConfigError(f"ToyWorld has no concept '{name}'{hint}",
                          f"use names from: {', '.join(sorted(known))}")
    return lambda scene: bool(wanted & named_concepts(scene))


STAGES = ("judge", "vae", "unet", "clip")


def train_all(
    out: Path, recipe: Recipe, *, exclude: Sequence[str] = (), stages: Sequence[str] = STAGES,
    log: Log = lambda m: None, progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Run the recipe's stages and write weights, ``toyworld.json`` and ``SHA256SUMS`` to ``out``.

    Stages not run are copied from the shipped assets (the retrain oracle re-trains only the
    text encoder + UNet on data without the excluded concepts, and keeps judge, VAE and CLIP).
    The report ends with the quality figures ``culbench toyworld check`` compares: base
    presence per toy10 concept and FID (judge features) against renders, both measured with
    the judge in ``out``.
    """
    import shutil

    from safetensors.torch import save_file

    from culbench.toyworld import judge as tw_judge
    from culbench.toyworld.data import sample_scenes

    concept_filter(exclude)  # unknown names fail before anything is written
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"seconds": {}, "exclude": sorted(exclude)}
    held_out = sample_scenes(recipe.held_out, seed=recipe.seed + 999)
    held_images, held_labels = tw_judge.render_batch(held_out, np.random.default_rng(recipe.seed + 999))

    start = time.perf_counter()
    if "judge" in stages:
        net = tw_judge.train_judge(seed=recipe.seed, n_train=recipe.judge_images,
                                   epochs=recipe.judge_epochs, log=log)
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(out / tw_judge.WEIGHTS_FILE))
        report["seconds"]["judge"] = round(time.perf_counter() - start, 1)
    else:
        shutil.copy(assets.asset_path(tw_judge.WEIGHTS_FILE), out / tw_judge.WEIGHTS_FILE)
        net = tw_judge.JudgeNet()
        net.load_state_dict(assets.load_tensors(tw_judge.WEIGHTS_FILE))
    net.eval()
    report["judge_accuracy"] = tw_judge.head_accuracy(net, held_images, held_labels)
    log(f"judge accuracy on held-out renders: {report['judge_accuracy']}")

    images, captions = render_training_set(recipe, concept_filter(exclude), exclude)
    start = time.perf_counter()
    if "vae" in stages:
        vae, scale = train_vae(images, recipe, log)
        report["seconds"]["vae"] = round(time.perf_counter() - start, 1)
    else:
        from culbench.toyworld.model import build_parts

        meta = assets.load_json("toyworld.json")
        vae = build_parts(meta["latent_channels"])["vae"]
        vae.load_state_dict(assets.load_tensors("vae.safetensors"))
        scale = meta["scaling_factor"]
    vae.eval()
    recon = decode_latents(vae, encode_latents(vae, held_images, scale), scale)
    report["vae_judge_accuracy"] = tw_judge.head_accuracy(net, recon, held_labels)
    log(f"judge accuracy on VAE reconstructions: {report['vae_judge_accuracy']}")

    start = time.perf_counter()
    latents = encode_latents(vae, images, scale)
    unet, text = train_unet(latents, captions, recipe, log, progress)
    report["seconds"]["unet"] = round(time.perf_counter() - start, 1)
    report["threads"] = torch.get_num_threads()
    del images, latents
    _clip_stage(out, recipe, "clip" in stages, report, log)
    save_model(out, vae, unet, text, scale, recipe, {"report": report})
    from culbench.toyworld.quality import quality_report

    report.update(quality_report(out, recipe, log))
    save_model(out, vae, unet, text, scale, recipe, {"report": report})
    return report


def _clip_stage(out: Path, recipe: Recipe, train: bool, report: dict[str, Any], log: Log) -> None:
    import shutil

    from culbench.toyworld import clip as tw_clip

    start = time.perf_counter()
    if train:
        model = tw_clip.train_clip(seed=recipe.seed, n_images=recipe.n_images, steps=recipe.clip_steps,
                                   batch_size=recipe.clip_batch, lr=recipe.clip_lr, log=log,
                                   version=recipe.model_version)
        tw_clip.save_clip(model, out)
        report["seconds"]["clip"] = round(time.perf_counter() - start, 1)
    else:
        shipped = tw_model.weights_folder(recipe.model_version)
        shutil.copy(assets.asset_path(tw_clip.WEIGHTS_FILE, shipped), out / tw_clip.WEIGHTS_FILE)
        model = tw_clip.ToyWorldCLIP(weights=out, version=recipe.model_version)
    report["clip_retrieval_top1_1000"] = round(
        tw_clip.caption_retrieval_accuracy(model, version=recipe.model_version), 4)
    log(f"clip caption retrieval top-1 (1000 held-out scenes): {report['clip_retrieval_top1_1000']}")
