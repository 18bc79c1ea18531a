"""The board's robustness columns: what the probes (``culbench probe``) found on each run's final
checkpoint, as a mean over the row's runs with the same two-level cluster bootstrap as every other
presence column (runs, then each concept's prompts; ``evaluation.stream.bootstrap``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from culbench.evaluation.stream import PromptHits, bootstrap
from culbench.runfolder.probes import read_probe

# column key -> the probe whose records it reads (their per-prompt hits of the probed concepts)
PRESENCE_PROBES: dict[str, str] = {"probe_paraphrase": "paraphrase", "probe_attack": "attack"}
# column key -> (probe, per-concept field): numbers without per-prompt hits (a restoration curve's area)
SCALAR_PROBES: dict[str, tuple[str, str]] = {"probe_relearn_auc": ("relearn", "auc"),
                                             "probe_relearn_gap": ("relearn", "auc_gap")}
REPLICATES = 1000


def run_hits(run_dir: Path, probe: str, step: int) -> tuple[list[str], PromptHits] | None:
    """The probed concepts (sorted) and their per-prompt hits in ``probe``'s record on ``step``."""
    record = read_probe(run_dir, probe, step, set_aside=False)
    if record is None:
        return None
    concepts = record["result"].get("concepts", {})
    names = sorted(concepts)
    if not names or any("prompt_hits" not in concepts[c] for c in names):
        return None
    hits = [np.array([concepts[c]["prompt_hits"]], dtype=int) for c in names]
    images = [np.array(concepts[c]["prompt_images"], dtype=int) for c in names]
    return names, PromptHits(hits, images)


def probe_presence(run_dirs: Sequence[Path], steps: Sequence[int], probe: str,
                   replicates: int = REPLICATES) -> tuple[float | None, float | None, float | None]:
    """``(mean, low, high)`` over runs of the mean presence of the probed concepts under
    ``probe``; all ``None`` unless every run has a record on its step for the same concepts."""
    found = [run_hits(d, probe, k) for d, k in zip(run_dirs, steps, strict=True)]
    if not found or any(f is None for f in found) or any(f[0] != found[0][0] for f in found):  # type: ignore[index]
        return None, None, None
    runs = [f[1] for f in found]  # type: ignore[index]

    def mean_presence(r: int, P: np.ndarray) -> dict[str, float]:
        return {"presence": float(np.nanmean(P[0]))}

    point = float(np.mean([mean_presence(r, run.presence())["presence"] for r, run in enumerate(runs)]))
    low, high = bootstrap(runs, mean_presence, replicates)["presence"][0]
    # the run-level variance correction can carry an endpoint past a presence's range: clip it back
    return point, None if low is None else max(0.0, low), None if high is None else min(1.0, high)


def concept_values(run_dir: Path, probe: str, step: int, field: str) -> dict[str, float] | None:
    """Per probed concept, ``field`` of ``probe``'s record on ``step``; ``auc_gap`` is the relearn
    area minus the retrain oracle's for the same order (``probes.relearn.relative_to_oracle``;
    the oracle is looked for under the run's results root)."""
    record = read_probe(run_dir, probe, step, set_aside=False)
    if record is None:
        return None
    concepts = record["result"].get("concepts", {})
    if field == "auc_gap":
        from culbench.probes.relearn import find_oracle_record, relative_to_oracle

        oracle = find_oracle_record(run_dir, step, [Path(run_dir).parents[3]])
        if oracle is None:
            return None
        concepts = relative_to_oracle(record, oracle)["concepts"]
    values = {c: v.get(field) for c, v in concepts.items()}
    return None if not values or any(v is None for v in values.values()) else values  # type: ignore[return-value]


def probe_scalar(run_dirs: Sequence[Path], steps: Sequence[int], probe: str, field: str,
                 replicates: int = REPLICATES, seed: int = 0) -> tuple[float | None, float | None, float | None]:
    """``(mean, low, high)`` over runs of the mean over probed concepts of a per-concept number,
    with a two-level cluster bootstrap (runs, then concepts within a run: the concept is the
    cluster where the number has no per-prompt hits); all ``None`` unless every run has it."""
    found = [concept_values(d, probe, k, field) for d, k in zip(run_dirs, steps, strict=True)]
    if not found or any(f is None for f in found):
        return None, None, None
    runs = [np.array([f[c] for c in sorted(f)], dtype=float) for f in found]  # type: ignore[index]
    point = float(np.mean([r.mean() for r in runs]))
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(replicates):
        picked = rng.integers(0, len(runs), len(runs))
        draws.append(np.mean([runs[i][rng.integers(0, len(runs[i]), len(runs[i]))].mean() for i in picked]))
    low, high = np.quantile(draws, [0.025, 0.975])
    return point, float(low), float(high)


