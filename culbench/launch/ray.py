"""The ``ray`` launcher: every job a Ray task with the resources of ``--cpus-per-job`` and
``--gpus-per-job`` (fractions share a GPU), on a cluster started on this machine for the sweep or on
an existing one (``--address``). Every worker must see the results root at the same path and run
the same culbench (a shared filesystem and environment)."""

from __future__ import annotations

import logging
from typing import Any

from culbench.launch.base import Engine, Job, Options, first_line, import_engine, run_job


class RayEngine(Engine):
    """Jobs as Ray tasks; a task whose worker dies is run again ``options.retries`` times (it
    resumes its run). A cluster this engine started is shut down by :meth:`close`."""

    def __init__(self, options: Options) -> None:
        self.ray = import_engine("ray", "ray")
        self.options = options
        self.refs: dict[Any, int] = {}
        self.started = not self.ray.is_initialized()
        if self.started:
            extra = {} if options.address else {"include_dashboard": False}
            self.ray.init(address=options.address or "local", log_to_driver=False, logging_level=logging.WARNING,
                          **extra)

    def submit(self, jobs: list[Job]) -> list[str]:
        task = self.ray.remote(run_job)
        for index, job in enumerate(jobs):
            ref = task.options(name=job.label, num_cpus=self.options.cpus, num_gpus=self.options.gpus,
                               max_retries=self.options.retries, retry_exceptions=False).remote(job)
            self.refs[ref] = index
        where = self.options.address or "a Ray cluster on this machine"
        return [f"{len(jobs)} jobs on {where}; each job's log: {jobs[0].log_path.parent}/<job>.log"]

    def poll(self) -> dict[int, dict[str, Any]]:
        if not self.refs:
            return {}
        ready, _ = self.ray.wait(list(self.refs), num_returns=len(self.refs), timeout=0)
        results = {}
        for ref in ready:
            index = self.refs.pop(ref)
            try:
                results[index] = self.ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - the worker died, or Ray failed: one line
                results[index] = {"error": f"ray: {first_line(exc)}"}
        return results

    def close(self, cancel: bool) -> None:
        if cancel:
            for ref in self.refs:
                self.ray.cancel(ref, force=True)
        if self.started:
            self.ray.shutdown()
