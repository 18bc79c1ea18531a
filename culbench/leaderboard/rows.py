"""Comparative views over result files: load summaries, group seeds, build table rows.

A *row* is one method × config × sequence@version × profile; its runs are the seeds (in a
sequence with several deletion orders, each seed runs one of them). A value is the mean over the
row's seeds. Every presence metric's interval — for one seed or several — is the two-level
cluster bootstrap of ``culbench.evaluation.stream.bootstrap`` over the runs and, within them,
the evaluation prompts, from the per-prompt hit counts each ``summary.json`` records. Runs
recorded before those counts existed fall back to the old intervals (one seed: the run's own
interval; several: a 95 % t-interval over seeds), and the row says so (``legacy_intervals``).
Values not computed from the presence matrix (FID, CLIP, compute, gap to the oracle) keep that
t-interval over seeds. Rows of different sequence versions or profiles are never merged, and a
missing value is never averaged over.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from culbench.errors import RunError
from culbench.runfolder import variant_label

REPLICATES = 1000  # bootstrap replicates behind a row's intervals

@dataclass
class Row:
    """One method configuration on one sequence@version × profile, over its seeds."""

    sequence: str
    method: str
    config_hash: str
    profile: str
    summaries: list[dict[str, Any]] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)  # summary.json paths, one per seed
    settings: str = ""  # non-default config fields ("lr=0.0002 iterations=40"), when known
    is_default: bool = False  # the config is the registered method's defaults (known from the manifest)

    @property
    def role(self) -> str:
        """The method's declared role (``culbench.catalog.method_role``): ``"ranked"``,
        ``"reference"`` or ``"oracle"``; ``"ranked"`` for a method not installed here."""
        from culbench.catalog import METHODS, method_role

        method = self.summaries[0]["method"]
        return method_role(method) if method in METHODS else "ranked"

    @property
    def is_oracle(self) -> bool:
        """The oracle method's benchmark row ("Gap retrain" is measured against its default
        config): sequential, evaluation split, default judge (no ``~`` suffix)."""
        return self.method == self.summaries[0]["method"] and self.role == "oracle"

    @property
    def label(self) -> str:
        """``dfr``, ``dfr[lambda_preserve=0.0]`` (non-default settings of a registered method)
        or ``dfr+1a2b3c4d`` (config hash, when the method's defaults are unknown here)."""
        if self.settings:  # shown even for a method's only config: a row is what it ran
            return f"{self.method}[{self.settings}]"
        if self.is_default:
            return self.method
        return f"{self.method}+{self.config_hash[:8]}" if self.config_hash else self.method

    @property
    def partial(self) -> tuple[int, int] | None:
        """``(last committed step, steps in the sequence)`` when the row's runs are unfinished."""
        marks = [tuple(s["partial"]) for s in self.summaries if s.get("partial")]
        return marks[0] if marks else None  # type: ignore[return-value]

    @property
    def seeds(self) -> list[int]:
        return sorted(s["seed"] for s in self.summaries)

    @property
    def mixed_devices(self) -> dict[int, list[str]]:
        """Seeds whose steps ran on more than one device type, with those types (results.summarise
        records ``compute.devices`` then): their cost is not comparable, so they are left out of
        the columns read from a summary's ``compute``."""
        return {s["seed"]: s["compute"]["devices"] for s in self.summaries
                if len(s.get("compute", {}).get("devices", [])) > 1}

    @functools.cached_property
    def cluster_intervals(self) -> dict[str, tuple[float | None, float | None]] | None:
        """Final-step ``(low, high)`` of every presence metric, from the two-level cluster
        bootstrap over this row's runs and prompts; None when a run's summary has no per-prompt
        hit counts (recorded before they existed) or the runs evaluated different concepts."""
        from culbench.evaluation.stream import PromptHits, bootstrap, stream_metrics
        from culbench.evaluation.summary import prompt_hits_of

        runs = [prompt_hits_of(s) for s in self.summaries]
        concepts = self.summaries[0]["concepts"]
        if any(r is None for r in runs) or any(set(s["concepts"]) != set(concepts) for s in self.summaries):
            return None
        aligned = []  # every run's columns in the first run's concept order
        for run, summary in zip(runs, self.summaries, strict=True):
            where = [summary["concepts"].index(c) for c in concepts]
            aligned.append(PromptHits([run.hits[i] for i in where], [run.images[i] for i in where]))  # type: ignore[union-attr]

        def finals(r: int, P: np.ndarray) -> dict[str, float]:
            summary = self.summaries[r]
            values = stream_metrics(P, concepts, summary["roles"], summary["forget_order"])
            return {k: _last(v) for k, v in values.items()}

        ci = bootstrap(aligned, finals, REPLICATES)
        return {k: (v[0][0], v[0][1]) for k, v in ci.items()}

    @property
    def legacy_intervals(self) -> bool:
        """The row's presence intervals are the old ones (no per-prompt hits recorded)."""
        return self.cluster_intervals is None

    def value(self, key: str) -> tuple[float | None, float | None, float | None]:
        """Final-step (or scalar) ``(mean, low, high)`` of a column over this row's seeds (for a
        compute column, over the seeds that ran on one device type)."""
        if key.startswith("probe_"):
            return self.probe_value(key)
        mixed = self.mixed_devices if any(key in s.get("compute", {}) for s in self.summaries) else {}
        points = [final_value(s, key) for s in self.summaries if s["seed"] not in mixed]
        if not points or any(p[0] is None for p in points):
            return None, None, None  # never average over a missing cell
        values = np.array([p[0] for p in points], dtype=float)
        mean = float(values.mean())
        clusters = self.cluster_intervals if key in self.summaries[0].get("metrics", {}) else None
        if clusters is not None and key in clusters:
            return mean, *clusters[key]
        if len(points) == 1:
            return points[0]
        half = t_half_width(values)
        return mean, mean - half, mean + half

    def probe_value(self, key: str) -> tuple[float | None, float | None, float | None]:
        """A robustness column (``culbench.leaderboard.probes``) from the probe records of this
        row's runs on their final step; all ``None`` when a run has none."""
        from culbench.leaderboard.probes import PRESENCE_PROBES, SCALAR_PROBES, probe_presence, probe_scalar

        if len(self.sources) != len(self.summaries):
            return None, None, None
        steps = [len(s["forget_order"]) for s in self.summaries]
        runs = [Path(src).parent for src in self.sources]
        if key in PRESENCE_PROBES:
            return probe_presence(runs, steps, PRESENCE_PROBES[key])
        if key in SCALAR_PROBES:
            return probe_scalar(runs, steps, *SCALAR_PROBES[key])
        return None, None, None

    def curve(self, key: str) -> np.ndarray:
        """Per-step values of a metric, one row per seed (NaN where missing)."""
        rows = [series(s, key) for s in self.summaries]
        width = max(len(r) for r in rows)
        return np.array([r + [math.nan] * (width - len(r)) for r in rows], dtype=float)


def t_half_width(values: np.ndarray, level: float = 0.95) -> float:
    """Half-width of the t-interval of the mean.

    >>> round(t_half_width(np.array([0.8, 0.9, 1.0])), 4)
    0.2484
    """
    from scipy import stats

    n = len(values)
    if n < 2:
        return 0.0
    return float(stats.t.ppf(0.5 + level / 2, n - 1) * values.std(ddof=1) / math.sqrt(n))


def _last(value: Any) -> float:
    """The final-step value of a metric (the value itself for a scalar), NaN when empty."""
    array = np.atleast_1d(np.asarray(value, dtype=float))
    return float(array[-1]) if array.size else math.nan


def series(summary: dict[str, Any], key: str) -> list[float]:
    raw = summary.get("metrics", {}).get(key, summary.get("quality", {}).get(key))
    if not isinstance(raw, list):
        return []
    return [math.nan if v is None else float(v) for v in raw]


def final_value(summary: dict[str, Any], key: str) -> tuple[float | None, float | None, float | None]:
    """``(value, low, high)`` of ``key`` at the last step (or the scalar), from one summary."""
    for values, intervals in ((summary.get("metrics", {}), summary.get("metrics_ci", {})),
                              (summary.get("quality", {}), summary.get("quality_ci", {})),
                              (summary.get("oracle", {}), {})):
        if key in values:
            value, ci = values[key], intervals.get(key)
            if isinstance(value, list):
                value, ci = (value[-1] if value else None), (ci[-1] if ci else None)
            elif isinstance(ci, list) and ci and isinstance(ci[0], list):
                ci = ci[0]
            low, high = (ci if ci else (value, value))
            return value, low, high
    compute = summary.get("compute", {})
    if key in compute:
        return compute[key], compute[key], compute[key]
    return None, None, None


def find_summaries(paths: Iterable[Path]) -> list[Path]:
    """``summary.json`` files in the given run directories or results roots."""
    found: list[Path] = []
    for path in paths:
        if path.is_file() and path.name == "summary.json":
            found.append(path)
        elif (path / "summary.json").is_file():
            found.append(path / "summary.json")
        elif path.is_dir():
            found.extend(sorted(p for p in path.rglob("summary.json") if ".cache" not in p.parts))
        else:
            raise RunError(f"{path} does not exist", "pass run directories or a results root")
    if not found:
        raise RunError(f"no complete runs (summary.json) under {', '.join(map(str, paths))}",
                       "finish a run with `culbench run` (rerun it to resume) first")
    return found


def load_rows(paths: Sequence[Path], extra: Sequence[tuple[Path, dict[str, Any]]] = ()) -> list[Row]:
    """Summaries grouped into rows, ordered by sequence, profile and method; ``extra`` adds
    ``(summary path, summary)`` pairs computed in memory (partial runs)."""
    rows: dict[tuple[str, str, str, str], Row] = {}
    loaded: list[tuple[Path, dict[str, Any]]] = []
    try:
        found = find_summaries(paths) if paths else []
    except RunError:
        if not extra:
            raise
        found = []  # only unfinished runs were given (shown with --allow-partial)
    for path in found:
        try:
            loaded.append((path, json.loads(path.read_text(encoding="utf-8"))))
        except json.JSONDecodeError as exc:
            raise RunError(f"{path} is corrupt ({exc.msg})", "rerun `culbench validate` on that run") from None
    for path, summary in [*loaded, *extra]:
        method = variant_label(summary["method"], summary.get("mode", "sequential"), summary.get("split", "eval"),
                               summary.get("judge"))
        key = (summary["sequence"], method, summary.get("config_hash", ""), summary["profile"])
        if key not in rows:  # one manifest read per row, not per seed
            settings = _settings(path.parent / "manifest.json", summary["method"])
            rows[key] = Row(*key, settings=settings or "", is_default=settings == "")
        row = rows[key]
        if summary["seed"] in row.seeds:
            raise RunError(f"{path}: seed {summary['seed']} of {row.label} appears twice",
                           "pass each run once")
        row.summaries.append(summary)
        row.sources.append(str(path))
    _drop_default_hash(rows.values())
    attach_oracle_gap(rows.values())
    return sorted(rows.values(), key=lambda r: (r.sequence, r.profile, r.method, r.config_hash))


def attach_oracle_gap(rows: Iterable[Row]) -> None:
    """Add ``oracle.gap_retrain`` and ``oracle.auc_gap_retrain`` to each finished summary of a
    sequence × profile that has a finished ``retrain`` row (default config, sequential).

    The gap at step k is the mean over concepts of |P_run[k, c] − P_retrain[k, c]|, where
    P_retrain is the mean over the oracle's seeds that ran the same deletion order; ``gap_retrain`` is its value at the last step,
    ``auc_gap_retrain`` the area under its curve over steps 0..K (the oracle exists at every
    step, so a method that strays mid-sequence and comes back shows here). The oracle's own
    seeds are compared with the mean of its *other* seeds, so its row shows the seed-to-seed
    floor. Rows without an oracle get no values (shown —)."""
    from culbench.evaluation.metrics import area_under

    groups: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        groups.setdefault((row.sequence, row.profile), []).append(row)
    for members in groups.values():
        oracle = next((r for r in members if r.is_oracle and r.is_default and not r.partial), None)
        if oracle is None:
            continue
        concepts = oracle.summaries[0]["concepts"]
        steps = len(oracle.summaries[0]["presence"])

        def matrix(summary: dict[str, Any]) -> np.ndarray:  # steps × the oracle's concept order
            where = [summary["concepts"].index(c) for c in concepts]
            return np.asarray(summary["presence"], dtype=float)[:, where]

        oracles = {s["seed"]: (matrix(s), s.get("forget_order")) for s in oracle.summaries}
        for row in members:
            for summary in row.summaries:
                if summary.get("partial") or len(summary.get("presence", [])) != steps \
                        or set(summary.get("concepts", [])) != set(concepts):
                    continue
                others = [p for seed, (p, order) in oracles.items() if order == summary.get("forget_order")
                          and (row is not oracle or seed != summary["seed"])]
                if others:
                    curve = np.abs(matrix(summary) - np.mean(others, axis=0)).mean(axis=1)
                    summary.setdefault("oracle", {}).update(gap_retrain=round(float(curve[-1]), 6),
                                                            auc_gap_retrain=round(area_under(curve), 6))


def _settings(manifest: Path, method: str) -> str | None:
    """The run's config fields that differ from the registered method's defaults ("" when
    nothing differs, None when the manifest or the method is unavailable)."""
    try:
        from culbench.catalog import METHODS
        from culbench.config import config_to_dict

        config = json.loads(manifest.read_text(encoding="utf-8"))["identity"]["method"]["config"]
        defaults = json.loads(json.dumps(config_to_dict(METHODS.get(method).Config())))
    except Exception:  # noqa: BLE001 - labels fall back to the config hash
        return None
    return " ".join(f"{k}={v}" for k, v in config.items() if defaults.get(k, object()) != v)


def _drop_default_hash(rows: Iterable[Row]) -> None:
    """Show the config hash only to tell apart configs of the same method."""
    by_method: dict[tuple[str, str, str], list[Row]] = {}
    for row in rows:
        by_method.setdefault((row.sequence, row.profile, row.method), []).append(row)
    for group in by_method.values():
        if len(group) == 1:
            group[0].config_hash = ""
