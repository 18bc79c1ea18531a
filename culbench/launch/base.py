"""A sweep as jobs for an engine, what a job does where it runs, and how jobs are followed.

A job is one run (a :class:`~culbench.spec.RunSpec`), or one step of a run when the method trains
from scratch (``retrain``: ``RunSpec(steps=(k,))``), so that a run's independent steps run side by
side; the step that completes a run writes its summary. Every job writes into the one results
tree, which all workers must see at the same path (a shared filesystem). Finished runs and
computed steps are not submitted again and an interrupted run resumes from its folder, so
submitting the same sweep again finishes it.

Besides the run folder, a job writes two files under ``<out>/.launch/``: ``<job>.json`` (where it
runs: host, process id, start and end, or its one-line error) and ``<job>.log`` (the run's
progress lines and messages).
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from culbench import runfolder as rf
from culbench.errors import CulbenchError
from culbench.spec import RunSpec

LAUNCH_DIR = ".launch"  # under the results root: each job's status record and log


@dataclass(frozen=True)
class Options:
    """How a sweep's jobs run (``culbench sweep --help``).

    Attributes:
        launcher: ``local``, ``ray`` or ``slurm``.
        cpus, gpus: resources of one job (CPU cores; GPUs, fractions allowed under Ray).
        retries: times the engine re-runs a job whose worker died (Ray) or that timed out (SLURM);
            each re-run resumes the run from its folder.
        step_jobs: each step of a from-scratch method is its own job.
        address: Ray: an existing cluster's address (``auto``, ``HOST:PORT``); ``None``: start a
            cluster on this machine for the sweep.
        partition, time_limit: SLURM: the partition and a job's time limit in minutes (a job that
            reaches it is requeued and resumes).
        cluster: submitit's executor: ``slurm``, or ``local`` (processes on this machine: tests
            and trials without SLURM).
        poll: seconds between looks at the run folders and the engine.
    """

    launcher: str = "local"
    cpus: int = 1
    gpus: float = 0.0
    retries: int = 2
    step_jobs: bool = True
    address: str | None = None
    partition: str | None = None
    time_limit: int = 720
    cluster: str = "slurm"
    poll: float = 2.0


def check_options(options: Options) -> None:
    """Raise a one-line error unless ``options`` ask for resources a job can have."""
    for flag, value, least in (("--cpus-per-job", options.cpus, 1), ("--gpus-per-job", options.gpus, 0),
                               ("--retries", options.retries, 0), ("--time-limit", options.time_limit, 1)):
        if value < least:
            raise CulbenchError(f"bad {flag} {value}", f"give {flag} a number of at least {least}")


@dataclass(frozen=True)
class Job:
    """One unit of work: ``spec`` (a whole run, or one step of it) and the run folder it fills.

    Attributes:
        spec: what the job runs (``out`` and a sequence file path made absolute).
        run_dir: the run's folder; out: the results root.
        steps_total: the run's number of requests (its steps are 0 .. steps_total).
    """

    spec: RunSpec
    run_dir: Path
    out: Path
    steps_total: int

    @property
    def step(self) -> int | None:
        """The one step this job computes, or ``None`` for the whole run."""
        return self.spec.steps[0] if self.spec.steps else None

    @property
    def name(self) -> str:
        """A file name for the job: its run's path under the results root, and its step."""
        run = ".".join(self.run_dir.relative_to(self.out).parts).replace("@", "-")
        return run if self.step is None else f"{run}.step{self.step:02d}"

    @property
    def label(self) -> str:
        """How the progress view names the job, e.g. ``dfr seed 1 lr=1e-4`` or ``retrain seed 0 step 3``."""
        words = [rf.variant_label(self.spec.method, self.spec.mode), f"seed {self.spec.seed}"]
        words += [o.partition(".")[2] for o in self.spec.overrides]
        return " ".join(words + ([f"step {self.step}"] if self.step is not None else []))

    @property
    def status_path(self) -> Path:
        return self.out / LAUNCH_DIR / f"{self.name}.json"

    @property
    def log_path(self) -> Path:
        return self.out / LAUNCH_DIR / f"{self.name}.log"


def run_command(spec: RunSpec, with_sequence: bool = True) -> list[str]:
    """The ``culbench run`` command line of ``spec`` (``--sequence`` left out unless asked for)."""
    args = ["culbench", "run", "--method", spec.method, "--seed", str(spec.seed), "--profile", spec.profile,
            "--out", str(spec.out), "--device", spec.device] + (["--sequence", spec.sequence] if with_sequence else [])
    args += [a for item in spec.overrides for a in ("--set", item)]
    options = dict(spec.model_options)
    args += ["--model", str(options.pop("model"))] if "model" in options else []
    args += [a for key, value in options.items() for a in ("--model-option", f"{key}={value}")]
    args += ["--split", spec.split] if spec.split != "eval" else []
    args += ["--mode", spec.mode] if spec.mode != "sequential" else []
    args += ["--threads", str(spec.threads)] if spec.threads else []
    return args + [a for k in spec.steps or () for a in ("--step", str(k))]