def _final_records(row: object, probe: str) -> list[dict | None]:
    return [read_probe(Path(src).parent, probe, len(summary["forget_order"]), set_aside=False)
            for src, summary in zip(row.sources, row.summaries, strict=True)]  # type: ignore[attr-defined]


def restoration_curves(row: object) -> tuple[np.ndarray, np.ndarray] | None:
    """The relearn probe's curve points and, per run of the row, its mean presence over the probed
    concepts at each point; ``None`` unless every run has a record with the same points."""
    records = _final_records(row, "relearn")
    if not records or any(r is None for r in records):
        return None
    curves, points = [], None
    for record in records:
        concepts = list(record["result"]["concepts"].values())  # type: ignore[index]
        steps = concepts[0]["steps"]
        if points is not None and steps != points:
            return None
        points = steps
        curves.append(np.mean([c["presence"] for c in concepts], axis=0))
    return np.array(points, dtype=float), np.array(curves, dtype=float)


def concept_lines(rows: Sequence[object]) -> list[str]:
    """A markdown table per row with probe records: per forgotten concept (mean over the row's
    runs, final step), its presence under its own name, under paraphrase, after the soft prompt
    attack, and its relearning area."""
    lines: list[str] = []
    for row in rows:
        found = {p: _final_records(row, p) for p in ("paraphrase", "attack", "relearn")}
        found = {p: r for p, r in found.items() if r and all(x is not None for x in r)}
        if not found:
            continue
        concepts = sorted({c for records in found.values() for r in records for c in r["result"]["concepts"]})
        head = ["concept", "own name", "paraphrase", "attack", "relearn AUC"]
        lines += [f"#### {row.label}: forgotten concepts under the probes (final step, mean over "  # type: ignore[attr-defined]
                  f"{len(row.summaries)} run(s))", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]  # type: ignore[attr-defined]
        for cid in concepts:
            own = found.get("paraphrase") or found.get("attack")  # both record the run's own-name presence
            cells = [_mean(own, cid, "own_presence"), _mean(found.get("paraphrase"), cid, "presence"),
                     _mean(found.get("attack"), cid, "presence"), _mean(found.get("relearn"), cid, "auc")]
            lines.append(f"| {cid} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def _mean(records: list | None, cid: str, field: str) -> str:
    values = [r["result"]["concepts"].get(cid, {}).get(field) for r in records or []]
    values = [v for v in values if v is not None]
    return f"{np.mean(values):.2f}" if values else "—"


def agreement_lines(rows: Sequence[object]) -> list[str]:
    """A markdown table of judge agreement per row: the ``agreement`` probe's image pairs of the
    row's runs (final step) pooled, Cohen's κ over all of them and per concept kind; no lines when
    no row has records."""
    from culbench.evaluation.agreement import agreement_rows

    kinds = ("colour", "pattern", "object", "character")
    lines = []
    for row in rows:
        records = [r for r in _final_records(row, "agreement") if r is not None]
        pairs, runs = [p for r in records for p in r["result"]["pairs"]], len(records)
        if not pairs:
            continue
        found = {r["kind"]: r for r in agreement_rows(pairs)}
        cells = [_kappa(found.get(k)) for k in ("all", *kinds)]
        lines.append(f"| {row.label} | {runs} | {found['all']['n']} | " + " | ".join(cells) + " |")  # type: ignore[attr-defined]
    if not lines:
        return []
    head = ["method", "runs", "images", "κ all", *(f"κ {k}" for k in kinds)]
    return ["### Judge agreement (final step; `culbench probe --probe agreement`)", "",
            "Cohen's κ between the run's judge and tiny-CLIP zero-shot on the same regenerated images "
            "(— : one judge gave a single verdict throughout).", "",
            "| " + " | ".join(head) + " |", "|" + "---|" * len(head), *lines, ""]


def _kappa(row: dict | None) -> str:
    value = None if row is None else row.get("kappa")
    return "—" if value is None or not np.isfinite(value) else f"{value:.2f}"
