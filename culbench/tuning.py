"""Equal tuning: every method gets the same budget of configurations on validation prompts.

``culbench tune --method M`` tries ``BUDGET`` configurations of M: its defaults, then
``BUDGET - 1`` points of the grid its class declares (``Method.tune_grid``) drawn in a fixed
seeded order, each run on the validation split (validation prompts, the sequence's tuning order,
held-out concepts unscored) with seed 0. The pick is declared here (``RULE``), and what was tried
is recorded in ``tune.json`` beside the runs; the leaderboard shows each row's budget.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np

from culbench.errors import ConfigError

BUDGET = 8
RULE = ("highest validation H (final step); a tie to 3 decimals goes to the earlier candidate, "
        "the defaults first")
TUNE_FILE = "tune.json"


def candidates(method: str, method_cls: type, budget: int = BUDGET) -> list[tuple[str, ...]]:
    """``budget`` override lists (``--set`` items) for ``method``: ``()`` (its defaults) first,
    then grid points in a fixed order that depends only on the grid.

    >>> class M:
    ...     class Config:
    ...         lr: float = 1.0
    ...         steps: int = 2
    ...     tune_grid = {"lr": (0.5, 1.0, 2.0), "steps": (2, 4)}
    >>> picks = candidates("m", M, budget=4)
    >>> picks[0], len(picks), len(set(picks))
    ((), 4, 4)
    >>> ("m.lr=1.0", "m.steps=2") in picks  # the defaults are not drawn twice
    False
    """
    grid = dict(getattr(method_cls, "tune_grid", {}) or {})
    points = [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]
    default = {key: getattr(method_cls.Config, key, None) for key in grid}
    points = [p for p in points if p != default]
    if len(points) < budget - 1:
        raise ConfigError(f"method '{method}' declares a tuning grid of {len(points)} points besides its "
                          f"defaults; the budget needs {budget - 1}",
                          "declare tune_grid with more values in the method's class")
    order = np.random.default_rng(len(points)).permutation(len(points))[: budget - 1]
    chosen = [points[i] for i in sorted(order)]
    return [()] + [tuple(f"{method}.{k}={v}" for k, v in p.items()) for p in chosen]


def pick(scores: list[float | None]) -> int:
    """Index of the chosen candidate under ``RULE`` (``None``: a failed run, never chosen).

    >>> pick([0.8101, 0.8099, 0.80])
    0
    >>> pick([0.80, None, 0.83])
    2
    """
    rounded = [round(s, 3) if s is not None and np.isfinite(s) else -1.0 for s in scores]
    if max(rounded) < 0:
        raise ConfigError("no tuning run finished with a finite H", "look at the runs' summaries")
    return rounded.index(max(rounded))


def record(out: Path, entry: dict[str, Any]) -> Path:
    """Write ``tune.json`` (what was tried, the scores, the rule and the pick) into ``out``."""
    from culbench.runfolder.atomic import write_json

    out.mkdir(parents=True, exist_ok=True)
    path = out / TUNE_FILE
    write_json(path, {"budget": len(entry["candidates"]), "rule": RULE, **entry})
    return path


def read_record(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def note_budget(index: Path, sequence: str, method: str, budget: int, record_path: Path) -> Path:
    """Add ``method``'s tuning budget and pick to ``index/<sequence>.json``, the file the
    leaderboard reads each row's budget from (``culbench.leaderboard.formats.tuning_budget``), and
    keep a copy of its record beside it (``index/<sequence>/<method>.json``, run paths relative to
    the tuning results root) so that what was tried is published with the board."""
    from culbench.runfolder.atomic import write_json

    index = Path(index)
    record = read_record(record_path)
    root = Path(record_path).parent.parent.parent  # <out>/<sequence>/<method>/tune.json
    for candidate in record.get("candidates", []):
        run = Path(candidate["run"])
        candidate["run"] = str(run.relative_to(root)) if run.is_relative_to(root) else str(run)
    copy = index / sequence / f"{method}.json"
    copy.parent.mkdir(parents=True, exist_ok=True)
    write_json(copy, record)
    path = index / f"{sequence}.json"
    data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {"methods": {}}
    chosen = record["candidates"][record["chosen"]]["overrides"] if "chosen" in record else []
    data.setdefault("methods", {})[method] = {"budget": budget, "chosen": chosen,
                                              "record": f"{sequence}/{method}.json"}
    write_json(path, data)
    return path
