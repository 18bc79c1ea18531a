"""Leaderboard tables: rows ranked and marked, one table per sequence@version × profile.

``build(paths)`` groups complete runs into rows (``culbench.leaderboard.rows``), one table per
sequence@version × profile (``culbench.leaderboard.formats`` renders them). Rules (see
``docs/leaderboard.md``): sequence versions and profiles are never mixed; a missing value is
shown as missing, never averaged over; every value carries its 95 % interval; a row ranks only
with at least ``MIN_SEEDS`` seeds (fewer are shown, unranked); ranks are tie-aware — a row's
rank is 1 + the number of rows whose interval lies entirely above (or, for ↓ columns, below)
its own; rows from ``leaderboard/results`` (re-run by the maintainers' pipeline) are
*verified*, everything else is *self-reported*.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from culbench.errors import RunError
from culbench.evaluation.metric_info import METRICS, RANK_METRIC, MetricInfo
from culbench.leaderboard.rows import Row, load_rows

RANK_KEY = RANK_METRIC.key
MIN_SEEDS = 3  # a row ranks only with this many seeds (runs) behind its intervals


@dataclass
class Table:
    """One sequence@version × profile: its rows in rank order (references last), the columns
    that have a value in some row, each row's rank and, per column, the rows holding the best value."""

    sequence: str
    profile: str
    rows: list[Row]
    columns: list[MetricInfo]
    ranks: list[int | None]  # None = unranked: a reference, unfinished or under MIN_SEEDS row (listed last)
    best: dict[str, set[int]]

    @property
    def title(self) -> str:
        """``toy10@2 · profile standard``; an archived version says what supersedes it, a smoke
        table that its numbers are plumbing (``culbench.profiles.caveat``)."""
        from culbench.profiles import caveat

        newer = superseded_by(self.sequence)
        notes = [f"superseded by {newer} (archive)" if newer else "", caveat(self.profile)]
        return " · ".join([f"{self.sequence} · profile {self.profile}", *filter(None, notes)])


def superseded_by(sequence_id: str) -> str | None:
    """The newest installed version of ``sequence_id``'s sequence when that is newer, else None."""
    from culbench.catalog import SEQUENCE_VERSIONS, SEQUENCES

    name, _, version = sequence_id.partition("@")
    if name not in SEQUENCES or not version.isdigit():
        return None
    newest = max(SEQUENCE_VERSIONS.get(name, {0: None}))
    return f"{name}@{newest}" if newest > int(version) else None


def tie_aware_ranks(intervals: Sequence[tuple[float | None, float | None, float | None]], direction: int) -> list[int]:
    """1 + number of rows that are better with non-overlapping intervals; missing values rank last.

    >>> tie_aware_ranks([(0.9, 0.85, 0.95), (0.88, 0.8, 0.9), (0.5, 0.45, 0.55)], +1)
    [1, 1, 3]
    >>> tie_aware_ranks([(0.1, 0.05, 0.15), (None, None, None)], -1)
    [1, 2]
    """
    ranks = []
    for value, low, high in intervals:
        if value is None:
            ranks.append(len(intervals))
            continue
        better = 0
        for other, o_low, o_high in intervals:
            if other is None:
                continue
            if direction > 0 and o_low is not None and high is not None and o_low > high:
                better += 1
            if direction < 0 and o_high is not None and low is not None and o_high < low:
                better += 1
        ranks.append(1 + better)
    return ranks


def is_verified(row: Row) -> bool:
    """All of the row's runs come from ``leaderboard/results`` (the maintainers' pipeline)."""
    def published(source: str) -> bool:
        parts = Path(source).resolve().parts
        return any(parts[i:i + 2] == ("leaderboard", "results") for i in range(len(parts) - 1))

    return bool(row.sources) and all(published(s) for s in row.sources)


def is_reference(row: Row) -> bool:
    """A reference row — a method whose role is ``reference`` or ``oracle`` (the untouched model,
    the retrain oracle), or any method run with ``--mode independent|simultaneous`` — is shown for
    scale but neither ranked nor marked best."""
    return row.role != "ranked" or row.summaries[0].get("mode", "sequential") != "sequential"