def portable(spec: RunSpec) -> RunSpec:
    """``spec`` with its results root, and a sequence given as a file, as absolute paths: a
    worker may start in another folder."""
    sequence = spec.sequence
    if sequence.endswith((".yaml", ".yml")) or Path(sequence).is_dir():
        sequence = str(Path(sequence).absolute())
    return dataclasses.replace(spec, out=Path(spec.out).absolute(), sequence=sequence)


def plan(specs: list[RunSpec], step_jobs: bool) -> list[Job]:
    """The jobs a sweep still needs: none for a complete run; for a from-scratch method (with
    ``step_jobs``) one per step not yet computed; else one per run."""
    jobs: list[Job] = []
    for spec in map(portable, specs):
        resolved = spec.resolve()
        run_dir, total = resolved.run_dir, len(resolved.seq.steps)
        if is_complete(run_dir) or any(job.run_dir == run_dir for job in jobs):  # done, or asked for twice
            continue
        steps = [k for k in range(total + 1) if not rf.computed(run_dir, k)]
        if step_jobs and resolved.method_cls.from_scratch and steps:
            jobs += [Job(dataclasses.replace(spec, steps=(k,)), run_dir, resolved.out, total) for k in steps]
        else:  # a whole run (or one whose steps are all computed: the job brings its summary up to date)
            jobs.append(Job(spec, run_dir, resolved.out, total))
    return jobs


def is_complete(run_dir: Path) -> bool:
    """The run in ``run_dir`` has committed every step and has its summary."""
    try:
        return (rf.read_json(run_dir / rf.MANIFEST).get("status") == "complete"
                and (run_dir / rf.SUMMARY).is_file())
    except CulbenchError:  # none yet, or unreadable: the job says why
        return False


def run_job(job: Job) -> dict[str, Any]:
    """Run ``job`` where the engine put it, and return ``{"run_dir": ...}`` or ``{"error": one line}``.

    Records where it runs in ``job.status_path`` (and, at the end, its end time or its error) and
    writes the run's progress lines and messages to ``job.log_path``.
    """
    from culbench.cli.progress import LineProgress, interval_from_env
    from culbench.runner import Hooks, run_spec

    job.status_path.parent.mkdir(parents=True, exist_ok=True)
    status = {"job": job.label, "host": socket.gethostname(), "pid": os.getpid(), "started": time.time(),
              "command": run_command(job.spec)}
    rf.write_json(job.status_path, status)
    with job.log_path.open("a", encoding="utf-8") as log:

        def write(line: str) -> None:
            log.write(line + "\n")
            log.flush()

        write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {job.label} on {status['host']} (pid {os.getpid()})")
        try:
            hooks = Hooks(LineProgress(write, interval_from_env()).add, write, lambda m: write(f"warning: {m}"),
                          status["command"])
            run_spec(job.spec, hooks)
            result: dict[str, Any] = {"run_dir": str(job.run_dir)}
        except CulbenchError as exc:
            result = {"error": exc.one_line()}
        except Exception as exc:  # noqa: BLE001 - a culbench bug: one line here, the traceback in the log
            write(traceback.format_exc())
            result = {"error": f"internal error: {type(exc).__name__}: {exc}; fix: please report it with the "
                               f"traceback in {job.log_path}"}
        write(f"error: {result['error']}" if "error" in result else "done")
    rf.write_json(job.status_path, {**status, "ended": time.time(), **result})
    return result


def read_status(job: Job) -> dict[str, Any] | None:
    """What ``job`` recorded of its latest start (``run_job``), or ``None`` before it starts."""
    try:
        return rf.read_json(job.status_path)
    except CulbenchError:
        return None


def clear_status(jobs: list[Job]) -> None:
    """Forget what earlier submissions of ``jobs`` recorded, before submitting them again."""
    for job in jobs:
        job.status_path.unlink(missing_ok=True)


def import_engine(module: str, launcher: str) -> Any:
    """Import an engine's package, or raise a one-line error naming the extra that installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise CulbenchError(f"--launcher {launcher} needs the '{module}' package, which is not installed",
                            f"pip install 'culbench[{launcher}]'") from None


def first_line(exc: BaseException) -> str:
    """An engine's exception as one line: its type and the first line of its message."""
    text = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__



class Engine:
    """Where jobs run: :meth:`submit` them, then :meth:`poll` until every one has ended."""

    def submit(self, jobs: list[Job]) -> list[str]:
        """Start ``jobs``; one line per job saying where its log is."""
        raise NotImplementedError

    def poll(self) -> dict[int, dict[str, Any]]:
        """The results (``run_job``'s) of the jobs that ended since the last poll, by index."""
        raise NotImplementedError

    def close(self, cancel: bool) -> None:
        """Let go of the engine; ``cancel``: stop the jobs still running (an interrupted sweep)."""
