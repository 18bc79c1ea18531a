"""``culbench sweep``: many methods × settings × seeds, resumable, then a table."""

from __future__ import annotations

import dataclasses
import itertools
import json
import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from culbench.cli.console import console, err_console
from culbench.spec import DEFAULT_OUT, DEFAULT_PROFILE

EXAMPLES = """Examples:

  culbench sweep --methods original,dfr,esd,uce --seeds 0,1,2              # local, one run after another

  culbench sweep --methods dfr,esd --modes independent,simultaneous       # reference rows

  culbench sweep --methods leaderboard --seeds 0,1,2 --launcher ray --cpus-per-job 2   # Ray tasks, this machine

  culbench sweep --sequence dfr10-sd15 --methods dfr,esd,uce --seeds 0,1,2 --device cuda \\
      --launcher slurm --partition gpu --time-limit 240                    # a SLURM job array, a GPU each

  culbench sweep --methods leaderboard --seeds 0,1,2 --print-commands > runs.txt    # or fan out by hand:
  parallel -j 4 < runs.txt                                                  #   GNU parallel, or a SLURM array

  culbench sweep --methods leaderboard --seeds 0,1,2 --out leaderboard/results   # the published board's runs

  culbench sweep --board leaderboard/boards/toy10@2.yaml --out leaderboard/results   # a whole board, probes too

  culbench sweep --methods dfr --seeds 0 --split val --out tuning \\         # choose hyper-parameters
      --grid dfr.lr=5e-5,1e-4,2e-4 --grid dfr.iterations=40,80              #   on the validation prompts
"""


def expand_grid(methods: list[str], sets: list[str], grids: list[str]) -> list[tuple[str, tuple[str, ...]]]:
    """``(method, overrides)`` for every method × the cartesian product of its ``--grid`` values.

    ``--set``/``--grid`` items name their method (``dfr.lr=...``) and apply to that method only.

    >>> expand_grid(["dfr", "esd"], ["dfr.batch_size=16"], ["dfr.lr=1e-4,2e-4"])
    [('dfr', ('dfr.batch_size=16', 'dfr.lr=1e-4')), ('dfr', ('dfr.batch_size=16', 'dfr.lr=2e-4')), ('esd', ())]
    """
    from culbench.errors import ConfigError

    for item in [*sets, *grids]:
        prefix = item.partition("=")[0].partition(".")[0].strip()
        if prefix not in methods:
            raise ConfigError(f"'{item}' is for method '{prefix}', which is not in --methods",
                              f"add {prefix} to --methods or write METHOD.FIELD=VALUE for one of {', '.join(methods)}")
    plan = []
    for method in methods:
        fixed = tuple(s for s in sets if s.startswith(f"{method}."))
        axes = []
        for item in (g for g in grids if g.startswith(f"{method}.")):
            key, _, values = item.partition("=")
            axes.append([f"{key}={v.strip()}" for v in values.split(",") if v.strip()])
        for combo in itertools.product(*axes):
            plan.append((method, fixed + tuple(combo)))
    return plan