def too_few_seeds(row: Row) -> bool:
    """The row has fewer than ``MIN_SEEDS`` seeds: shown, never ranked nor marked best."""
    return len(row.seeds) < MIN_SEEDS


def partial_summary(run_dir: Path) -> dict[str, Any]:
    """The summary of an unfinished run over its committed steps, marked ``partial``."""
    from culbench.evaluation.summary import build_summary
    from culbench.runfolder import committed_steps, read_json, step_dir

    manifest = read_json(run_dir / "manifest.json")
    steps = committed_steps(run_dir)
    if not steps:
        raise RunError(f"{run_dir} has no committed step", "rerun its `culbench run` or remove the folder")
    order = [read_json(step_dir(run_dir, k) / "step.json")["concept"] for k in steps[1:]]
    summary = build_summary(run_dir, manifest, order)
    summary["partial"] = [steps[-1], manifest.get("steps_total", steps[-1])]
    return summary


def build(paths: Sequence[Path], allow_partial: bool = False) -> list[Table]:
    """Tables over every complete run found under ``paths``; unfinished runs are refused, or with
    ``allow_partial`` shown at their last committed step, marked, unranked and never best."""
    partial = [m.parent for p in paths if p.is_dir() for m in p.rglob("manifest.json")
               if not (m.parent / "summary.json").exists() and ".cache" not in m.parts]
    if partial and not allow_partial:
        raise RunError(f"{len(partial)} incomplete run(s), e.g. {partial[0]}",
                       "finish them (rerun the same `culbench run`), move them out of the leaderboard folders, "
                       "or pass --allow-partial to show them marked")
    extra = [(d / "summary.json", partial_summary(d)) for d in partial]
    complete = [p for p in paths if p not in partial]
    rows = load_rows(complete, extra)
    for row in rows:
        reached = {len(s.get("forget_order", [])) if s.get("partial") else None for s in row.summaries}
        if row.partial and len(reached) > 1:
            raise RunError(f"the seeds of {row.label} stopped at different steps",
                           "finish them, or pass only runs that reached the same step")
    tuning = [r for r in rows if r.summaries[0].get("split", "eval") != "eval"]
    if tuning:
        raise RunError(f"{tuning[0].sources[0]} was evaluated on the validation prompts (--split val)",
                       "tuning runs are never ranked: move them out of the leaderboard folders")
    groups: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        groups.setdefault((row.sequence, row.profile), []).append(row)
    return [_table(sequence, profile, members) for (sequence, profile), members in groups.items()]


def _table(sequence: str, profile: str, members: list[Row]) -> Table:
    """The rows of one sequence × profile ranked by ``RANK_KEY`` (rows with too few seeds, then
    references and unfinished rows, last and unranked), the columns some row has a value in, and
    the best value per column among ranked rows."""
    columns = [m for m in METRICS if any(r.value(m.key)[0] is not None for r in members)]
    ranked = [r for r in members if not is_reference(r) and not r.partial and not too_few_seeds(r)]
    few = sorted((r for r in members if r not in ranked and not is_reference(r) and not r.partial),
                 key=lambda r: r.label)
    references = sorted((r for r in members if is_reference(r) or r.partial), key=lambda r: r.label)
    ranked_ranks = tie_aware_ranks([r.value(RANK_KEY) for r in ranked], RANK_METRIC.direction)
    order = sorted(range(len(ranked)), key=lambda i: (ranked_ranks[i], ranked[i].label))
    members = [ranked[i] for i in order] + few + references
    ranks: list[int | None] = [ranked_ranks[i] for i in order] + [None] * (len(few) + len(references))
    contenders = [i for i, r in enumerate(ranks) if r is not None]
    best: dict[str, set[int]] = {}
    for metric in columns:
        values = [members[i].value(metric.key)[0] if i in contenders else None for i in range(len(members))]
        present = [v for v in values if v is not None]
        if present:
            top = max(present) if metric.higher_is_better else min(present)
            best[metric.key] = {i for i, v in enumerate(values) if v == top}
    return Table(sequence, profile, members, columns, ranks, best)
