"""``culbench run --dry-run``: what a run would do and roughly how long, without doing it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from culbench.spec import RunSpec

#: DDIM steps sampled to time a step (the estimate scales them to the sampler's steps)
TIMED_STEPS = 2
#: seconds the timed batch should take (a full batch of full-size SD takes minutes on a CPU)
TIMING_BUDGET_S = 30.0


@dataclass
class Plan:
    sequence: str
    method: str
    profile: str
    device: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    images_per_checkpoint: int = 0
    checkpoints: int = 0
    sampler: str = ""
    seconds_per_image: float | None = None
    timed: str = ""  # how the sampling was timed

    @property
    def eval_hours(self) -> float | None:
        if self.seconds_per_image is None:
            return None
        return self.seconds_per_image * self.images_per_checkpoint * self.checkpoints / 3600

    def lines(self) -> list[str]:
        out = [f"{self.method} on {self.sequence}, profile {self.profile}, device {self.device}",
               f"{len(self.requests)} requests:"]
        out += [f"  {r['step']:>2}. forget {r['concept']:<18} {r['forget_prompts']:>4} forget prompts, "
                f"{r['retain_prompts']:>5} retain prompts" for r in self.requests]
        out.append(f"evaluation: {self.checkpoints} checkpoints x {self.images_per_checkpoint} images "
                   f"({self.sampler}) = {self.checkpoints * self.images_per_checkpoint} images")
        if self.seconds_per_image is not None:
            out.append(f"measured {self.seconds_per_image * 1000:.1f} ms/image on {self.device} ({self.timed}) "
                       f"-> evaluation ~{self.eval_hours:.2f} h (+ the method's own time per request)")
        return out


def dry_run(spec: RunSpec, *, time_sampling: bool = True) -> Plan:
    """The plan of ``spec``'s run; with ``time_sampling`` one evaluation batch is sampled for
    :data:`TIMED_STEPS` steps to time it (fewer images where one takes seconds).

    The spec is resolved as the run resolves it, so a plan that prints is a run that starts.
    """
    from culbench.catalog import MODELS
    from culbench.evaluation.presence import plan as eval_plan

    r = spec.resolve()
    seq, prof = r.seq, r.prof
    items = eval_plan(seq, prof)
    steps = prof.sample_steps or seq.spec.eval.sampler.steps
    label = spec.method if spec.mode == "sequential" else f"{spec.method} --mode {spec.mode}"
    result = Plan(seq.id, label, prof.name, spec.device, images_per_checkpoint=len(items),
                  checkpoints=len(seq.steps) + 1, sampler=f"DDIM {steps}, guidance {seq.spec.eval.sampler.guidance}")
    for k in range(1, len(seq.steps) + 1):
        request = seq.request(k, simultaneous=spec.mode == "simultaneous")
        result.requests.append({"step": k, "concept": request.concept.id, "forget_prompts": len(request.forget),
                                "retain_prompts": len(request.retain_prompts("all"))})
    if time_sampling:
        import os

        import torch

        torch.set_num_threads(spec.threads or max(1, os.cpu_count() or 1))  # as the run would
        model = MODELS.get(seq.spec.model.backend)(device=spec.device, **r.backend_options)
        batch = items[: min(prof.batch_size, model.batch_size)]
        result.seconds_per_image, n = _seconds_per_image(model, batch, steps, seq.spec.eval.sampler.guidance)
        result.timed = f"{n} images, {min(steps, TIMED_STEPS)} of {steps} steps timed"
    return result


def _seconds_per_image(model: Any, batch: list[Any], steps: int, guidance: float) -> tuple[float, int]:
    """Seconds per evaluation image of ``steps`` DDIM steps and the images timed: one batch sampled
    for at most :data:`TIMED_STEPS` steps (per-step time × ``steps``) plus its decode, after a
    one-image warm-up that shrinks the batch to about :data:`TIMING_BUDGET_S` seconds."""
    prompts, seeds = [i.prompt for i in batch], [i.seed for i in batch]
    timed = min(steps, TIMED_STEPS)
    start = time.perf_counter()
    model.decode(model.sample(prompts[:1], seeds[:1], steps=1, guidance=guidance, output="latent"))  # warm-up
    n = max(1, min(len(batch), int(TIMING_BUDGET_S / max(time.perf_counter() - start, 1e-3) / timed)))
    start = time.perf_counter()
    latents = model.sample(prompts[:n], seeds[:n], steps=timed, guidance=guidance, output="latent")
    denoise = time.perf_counter() - start
    start = time.perf_counter()
    model.decode(latents)
    decode = time.perf_counter() - start
    return (denoise * steps / timed + decode) / n, n
