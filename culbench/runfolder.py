"""A run folder's bookkeeping for the runner: the lock that lets several processes share one
run (``culbench run --step``), counting a committed step in the manifest, and mid-step snapshots."""

from __future__ import annotations

import contextlib
import fcntl
import io
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from culbench import provenance, results
from culbench.errors import CulbenchError, RunError


def check_steps_alone(method: str, cls: Any, steps: list[int], n_steps: int) -> None:
    """Raise a one-line error unless ``steps`` may be computed alone for this method."""
    if not getattr(cls, "from_scratch", False):
        raise CulbenchError(f"--step needs a method that trains from scratch; '{method}' edits the previous "
                            "step's model, so its steps must run in order", "run the whole sequence without --step")
    wrong = [k for k in steps if not 0 <= k <= n_steps]
    if wrong or not steps:
        raise CulbenchError(f"--step {wrong[0] if wrong else '(none)'} is not a step of this sequence",
                            f"give steps from 0 (the base model) to {n_steps}")


def computed(run_dir: Path, step: int) -> bool:
    return (results.step_dir(run_dir, step) / "step.json").is_file()


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """An exclusive lock on ``folder`` (``.lock`` inside it) for the duration of the block."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def record_step(run_dir: Path, step: int, compute: dict[str, Any] | None, order: list[str], device: str) -> None:
    """Count a committed step in the manifest (read again under the lock: `--step` processes share
    it): its compute (naming the device when it is not the run's: a step computed elsewhere), the
    contiguous steps now committed, ``matrix.csv`` and, once all of ``order``'s are,
    ``summary.json``."""
    path = run_dir / "manifest.json"
    with locked(run_dir):
        manifest = results.read_json(path)
        if compute is not None:
            if device != manifest.get("device"):
                compute = {part: {**meter, "device": meter.get("device", device)} for part, meter in compute.items()}
            manifest.setdefault("compute", {})[str(step)] = compute
        done = results.committed_steps(run_dir)
        complete = bool(done) and done[-1] == len(order)
        manifest.update(steps_committed=done, updated=provenance.now(), status="complete" if complete else "partial")
        results.write_text(run_dir / "matrix.csv", results.matrix_csv(run_dir, done))
        if complete:
            results.write_json(run_dir / "summary.json", results.build_summary(run_dir, manifest, order))
        results.write_json(path, manifest)


class StepSnapshots:
    """``save`` / ``load`` of one step's mid-step snapshot (``StepContext.save_snapshot`` /
    ``load_snapshot``), keyed by the weights the step starts from. A snapshot also carries the
    seconds the step had run when it was saved, so a resumed step reports the compute of the
    whole request (``carried``: the part earlier processes spent), not just the last process's."""

    def __init__(self, run_dir: Path, step: int, input_sha: str, log: Callable[[str], None],
                 warn: Callable[[str], None], elapsed: Callable[[], float]) -> None:
        self.path = results.snapshot_path(run_dir, step)
        self.step, self.input_sha, self.log, self.warn, self.elapsed = step, input_sha, log, warn, elapsed
        self.carried = 0.0

    def save(self, payload: Any) -> None:
        import torch

        buffer = io.BytesIO()
        torch.save({"step": self.step, "input_sha256": self.input_sha, "payload": payload,
                    "seconds": self.carried + self.elapsed()}, buffer)
        self.path.parent.mkdir(exist_ok=True)
        results.write_bytes(self.path, buffer.getvalue())

    def load(self) -> Any:
        import torch

        step, path = self.step, self.path
        if not path.is_file():
            return None
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable snapshot: start the step over
            self.warn(f"step {step}: snapshot {path} is unreadable ({type(exc).__name__}); starting the step over")
            return None
        if saved.get("step") != step or saved.get("input_sha256") != self.input_sha:
            self.warn(f"step {step}: snapshot {path} was saved from other weights; starting the step over")
            return None
        self.log(f"step {step}: resuming from its snapshot")
        self.carried = float(saved.get("seconds", 0.0))
        return saved["payload"]


def merge_steps(src: Path, dst: Path) -> list[int]:
    """Copy into run ``dst`` the committed steps of ``src`` that it lacks and return them: the same
    run (identity) computed partly elsewhere, e.g. ``--step`` jobs on a GPU machine. Their compute
    keeps naming the device they ran on; ``dst`` then counts them as ``--step`` processes do. A
    missing ``dst`` is made a copy of ``src`` (records and step files, no snapshots)."""
    from culbench.tasks import resolve_sequence

    theirs = results.read_json(src / "manifest.json")
    steps = sorted(int(p.parent.name) for p in (src / "steps").glob("[0-9]*/step.json"))
    broken = results.first_damaged_step(src, steps, (results.WEIGHTS,))
    if broken is not None:
        raise RunError(f"{src}: step {broken[0]}: {broken[1]}", "copy that run again from where it was computed")
    if not (dst / "manifest.json").exists():
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns(results.SNAPSHOTS, ".lock", ".*.tmp"))
        return steps
    with locked(dst):
        ours = results.read_json(dst / "manifest.json")
        if ours.get("identity") != theirs.get("identity"):
            raise RunError(f"{src} and {dst} are different runs (method, config, seed, sequence or evaluators)",
                           "merge only copies of one run")
        new = [k for k in steps if not computed(dst, k)]
        for k in new:
            tmp = results.step_dir(dst, k).with_name(f".merge-{k:02d}")
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(results.step_dir(src, k), tmp)
            tmp.rename(results.step_dir(dst, k))
    order = list(resolve_sequence(theirs["identity"]["sequence"]["id"]).steps)
    for k in new:
        record_step(dst, k, theirs.get("compute", {}).get(str(k), {}), order, theirs.get("device", "cpu"))
    return new

