"""``culbench run --dry-run``: what a run would do and roughly how long, without doing it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from culbench.spec import RunSpec


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
            out.append(f"measured {self.seconds_per_image * 1000:.1f} ms/image on {self.device} -> evaluation "
                       f"~{self.eval_hours:.2f} h (+ the method's own time per request)")
        return out


def dry_run(spec: RunSpec, *, time_sampling: bool = True) -> Plan:
    """The plan of ``spec``'s run; with ``time_sampling`` one evaluation batch is sampled to time it.

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
        model = MODELS.get(seq.spec.model.backend)(device=spec.device, **r.backend_options)
        batch = items[: prof.batch_size]
        model.sample([i.prompt for i in batch[:2]], [i.seed for i in batch[:2]], steps=steps,
                     guidance=seq.spec.eval.sampler.guidance)  # warm-up
        start = time.perf_counter()
        model.sample([i.prompt for i in batch], [i.seed for i in batch], steps=steps,
                     guidance=seq.spec.eval.sampler.guidance)
        result.seconds_per_image = (time.perf_counter() - start) / max(1, len(batch))
    return result
