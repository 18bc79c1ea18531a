"""Run probes on checkpoints of a run, resumably: a probe whose record on a step matches its
fingerprint is not run again; every record is written atomically when its probe finishes."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from culbench import runfolder as rf
from culbench.errors import RunError


def _silent(total: int, description: str) -> Callable[..., None]:
    return lambda n=1: None


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, ±inf) replaced by ``None``, as JSON allows.

    >>> json_safe({"kappa": float("nan"), "rows": [1.0, float("inf")]})
    {'kappa': None, 'rows': [1.0, None]}
    """
    import math

    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def load_target(run_dir: Path, step: int | None, device: str = "cpu",
                judge_options: dict[str, Any] | None = None) -> Any:
    """The ``ProbeTarget`` of ``step`` (default: the last) of the run in ``run_dir``; refuses a
    run whose sequence files changed since, and a step the run has not committed (a step of a
    from-scratch method computed alone with ``--step`` is committed, even ahead of a gap)."""
    from culbench.probes.base import ProbeTarget
    from culbench.tasks import resolve_sequence

    run_dir = Path(run_dir)
    if not (run_dir / rf.MANIFEST).is_file():
        raise RunError(f"{run_dir} is not a run folder (no {rf.MANIFEST})",
                       "pass a run folder: <out>/<sequence@v>/<method>/<profile>/seed<n>")
    manifest = rf.read_manifest(run_dir)
    identity = manifest["identity"]
    seq = resolve_sequence(identity["sequence"]["id"])
    if seq.content_hash != identity["sequence"]["content_hash"]:
        raise RunError(f"{run_dir} was run on another copy of {seq.id} (its files changed since)",
                       "probe it with the culbench release that made it")
    if identity.get("order"):
        seq = seq.in_order(identity["order"])
    step = manifest["steps_total"] if step is None else step
    if not rf.computed(run_dir, step):  # committed; a from-scratch step computed alone (--step) counts
        done = [k for k in range(manifest["steps_total"] + 1) if rf.computed(run_dir, k)]
        raise RunError(f"{run_dir}: step {step} is not committed",
                       f"finish the run first (`culbench run` resumes it), or pick one of {done or 'none'}")
    return ProbeTarget(run_dir, manifest, seq, step, device=device, judge_options=dict(judge_options or {}))


def fingerprint(probe: Any, target: Any) -> dict[str, Any]:
    from culbench.config import config_to_dict

    record = rf.read_step(target.run_dir, target.step)
    return {"probe": probe.name, "version": probe.version, "config": config_to_dict(probe.config),
            "model_sha256": record["model_sha256"], "judge": target.judge_fingerprint(),
            "data": probe.data_fingerprint(target)}


def build_probe(name: str, overrides: Sequence[str] = ()) -> Any:
    """Probe ``name`` with ``--set NAME.key=value`` overrides for it (others are ignored)."""
    from culbench.catalog import PROBES
    from culbench.config import build_config, parse_overrides

    cls = PROBES.get(name)
    mine = [o for o in overrides if o.split(".", 1)[0] == name]
    return cls(build_config(cls.Config, name, parse_overrides(mine, name)))


def run_probes(run_dir: Path, names: Sequence[str], steps: Sequence[int | None] = (None,), *,
               overrides: Sequence[str] = (), device: str = "cpu", judge_options: dict[str, Any] | None = None,
               progress: Callable[[int, str], Callable[..., None]] = _silent,
               log: Callable[[str], None] = lambda m: None, applicable_only: bool = False) -> list[dict[str, Any]]:
    """Each probe in ``names`` on each step of ``steps`` (``None``: the last); returns the records.
    ``applicable_only``: skip, with a log line, probes that do not run on the run's model backend
    (named ones that cannot run fail with their own one-line error)."""
    probes = [build_probe(name, overrides) for name in names]  # every name and key checked first
    records = []
    for step in steps:
        target = load_target(run_dir, step, device, judge_options)
        backend = target.identity["model"]["backend"]
        for probe in probes:
            if applicable_only and probe.backends and backend not in probe.backends:
                log(f"{probe.name}: skipped (runs on {', '.join(probe.backends)}; this run is on {backend})")
                continue
            wanted = fingerprint(probe, target)
            found = rf.read_probe(target.run_dir, probe.name, target.step)
            if found is not None and found["fingerprint"] == wanted:
                log(f"{probe.name} on step {target.step}: already recorded")
                records.append(found)
                continue
            start = time.perf_counter()
            result = json_safe(probe.run(target, progress))
            record = {"fingerprint": wanted, "result": result, "step": target.step,
                      "seconds": round(time.perf_counter() - start, 2)}
            rf.write_probe(target.run_dir, probe.name, target.step, record)
            log(f"{probe.name} on step {target.step}: {result.get('summary', {})}")
            records.append(record)
    return records
