"""Mid-step snapshots: a long step (retrain: ~1 h on CPU) saves its progress so that a run killed
mid-step resumes from it, with the seconds already spent carried into the step's compute."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

from culbench.runfolder.atomic import write_bytes
from culbench.runfolder.layout import snapshot_path


class StepSnapshots:
    """``save`` / ``load`` of one step's mid-step snapshot (``StepContext.save_snapshot`` /
    ``load_snapshot``), keyed by the weights the step starts from. A snapshot also carries the
    seconds the step had run when it was saved, so a resumed step reports the compute of the
    whole request (``carried``: the part earlier processes spent), not just the last process's."""

    def __init__(self, run_dir: Path, step: int, input_sha: str, log: Callable[[str], None],
                 warn: Callable[[str], None], elapsed: Callable[[], float]) -> None:
        self.path = snapshot_path(run_dir, step)
        self.step, self.input_sha, self.log, self.warn, self.elapsed = step, input_sha, log, warn, elapsed
        self.carried = 0.0

    def save(self, payload: Any) -> None:
        import torch

        buffer = io.BytesIO()
        torch.save({"step": self.step, "input_sha256": self.input_sha, "payload": payload,
                    "seconds": self.carried + self.elapsed()}, buffer)
        self.path.parent.mkdir(exist_ok=True)
        write_bytes(self.path, buffer.getvalue())

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
