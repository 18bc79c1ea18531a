"""``culbench sweep``: many methods × seeds, resumable, then the leaderboard tables."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer

from culbench.cli.console import console, err_console

EXAMPLES = """Examples:

  culbench sweep --methods original,dfr,esd,uce --seeds 0,1,2              # local, one run after another

  culbench sweep --methods all --seeds 0,1,2 --print-commands > runs.txt    # fan out elsewhere:
  parallel -j 4 < runs.txt                                                  #   GNU parallel, or a SLURM array
  culbench leaderboard build leaderboard/results                            #   then rebuild the tables
"""


def sweep(
    methods: Annotated[str, typer.Option(help="Comma-separated methods, or 'all' (every registered method).")],
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds.")] = "0,1,2",
    sequence: Annotated[str, typer.Option(help="Sequence (default: toy10).")] = "",
    profile: Annotated[str, typer.Option(help="smoke | standard | full.")] = "standard",
    out: Annotated[Path, typer.Option(help="Results root (the leaderboard reads leaderboard/results).")] = Path("leaderboard/results"),
    device: Annotated[str, typer.Option(help="torch device.")] = "cpu",
    print_commands: Annotated[bool, typer.Option(help="Print one `culbench run` command per run instead of running.")] = False,
    table: Annotated[Path | None, typer.Option(help="Also write the Markdown leaderboard here when done.")] = None,
) -> None:
    """Run every method × seed (completed runs are skipped, interrupted ones resume), then build
    the leaderboard. Runs are independent processes' worth of work: `--print-commands` hands them
    to GNU parallel, a SLURM array (`sbatch --array`) or submitit instead."""
    from culbench.catalog import METHODS
    from culbench.errors import CulbenchError
    from culbench.runner import DEFAULT_SEQUENCE, run

    names = METHODS.names() if methods == "all" else [m.strip() for m in methods.split(",") if m.strip()]
    for name in names:
        METHODS.get(name)  # unknown names fail before anything runs
    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise CulbenchError(f"bad --seeds '{seeds}'", "use comma-separated integers, e.g. 0,1,2") from None
    plan = [(m, s) for m in names for s in seed_list]
    if print_commands:
        for m, s in plan:
            args = ["culbench", "run", "--method", m, "--seed", str(s), "--profile", profile, "--out", str(out),
                    "--device", device, "--quiet"] + (["--sequence", sequence] if sequence else [])
            console.print(shlex.join(args), highlight=False, markup=False, soft_wrap=True)
        return
    for i, (m, s) in enumerate(plan, 1):
        err_console.print(f"[{i}/{len(plan)}] {m} seed {s}", highlight=False)
        run(m, sequence=sequence or DEFAULT_SEQUENCE, seed=s, profile=profile, out=out, device=device,
            log=lambda msg: err_console.print(f"  {msg}", highlight=False))
    if table is not None:
        from culbench.leaderboard import build, render

        table.parent.mkdir(parents=True, exist_ok=True)
        table.write_text(render(build([out]), "md"), encoding="utf-8")
        console.print(f"wrote {table}", highlight=False)
