"""The ``slurm`` launcher: the jobs as one SLURM job array through submitit, each with
``--cpus-per-job`` cores and ``--gpus-per-job`` GPUs. A job that is preempted or reaches its time
limit is requeued (submitit's checkpointing) and resumes its run from the run folder. Every node
must see the results root at the same path and run the same Python environment (a shared
filesystem). ``--slurm-cluster local`` runs the jobs as processes on this machine instead (submitit's
``LocalExecutor``): trials and tests without SLURM."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from culbench.errors import CulbenchError
from culbench.launch.base import Engine, Job, Options, first_line, import_engine, run_job

CLUSTERS = ("slurm", "local")


class Resumable:
    """What each SLURM job calls: :func:`run_job`. On preemption or time-out submitit calls
    :meth:`checkpoint`, which requeues the same job; it resumes its run from the run folder."""

    def __call__(self, job: Job) -> dict[str, Any]:
        return run_job(job)

    def checkpoint(self, job: Job) -> Any:
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, job)


class SlurmEngine(Engine):
    """The jobs as a submitit job array; logs and submitit's files under ``folder``."""

    def __init__(self, options: Options, folder: Path) -> None:
        submitit = import_engine("submitit", "slurm")
        if options.cluster not in CLUSTERS:
            raise CulbenchError(f"unknown --slurm-cluster '{options.cluster}'", f"use one of: {', '.join(CLUSTERS)}")
        if options.gpus != int(options.gpus):
            raise CulbenchError(f"--gpus-per-job {options.gpus}: SLURM gives whole GPUs",
                                "give a whole number, or use --launcher ray to share a GPU between jobs")
        self.executor = submitit.AutoExecutor(folder=folder, cluster=options.cluster,
                                              **{f"{options.cluster}_max_num_timeout": options.retries})
        parameters: dict[str, Any] = {"name": "culbench", "nodes": 1, "tasks_per_node": 1,
                                      "cpus_per_task": options.cpus, "gpus_per_node": int(options.gpus),
                                      "timeout_min": options.time_limit}
        if options.partition:
            parameters["slurm_partition"] = options.partition
        self.executor.update_parameters(**parameters)
        self.jobs: dict[int, Any] = {}

    def submit(self, jobs: list[Job]) -> list[str]:
        submitted = self.executor.map_array(Resumable(), jobs)
        self.jobs = dict(enumerate(submitted))
        return [f"{job.label}: job {handle.job_id}, log {handle.paths.stdout}"
                for job, handle in zip(jobs, submitted, strict=True)]

    def poll(self) -> dict[int, dict[str, Any]]:
        results = {}
        for index, handle in list(self.jobs.items()):
            if not handle.done():
                continue
            del self.jobs[index]
            try:
                results[index] = handle.result()
            except Exception as exc:  # noqa: BLE001 - killed, cancelled, or the node failed: one line
                results[index] = {"error": f"slurm job {handle.job_id}: {first_line(exc)}"}
        return results

    def close(self, cancel: bool) -> None:
        if cancel:
            for handle in self.jobs.values():
                handle.cancel(check=False)
