"""Wall time and peak memory of a block of work (per step, recorded by the runner)."""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import Any


class Meter:
    """Measure wall seconds, peak process RSS (polled) and peak CUDA memory of a block.

    RSS is sampled every ``interval`` seconds by a daemon thread, so very short spikes can
    be missed; CUDA peaks come from ``torch.cuda.max_memory_allocated``.
    """

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.seconds = 0.0
        self.peak_rss_mb = 0.0
        self.peak_cuda_mb: float | None = None
        self._start: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _poll(self) -> None:
        import psutil

        process = psutil.Process()
        while not self._stop.is_set():
            self.peak_rss_mb = max(self.peak_rss_mb, process.memory_info().rss / 2**20)
            self._stop.wait(self.interval)

    def __enter__(self) -> Meter:
        import torch

        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        self._start = time.perf_counter()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        import torch

        self.seconds = time.perf_counter() - self._start
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if torch.cuda.is_available():
            self.peak_cuda_mb = torch.cuda.max_memory_allocated() / 2**20

    def elapsed(self) -> float:
        """Seconds since the block was entered (0 before)."""
        return 0.0 if self._start is None else time.perf_counter() - self._start

    def to_dict(self) -> dict[str, Any]:
        return {
            "seconds": round(self.seconds, 4),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "peak_cuda_mb": None if self.peak_cuda_mb is None else round(self.peak_cuda_mb, 1),
        }


def check_device(device: str) -> None:
    """Raise a one-line error unless ``device`` names a device torch can use here."""
    import torch

    from culbench.errors import CulbenchError

    fix = "use cpu, cuda or cuda:N (`culbench doctor` lists the GPUs)"
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise CulbenchError(f"unknown device '{device}'", fix) from None
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if not count:
            raise CulbenchError(f"device {device} requested but no CUDA GPU is visible",
                                "use --device cpu, or run on a GPU machine")
        if parsed.index is not None and parsed.index >= count:
            raise CulbenchError(f"device {device} requested but {count} GPU(s) are visible",
                                f"use cuda:0 to cuda:{count - 1}")
    elif parsed.type == "mps":
        if not torch.backends.mps.is_available():
            raise CulbenchError(f"device {device} requested but MPS is not available", "pass --device cpu")
    elif parsed.type != "cpu":
        raise CulbenchError(f"device type '{parsed.type}' is not supported", fix)
