"""Quality figures of a ToyWorld model: base presence per concept on toy10, judge accuracy.

Used by ``culbench toyworld check`` to compare freshly trained weights with the shipped ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

PRESENCE_SEQUENCE = "toy10@1"  # the base-presence report's prompts: primary names, every model version


def base_presence(weights: str | None, profile: str = "standard-6x6", device: str = "cpu",
                  progress: Callable[[int, str], Callable[..., None]] | None = None,
                  judge_weights: str | None = None) -> dict[str, float]:
    """P0(c) for every toy10 concept under ``profile`` with the model in ``weights``, judged by
    the judge in ``judge_weights`` (default: the shipped judge)."""
    from culbench.evaluation.presence import evaluate_presence
    from culbench.profiles import get_profile
    from culbench.tasks import resolve_sequence
    from culbench.toyworld.judge import ToyWorldJudge
    from culbench.toyworld.model import build_toyworld_model

    seq = resolve_sequence(PRESENCE_SEQUENCE)
    model = build_toyworld_model(device=device, weights=weights)
    judge = ToyWorldJudge(device=device, weights=judge_weights)
    cells, _ = evaluate_presence(model, judge, seq, get_profile(profile), progress)
    return {cid: cell.presence for cid, cell in cells.items()}


def compare(shipped: dict[str, float], fresh: dict[str, float], tolerance: float) -> list[str]:
    """Concepts whose presence differs by more than ``tolerance`` (absolute)."""
    return [f"{c}: shipped {shipped[c]:.3f}, reproduced {fresh.get(c, float('nan')):.3f}"
            for c in shipped if not abs(shipped[c] - fresh.get(c, np.nan)) <= tolerance]


def sample_grids(out_dir: str, weights: str | None = None, per_concept: int = 6,
                 device: str = "cpu") -> list[str]:
    """Save one PNG per concept kind: a row per toy10 concept, ``per_concept`` samples each
    (its first eval prompts, eval seeds), upscaled 3× with nearest-neighbour."""
    import torch.nn.functional as F
    from torchvision.utils import save_image

    from culbench.tasks import resolve_sequence
    from culbench.toyworld.model import build_toyworld_model

    seq = resolve_sequence(PRESENCE_SEQUENCE)
    model = build_toyworld_model(device=device, weights=weights)
    steps, guidance = seq.spec.eval.sampler.steps, seq.spec.eval.sampler.guidance
    by_kind: dict[str, list[str]] = {}
    for cid in seq.roles:
        by_kind.setdefault(seq.concepts[cid].kind, []).append(cid)
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for kind, concepts in by_kind.items():
        prompts, seeds = [], []
        for cid in concepts:
            for i in range(per_concept):
                prompts.append(seq.prompts[cid].eval[i % len(seq.prompts[cid].eval)])
                seeds.append(seq.spec.eval.seeds[i % len(seq.spec.eval.seeds)])
        images = model.sample(prompts, seeds, steps=steps, guidance=guidance)
        images = F.interpolate(images, scale_factor=3, mode="nearest")
        path = folder / f"toyworld_base_{kind}.png"
        save_image(images, str(path), nrow=per_concept, padding=2, pad_value=0.5)
        written.append(str(path))
    return written


def fid_vs_renders(model: Any, judge: Any, n: int = 2000, seed: int = 0, steps: int = 20,
                   guidance: float = 1.0) -> float:
    """FID in judge-feature space between model samples and real renders of the same scenes.

    Scenes are drawn like the training data; each is captioned, sampled once (seed-determined
    noise) and rendered once (jittered), so both sets describe identical content.
    """
    from culbench.evaluation.quality import frechet
    from culbench.toyworld.data import caption, sample_scenes
    from culbench.toyworld.judge import render_batch

    scenes = sample_scenes(n, seed=10_000 + seed)
    rng = np.random.default_rng(seed)
    prompts = [caption(s, rng) for s in scenes]
    real, _ = render_batch(scenes, rng)
    fake = model.sample(prompts, [20_000 + seed * n + i for i in range(n)], steps=steps, guidance=guidance)
    return frechet(*(judge.features(x).double().numpy() for x in (real, fake)))


def quality_report(out: Path, recipe: Any, log: Callable[[str], None]) -> dict[str, Any]:
    """Base presence on toy10 and FID vs renders of the weights in ``out`` (its own judge)."""
    from culbench.toyworld.judge import ToyWorldJudge
    from culbench.toyworld.model import build_toyworld_model

    start = time.perf_counter()
    presence = base_presence(str(out), recipe.report_profile, judge_weights=str(out))
    figures: dict[str, Any] = {
        "presence": {c: round(p, 4) for c, p in sorted(presence.items())},
        "presence_setting": {"profile": recipe.report_profile, "sequence": PRESENCE_SEQUENCE},
    }
    low = sorted(c for c, p in presence.items() if p < 0.9)
    log(f"base presence: min {min(presence.values()):.3f}, mean {np.mean(list(presence.values())):.3f}; "
        f"below 0.90: {low or 'none'}")
    if recipe.report_fid_samples:
        model, judge = build_toyworld_model(weights=str(out)), ToyWorldJudge(weights=str(out))
        figures["fid_judge_vs_renders"] = [round(fid_vs_renders(model, judge, n=recipe.report_fid_samples, seed=s), 4)
                                           for s in (0, 1)]
        log(f"FID (judge features) vs renders, seeds 0/1: {figures['fid_judge_vs_renders']}")
    figures["seconds_report"] = round(time.perf_counter() - start, 1)
    return figures


def name_presence(weights: str | None = None, scenes_per_word: int = 18, seeds: int = 2,
                  device: str = "cpu") -> dict[str, dict[str, float]]:
    """Presence of every object, colour and pattern under its primary name and each synonym, and
    of every character under its name and described by its parts (``lexicon``), for a model
    version 2: ``{concept: {word: presence}}``. Each word is judged on the same
    ``scenes_per_word`` random scenes × ``seeds`` (DDIM 10, no guidance, like toy10's evaluation),
    so the words of one concept differ only in the word.
    """
    from culbench.api import Concept
    from culbench.toyworld import render as tw
    from culbench.toyworld.captions import TEMPLATES, part_prompt, prompt_for, with_names
    from culbench.toyworld.judge import ToyWorldJudge
    from culbench.toyworld.lexicon import SYNONYMS
    from culbench.toyworld.model import build_toyworld_model

    model = build_toyworld_model(device=device, weights=weights, version=None if weights else 2)
    judge = ToyWorldJudge(device=device)
    rng = np.random.default_rng(4242)
    slots = {**{o: "object" for o in tw.OBJECTS}, **{c: "colour" for c in tw.COLOURS},
             **{p: "pattern" for p in tw.PATTERNS}}
    jobs: list[tuple[str, str, Concept, list[str]]] = []
    for concept, kind in slots.items():
        scenes = [_scene_with(kind, concept, rng) for _ in range(scenes_per_word)]
        index = [int(rng.integers(len(TEMPLATES))) for _ in scenes]
        if concept == "solid":  # template 2 leaves "solid" unsaid
            index = [i if "pattern_or_blank" not in TEMPLATES[i] else 0 for i in index]
        for word in (concept, *SYNONYMS[concept]):
            prompts = [with_names(s, i, {kind: word}) for s, i in zip(scenes, index, strict=True)]
            jobs.append((concept, word, Concept(concept, kind, concept), prompts))
    for name in tw.CHARACTERS:
        scenes = [tw.Scene.of_character(name, *_context(rng)) for _ in range(scenes_per_word)]
        jobs.append((name, name, Concept(name, "character", name), [prompt_for(s, int(rng.integers(8))) for s in scenes]))
        jobs.append((name, "parts", Concept(name, "character", name), [part_prompt(s, int(rng.integers(2))) for s in scenes]))
    out: dict[str, dict[str, float]] = {}
    for concept, word, info, prompts in jobs:
        batch = [p for p in prompts for _ in range(seeds)]
        images = model.sample(batch, [5000 + k for k in range(len(batch))], steps=10, guidance=1.0)
        out.setdefault(concept, {})[word] = round(float(np.mean(judge(images, [info] * len(batch)).present)), 4)
    return out


def _context(rng: np.random.Generator) -> tuple[str, str]:
    from culbench.toyworld import render as tw

    return tw.BACKGROUNDS[int(rng.integers(2))], tw.POSITIONS[int(rng.integers(3))]


def _scene_with(kind: str, value: str, rng: np.random.Generator) -> Any:
    from culbench.toyworld import render as tw

    fields = {"object": tw.OBJECTS, "colour": tw.COLOURS, "pattern": tw.PATTERNS}
    pick = {k: v[int(rng.integers(len(v)))] for k, v in fields.items()}
    background, position = _context(rng)
    return tw.Scene(**{**pick, kind: value}, background=background, position=position)
