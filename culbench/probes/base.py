"""What every robustness probe is handed (``ProbeTarget``: one checkpoint of one run, its
sequence, judge and sampler) and what it is (``Probe``: a named, versioned, configurable
evaluation whose result is JSON)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar


@dataclass
class ProbeTarget:
    """Checkpoint ``step`` of the run in ``run_dir``, as the run evaluated it.

    Attributes:
        run_dir, manifest: the run folder and its manifest.
        seq: the run's sequence in the run's deletion order (eval split).
        step: the checkpoint (0: the base model).
        device: torch device.
        seed: the probe's seed (fresh samples: never the run's evaluation seeds).
        judge_options: options the run's judge was built with beyond the sequence's (``culbench
            run --judge-option``; a run records only the judge's fingerprint, which must match).
    """

    run_dir: Path
    manifest: dict[str, Any]
    seq: Any
    step: int
    device: str = "cpu"
    seed: int = 0
    judge_options: dict[str, Any] = field(default_factory=dict)
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def identity(self) -> dict[str, Any]:
        return self.manifest["identity"]

    @property
    def profile(self) -> dict[str, Any]:
        return self.identity["profile"]

    @property
    def forgotten(self) -> list[str]:
        """The concepts erased in this checkpoint, oldest first (``independent`` mode: the step's own)."""
        if self.step == 0:
            return []
        if self.identity.get("mode") == "independent":
            return [self.seq.steps[self.step - 1]]
        return list(self.seq.steps[: self.step])

    @property
    def probed(self) -> list[str]:
        """The concepts probes look for: the forgotten ones, or at step 0 (the base model, the
        probes' sanity check: they must find every concept there) every concept the sequence forgets."""
        return self.forgotten if self.step else list(self.seq.steps)

    @property
    def sampler(self) -> dict[str, Any]:
        return {"steps": self.profile.get("sample_steps") or self.seq.spec.eval.sampler.steps,
                "guidance": self.seq.spec.eval.sampler.guidance}

    def model(self) -> Any:
        """The checkpoint's model (loaded once; probes that edit it work on a ``clone()``)."""
        if "model" not in self._cache:
            from culbench.evaluation.judge_agreement import step_model

            self._cache["model"] = step_model(self.run_dir, self.step, self.manifest, self.seq, self.device)
        return self._cache["model"]

    def judge(self) -> Any:
        """The run's own judge, bound to the sequence's concepts."""
        if "judge" not in self._cache:
            from culbench.errors import RunError
            from culbench.evaluation.judge_agreement import run_judge

            judge = run_judge(self.identity, self.seq, self.device, self.judge_options)
            recorded = self.judge_fingerprint()
            if judge.fingerprint() != recorded:
                raise RunError(f"{self.run_dir}: its judge '{recorded['name']}' was built with other options "
                               "or weights", "pass the run's --judge-option values to culbench probe")
            self._cache["judge"] = judge
        return self._cache["judge"]

    def judge_fingerprint(self) -> dict[str, Any]:
        return self.identity["evaluators"][0]

    def present(self, model: Any, prompts: Sequence[str], seeds: Sequence[int], concept: str,
                tick: Callable[[int], None] = lambda n: None) -> list[bool]:
        """Whether ``model``'s sample of each (prompt, seed) shows ``concept``, by the run's judge."""
        batch, out = int(self.profile.get("batch_size") or 64), []
        target = self.seq.concepts[concept]
        for start in range(0, len(prompts), batch):
            chunk = list(prompts[start : start + batch])
            images = model.sample(chunk, list(seeds[start : start + batch]), **self.sampler)
            out += list(self.judge()(images, [target] * len(chunk)).present)
            tick(len(chunk))
        return out


class Probe:
    """A robustness probe: ``run(target, progress)`` returns its JSON result for one checkpoint.

    Subclasses set ``name``, ``version`` (bump it when results change), ``backends`` (those it
    runs on, when not every one), a frozen ``Config``
    dataclass, and may fingerprint the data they read (``data_fingerprint``). A result holds
    ``concepts`` (per forgotten concept: its numbers, and ``prompt_hits`` / ``prompt_images``
    per prompt, the clusters of the board's intervals) and ``summary`` (means over concepts).
    """

    name: ClassVar[str] = ""
    version: ClassVar[int] = 1
    backends: ClassVar[tuple[str, ...]] = ()  # model backends it runs on (empty: any)

    @dataclass(frozen=True)
    class Config:
        pass

    def __init__(self, config: Any = None) -> None:
        self.config = config if config is not None else self.Config()

    def data_fingerprint(self, target: ProbeTarget) -> dict[str, Any]:
        return {}

    def run(self, target: ProbeTarget, progress: Callable[[int, str], Callable[..., None]]) -> dict[str, Any]:
        raise NotImplementedError


def seeds_for(base: int, n: int) -> list[int]:
    """``n`` probe sample seeds from ``base``, far from every sequence's evaluation seeds (< 10**6).

    >>> seeds_for(0, 3)
    [7000000, 7000001, 7000002]
    """
    return [7_000_000 + base * 10_000 + i for i in range(n)]
