"""The judge-agreement probe: the run's judge against a second, independent judge on a sample of
the checkpoint's evaluation images (``evaluation.judge_agreement``), so that the report can give
each method's agreement (Cohen's κ, ``evaluation.agreement``). Unlearned models make images the
main judge was never validated on; a method whose κ falls far below the base model's is one whose
numbers the main judge may be misreading.

The second judge for a ToyWorld sequence is tiny-CLIP zero-shot with the sequence's CLIP version.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from culbench.probes.base import Probe, ProbeTarget


class JudgeAgreementProbe(Probe):
    """Both judges' verdicts on ``per_concept`` evaluation images of every scored concept."""

    name = "agreement"
    version = 1
    backends = ("toyworld",)  # its second judge is ToyWorld's tiny CLIP

    @dataclass(frozen=True)
    class Config:
        per_concept: int = 6       # images per concept, evenly spaced over its prompt x seed list
        second: str = "toyworld-clip-zeroshot"

    def data_fingerprint(self, target: ProbeTarget) -> dict[str, Any]:
        return {"second_options": self._second_options(target)}

    def _second_options(self, target: ProbeTarget) -> dict[str, Any]:
        clip = target.seq.spec.eval.clip
        return dict(clip.options) if clip is not None and clip.name == "toyworld-clip" else {}

    def run(self, target: ProbeTarget, progress: Callable[[int, str], Callable[..., None]]) -> dict[str, Any]:
        from culbench.evaluation.agreement import agreement_rows
        from culbench.evaluation.judge_agreement import judge_pairs

        tick = progress(1, f"agreement: {self.config.second} (step {target.step})")
        found = judge_pairs(target.run_dir, step=target.step, per_concept=self.config.per_concept,
                            second=self.config.second, second_options=self._second_options(target),
                            device=target.device)
        tick(1)
        pairs = [{k: p[k] for k in ("concept", "kind", "present_a", "present_b", "read_a", "read_b")}
                 for p in found["pairs"]]
        rows = {row["kind"]: row for row in agreement_rows(pairs)}
        whole = rows.get("all", {})
        return {"pairs": pairs, "kinds": rows, "stored_match": found["stored_match"],
                "summary": {"kappa": whole.get("kappa"), "agreement": whole.get("agreement"), "n": whole.get("n")}}
