"""A board spec: everything a published leaderboard is made of, as data (``leaderboard/boards/*.yaml``).

One YAML file names the sequence, profile and seeds, the rows (a method, its modes, extra
settings) and the probes run on every final checkpoint; each method runs with the settings its
equal tuning chose (``tuning:``, the index ``culbench tune --index`` writes). :func:`board_jobs`
expands it into the runs and probe jobs that ``culbench sweep --board`` computes, resumably::

    sequence: toy10@2
    profile: standard
    seeds: [0, 1, 2]
    tuning: ../tuning/toy10@2.json          # relative to this file
    probes: [paraphrase, attack, relearn]
    rows:
      - method: dfr
        modes: [sequential, independent, simultaneous]
      - method: retrain
        set: [retrain.prior_without=zorb,star]
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from culbench.errors import TaskError
from culbench.spec import DEFAULT_PROFILE, RunSpec


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BoardRow(_Strict):
    """One method's rows: a run per mode and seed."""

    method: str
    modes: list[str] = Field(default_factory=lambda: ["sequential"], min_length=1)
    set: list[str] = Field(default_factory=list)  # settings on top of the tuned ones
    tuned: bool = True  # run with the settings the tuning index chose for this method


class BoardSpec(_Strict):
    """A whole board (see the module docstring)."""

    sequence: str
    profile: str = DEFAULT_PROFILE
    seeds: list[int] = Field(min_length=1)
    tuning: str | None = None
    probes: list[str] = Field(default_factory=list)
    rows: list[BoardRow] = Field(min_length=1)


@dataclass(frozen=True)
class BoardJobs:
    """What a board spec asks for: its runs, the probes on each sequential run's final step, and
    the methods run with their defaults because the tuning index has no pick for them."""

    runs: list[RunSpec]
    probes: list[tuple[RunSpec, str]]
    untuned: list[str]


def load_board(path: Path) -> BoardSpec:
    """The board spec at ``path``; a malformed file raises ``TaskError`` naming the line and fix."""
    from culbench.yamlfile import parse

    return parse(BoardSpec, Path(path))[0]


def tuned_settings(spec: BoardSpec, where: Path) -> dict[str, list[str]]:
    """Method -> the overrides its tuning chose (``spec.tuning``, relative to the spec's folder)."""
    if spec.tuning is None:
        return {}
    index = (Path(where) / spec.tuning).resolve()
    try:
        data = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise TaskError(f"board tuning index {index} is unreadable ({exc})",
                        "point tuning: at the file `culbench tune --index` writes, or remove it") from None
    return {m: list(entry.get("chosen", [])) for m, entry in data.get("methods", {}).items()}


def board_jobs(spec: BoardSpec, where: Path, *, out: Path, device: str = "cpu",
               threads: int | None = None) -> BoardJobs:
    """Every run and probe job of ``spec`` (``where``: the spec file's folder), each run
    (``RunSpec.resolve``) and probe name checked before anything runs."""
    from culbench.probes import build_probe

    for name in spec.probes:
        build_probe(name)  # an unknown probe fails now, not after the board's runs
    chosen = tuned_settings(spec, where)
    runs, probes, untuned = [], [], []
    for row in spec.rows:
        tuned = chosen.get(row.method) if row.tuned else []
        if tuned is None:
            untuned.append(row.method)
        for mode in row.modes:
            for seed in spec.seeds:
                run = RunSpec(row.method, sequence=spec.sequence, seed=seed, profile=spec.profile, out=out,
                              overrides=(*(tuned or ()), *row.set), device=device, threads=threads, mode=mode)
                run.resolve()
                runs.append(run)
                if mode == "sequential":
                    probes += [(run, probe) for probe in spec.probes]
    return BoardJobs(runs, probes, sorted(set(untuned)))
