"""``culbench run --dry-run``: what a run would do and roughly how long, without doing it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


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


def dry_run(method: str, *, sequence: str, profile: str, device: str = "cpu", overrides: tuple[str, ...] = (),
            model_options: dict[str, Any] | None = None, time_sampling: bool = True, mode: str = "sequential",
            split: str = "eval", judge: str | None = None, fid: str | None = None) -> Plan:
    """The plan of a run; with ``time_sampling`` one evaluation batch is sampled to time it.

    Every option is checked as the run would check it, so a plan that prints is a run that starts.
    """
    from culbench.catalog import FEATURES, JUDGES, METHODS, MODELS
    from culbench.compute import check_device
    from culbench.config import build_config, parse_overrides
    from culbench.evaluation.presence import plan as eval_plan
    from culbench.profiles import get_profile
    from culbench.runner import check_mode
    from culbench.tasks import resolve_sequence

    check_device(device)
    check_mode(mode)
    seq = resolve_sequence(sequence).with_split(split)
    for registry, name in ((JUDGES, judge), (FEATURES, fid)):
        if name:
            registry.get(name)
    prof = get_profile(profile)
    build_config(METHODS.get(method).Config, method, parse_overrides(overrides, method))  # validate
    items = eval_plan(seq, prof)
    steps = prof.sample_steps or seq.spec.eval.sampler.steps
    label = method if mode == "sequential" else f"{method} --mode {mode}"
    result = Plan(seq.id, label, prof.name, device, images_per_checkpoint=len(items),
                  checkpoints=len(seq.steps) + 1, sampler=f"DDIM {steps}, guidance {seq.spec.eval.sampler.guidance}")
    for k in range(1, len(seq.steps) + 1):
        request = seq.request(k, simultaneous=mode == "simultaneous")
        result.requests.append({"step": k, "concept": request.concept.id, "forget_prompts": len(request.forget),
                                "retain_prompts": len(request.retain_prompts("all"))})
    if time_sampling:
        options = {**seq.spec.model.options, **(model_options or {})}
        model = MODELS.get(seq.spec.model.backend)(device=device, **options)
        batch = items[: prof.batch_size]
        model.sample([i.prompt for i in batch[:2]], [i.seed for i in batch[:2]], steps=steps,
                     guidance=seq.spec.eval.sampler.guidance)  # warm-up
        start = time.perf_counter()
        model.sample([i.prompt for i in batch], [i.seed for i in batch], steps=steps,
                     guidance=seq.spec.eval.sampler.guidance)
        result.seconds_per_image = (time.perf_counter() - start) / max(1, len(batch))
    return result