def sweep(
    methods: Annotated[str, typer.Option(help="Comma-separated methods; 'leaderboard' (the published board's built-ins: all but retrain) or 'all' (every registered method, retrain's ~1 h per request included).")] = "",
    board: Annotated[Path | None, typer.Option(
        help="A board spec (leaderboard/boards/*.yaml): its rows, modes, seeds, tuned settings and probes instead "
             "of --methods/--seeds/--sequence/--profile/--modes; the probes run on every final checkpoint.")] = None,
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds.")] = "0,1,2",
    sequence: Annotated[str, typer.Option(help="Sequence (default: toy10).")] = "",
    profile: Annotated[str, typer.Option(help="smoke | standard | standard-6x6 | full (culbench ls profiles).")] = DEFAULT_PROFILE,
    out: Annotated[Path, typer.Option(help="Results root, as culbench run's; the published board's runs go to --out leaderboard/results.")] = DEFAULT_OUT,
    device: Annotated[str, typer.Option(help="torch device.")] = "cpu",
    model: Annotated[str | None, typer.Option(
        help="Model weights for backends that take them (the sd sequences): an SD folder or cached hub id.")] = None,
    model_option: Annotated[list[str] | None, typer.Option(
        help="Backend option KEY=VALUE for every run (repeatable), e.g. dtype=bfloat16.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Config override METHOD.FIELD=VALUE for every run of METHOD (repeatable).")] = None,
    grid: Annotated[list[str] | None, typer.Option(help="METHOD.FIELD=V1,V2,...: one run per value, crossed with the other --grid options (repeatable).")] = None,
    split: Annotated[str, typer.Option(help="eval (the benchmark) | val (tuning: validation prompts, never ranked).")] = "eval",
    modes: Annotated[str, typer.Option(help="Comma-separated: sequential (the benchmark), independent, simultaneous, merged-uniform, merged-ta, merged-ties (reference rows).")] = "sequential",
    threads: Annotated[int | None, typer.Option(help="torch CPU threads (default: all cores).")] = None,
    print_commands: Annotated[bool, typer.Option(help="Print one `culbench run` command per run instead of running.")] = False,
    table: Annotated[Path | None, typer.Option(help="Also write the Markdown leaderboard here when done (eval split).")] = None,
    launcher: Annotated[str, typer.Option(
        help="local (this process, one run after another) | ray (Ray tasks) | slurm (a SLURM job array through "
             "submitit); ray and slurm need a filesystem every worker shares (docs/launchers.md).")] = "local",
    cpus_per_job: Annotated[int, typer.Option(
        help="ray, slurm: CPU cores per job (also its torch threads, unless --threads).")] = 1,
    gpus_per_job: Annotated[float | None, typer.Option(
        help="ray, slurm: GPUs per job (default: 1 with --device cuda, else 0); Ray takes fractions "
             "(0.25: four jobs share a GPU).")] = None,
    retries: Annotated[int, typer.Option(
        help="ray: re-runs of a job whose worker died; slurm: requeues of a job that reached --time-limit "
             "(each resumes its run).")] = 2,
    step_jobs: Annotated[bool, typer.Option(
        help="ray, slurm: each step of a from-scratch method (retrain) is its own job, so a run's steps run "
             "side by side.")] = True,
    address: Annotated[str | None, typer.Option(
        help="ray: an existing cluster (auto or HOST:PORT); default: a cluster started on this machine for "
             "the sweep.")] = None,
    partition: Annotated[str | None, typer.Option(help="slurm: the partition.")] = None,
    time_limit: Annotated[int, typer.Option(
        help="slurm: minutes per job; a job that reaches it (or is preempted) is requeued and resumes.")] = 720,
    slurm_cluster: Annotated[str, typer.Option(
        help="slurm: slurm, or local: the jobs as processes on this machine (submitit's LocalExecutor: trials "
             "and tests without SLURM).")] = "slurm",
) -> None:
    """Run every method × setting × seed (completed runs are skipped, interrupted ones resume),
    then print a table with one row per setting. `--launcher ray` or `slurm` runs them side by side
    as jobs, with one live view of every job; `--print-commands` hands them to another engine."""
    from culbench.cli.run import _model_options
    from culbench.launch import Options
    from culbench.launch.base import run_command
    from culbench.runner import DEFAULT_SEQUENCE, RunSpec

    probes: list[tuple[Any, str]] = []
    if board is not None:
        specs, probes = _board(board, out, device, threads)
    else:
        names, seed_list = _methods_and_seeds(methods, seeds)
        settings = expand_grid(names, list(set_ or []), list(grid or []))
        common = {"sequence": sequence or DEFAULT_SEQUENCE, "profile": profile, "out": out, "device": device,
                  "threads": threads, "split": split, "model_options": _model_options(model, model_option)}
        specs = [RunSpec(m, seed=s, overrides=o, mode=mode, **common)
                 for m, o in settings for mode in _list(modes) for s in seed_list]
    for spec in specs:
        spec.resolve()  # every option of every run is checked before anything runs
    if print_commands:
        for spec in specs:
            console.print(shlex.join(run_command(spec, bool(sequence))), highlight=False, markup=False, soft_wrap=True)
        return
    gpus = float(device.startswith("cuda")) if gpus_per_job is None else gpus_per_job
    options = Options(launcher, cpus=cpus_per_job, gpus=gpus, retries=retries, step_jobs=step_jobs,
                      address=address, partition=partition, time_limit=time_limit, cluster=slurm_cluster)
    for line in settings_table(_run_all(specs, options)):
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    _run_probes(probes, device)
    if table is not None and split == "eval":
        _write_table(table, out)


def _write_table(table: Path, out: Path) -> None:
    """The Markdown leaderboard of results root ``out``, written to ``table``."""
    from culbench.leaderboard import build, render

    table.parent.mkdir(parents=True, exist_ok=True)
    table.write_text(render(build([out]), "md"), encoding="utf-8")
    console.print(f"wrote {table}", highlight=False)


def _list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _board(path: Path, out: Path, device: str, threads: int | None) -> tuple[list[Any], list[tuple[Any, str]]]:
    """A board spec's runs and probe jobs; its methods run untuned only with a warning."""
    from culbench.board import board_jobs, load_board

    jobs = board_jobs(load_board(path), path.parent, out=out, device=device, threads=threads)
    if jobs.untuned:
        err_console.print(f"warning: no tuning pick for {', '.join(jobs.untuned)} in the board's tuning index: "
                          "their runs use the defaults", highlight=False)
    return jobs.runs, jobs.probes


