"""Evaluation and compute profiles: ``smoke`` (tests, seconds), ``standard`` (the leaderboard
setting) and ``full`` (every prompt and seed of the sequence)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from culbench.errors import ConfigError


@dataclass(frozen=True)
class Profile:
    """How much to evaluate and how much compute a method may spend.

    Attributes:
        name: profile name.
        description: one line for ``culbench ls profiles``.
        prompts_per_concept: eval prompts per concept (``None`` = all of the sequence's).
        seeds_per_prompt: eval seeds per prompt (``None`` = all of the sequence's).
        sample_steps: DDIM steps for evaluation (``None`` = the sequence's sampler).
        max_iterations: cap on a method's optimiser iterations per request (``None`` = none).
        max_samples: cap on samples a method generates per request (``None`` = none).
        batch_size: images per sampling batch.
        bootstrap: replicates behind every stream metric's 95 % interval.
        fid_bootstrap: replicates behind FID intervals (each one costs a matrix square root
            per step; 0 = no FID intervals).
    """

    name: str
    description: str
    prompts_per_concept: int | None
    seeds_per_prompt: int | None
    sample_steps: int | None
    max_iterations: int | None
    max_samples: int | None
    batch_size: int = 64
    bootstrap: int = 1000
    fid_bootstrap: int = 50

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


PROFILES: dict[str, Profile] = {
    profile.name: profile
    for profile in (
        Profile("smoke", "seconds per run: plumbing checks and tests", 2, 2, 2, 2, 4, 32, 100, 0),
        Profile("standard", "the leaderboard setting: 24 prompts x 1 seed per concept", 24, 1, None, None, None, 64),
        Profile("standard-6x6", "toy10@1's board setting (6 prompts x 6 seeds), to reproduce it", 6, 6, None,
                None, None, 64),
        Profile("full", "every eval prompt and seed of the sequence", None, None, None, None, None, 64),
    )
}


SMOKE_NOTE = "smoke profile: plumbing numbers, not measurements"


def caveat(profile: str) -> str:
    """The note every printed result of ``profile`` carries: smoke runs (2 prompts, 2 sampler
    steps, 2 training iterations) check that the plumbing works and measure nothing; ``""`` for
    the other profiles."""
    return SMOKE_NOTE if profile == "smoke" else ""


def get_profile(name: str) -> Profile:
    """The profile called ``name``; unknown names raise with the list."""
    if name not in PROFILES:
        raise ConfigError(f"unknown profile '{name}'", f"use one of: {', '.join(PROFILES)}")
    return PROFILES[name]