def _run_probes(probes: list[tuple[Any, str]], device: str) -> None:
    """The board's probes on each run's final step, here, a run at a time (its checkpoint loaded
    once for all of its probes; recorded ones are skipped)."""
    from culbench.cli.progress import open_progress
    from culbench.probes.runner import run_probes

    by_run: dict[Path, list[str]] = {}
    for spec, name in probes:
        by_run.setdefault(spec.resolve().run_dir, []).append(name)
    for i, (run_dir, names) in enumerate(by_run.items(), 1):
        err_console.print(f"[{i}/{len(by_run)}] probes {', '.join(names)} on {run_dir}", highlight=False, markup=False)
        with open_progress(err_console) as (progress, log):
            run_probes(run_dir, names, device=device, progress=progress, log=log, applicable_only=True)


def _methods_and_seeds(methods: str, seeds: str) -> tuple[list[str], list[int]]:
    """``--methods`` (``all``, ``leaderboard`` or a list) and ``--seeds`` as lists."""
    from culbench.catalog import METHODS
    from culbench.errors import CulbenchError
    from culbench.leaderboard.publish import published_methods

    names = (METHODS.names() if methods == "all" else published_methods() if methods == "leaderboard"
             else [m.strip() for m in methods.split(",") if m.strip()])
    if not names:
        raise CulbenchError("no methods to run", "give --methods (e.g. --methods dfr,esd) or --board SPEC")
    try:
        return names, [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise CulbenchError(f"bad --seeds '{seeds}'", "use comma-separated integers, e.g. 0,1,2") from None


def _run_all(specs: list[Any], options: Any) -> dict[tuple[str, tuple[str, ...]], list[Path]]:
    """Run ``specs`` through ``options.launcher``; their run folders by (method label, overrides).
    A launcher's job gets ``--cpus-per-job`` torch threads unless ``--threads`` was given."""
    from culbench.runfolder import variant_label

    if options.launcher == "local":
        from culbench.launch.local import run_local

        run_dirs = run_local(specs, err_console)
    else:
        from culbench.launch import launch

        jobs = [dataclasses.replace(spec, threads=spec.threads or options.cpus) for spec in specs]
        launch(jobs, options, err_console, rerun=shlex.join(["culbench", *sys.argv[1:]]))
        run_dirs = [spec.resolve().run_dir for spec in specs]
    dirs: dict[tuple[str, tuple[str, ...]], list[Path]] = {}
    for spec, run_dir in zip(specs, run_dirs, strict=True):
        dirs.setdefault((variant_label(spec.method, spec.mode), spec.overrides), []).append(run_dir)
    return dirs


TABLE_KEYS = (("headline_h", "H"), ("ua_cumulative", "UA cum"), ("retention_related", "Ret near"),
              ("retention_general", "Ret far"), ("fid_retained_vs_base", "FID vs base"),
              ("unlearn_seconds_median", "s/request"))


def settings_table(dirs: dict[tuple[str, tuple[str, ...]], list[Path]]) -> list[str]:
    """Markdown rows: one per (method, overrides), final-step means over seeds, best H marked; then
    the smoke profile's note when a run is a smoke run."""
    from culbench.leaderboard import final_value
    from culbench.profiles import caveat

    rows: list[tuple[str, str, list[float | None]]] = []
    notes: set[str] = set()
    for (method, overrides), run_dirs in dirs.items():
        summaries = [json.loads((d / "summary.json").read_text(encoding="utf-8")) for d in run_dirs]
        notes |= {caveat(s.get("profile", "")) for s in summaries} - {""}
        values: list[float | None] = []
        for key, _ in TABLE_KEYS:
            points = [final_value(s, key)[0] for s in summaries]
            values.append(None if any(p is None for p in points) else sum(points) / len(points))
        rows.append((method, " ".join(o.partition(".")[2] for o in overrides) or "(defaults)", values))
    best = {m: max((r[2][0] for r in rows if r[0] == m and r[2][0] is not None), default=None) for m, _, _ in rows}
    lines = ["| method | settings | seeds | " + " | ".join(label for _, label in TABLE_KEYS) + " |",
             "|---|---|---|" + "---|" * len(TABLE_KEYS)]
    for (method, settings, values), run_dirs in zip(rows, dirs.values(), strict=True):
        cells = ["—" if v is None else f"{v:.3f}" for v in values]
        if values[0] is not None and values[0] == best[method]:
            cells[0] = f"**{cells[0]}**"
        lines.append(f"| {method} | {settings} | {len(run_dirs)} | " + " | ".join(cells) + " |")
    return lines + ["", *sorted(notes)] if notes else lines
