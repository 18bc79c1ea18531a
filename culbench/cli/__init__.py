"""The ``culbench`` command: typer sub-apps composed here; errors are one line, never a traceback."""

from __future__ import annotations

import sys
import tempfile
import traceback
from pathlib import Path
from typing import Annotated

import click
import typer

from culbench.cli import check as check_cli
from culbench.cli import doctor as doctor_cli
from culbench.cli import judges as judges_cli
from culbench.cli import sd as sd_cli
from culbench.cli import leaderboard as leaderboard_cli
from culbench.cli import ls as ls_cli
from culbench.cli import merge as merge_cli
from culbench.cli import report as report_cli
from culbench.cli import run as run_cli
from culbench.cli import submit as submit_cli
from culbench.cli import sweep as sweep_cli
from culbench.cli import probe as probe_cli
from culbench.cli import tune as tune_cli
from culbench.cli import tasks as tasks_cli
from culbench.cli import toyworld as toyworld_cli
from culbench.cli import validate as validate_cli
from culbench.cli.console import console, err_console, styled
from culbench.cli.helptext import plain_metavars
from culbench.errors import CulbenchError

try:  # typer >= 0.24 vendors its own click: catch both families of usage errors
    from typer._click import exceptions as _typer_click
except ImportError:  # pragma: no cover - older typer uses click itself
    _typer_click = click.exceptions
_EXIT = (click.exceptions.Exit, typer.Exit)
_USAGE = (click.ClickException, _typer_click.ClickException)
_ABORT = (KeyboardInterrupt, click.exceptions.Abort, typer.Abort)

app = typer.Typer(
    name="culbench",
    help="Benchmark continual concept unlearning in text-to-image diffusion models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    """Print the culbench version and stop (the eager ``--version`` option)."""
    if value:
        from culbench import __version__

        console.print(f"culbench {__version__}", highlight=False, markup=False)
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print the culbench version and exit.")] = False,
) -> None:
    """Benchmark continual concept unlearning in text-to-image diffusion models."""


app.command("run", epilog=run_cli.EXAMPLES)(run_cli.run)
app.command("validate", epilog=validate_cli.EXAMPLES)(validate_cli.validate)
app.command("migrate", epilog=validate_cli.MIGRATE_EXAMPLES)(validate_cli.migrate)
app.command("report", epilog=report_cli.EXAMPLES)(report_cli.report)
app.command("check-method", epilog=check_cli.EXAMPLES)(check_cli.check_method)
app.command("new-method", epilog=submit_cli.EXAMPLES)(submit_cli.new_method)
app.command("submit", epilog=submit_cli.EXAMPLES)(submit_cli.submit)
app.command("sweep", epilog=sweep_cli.EXAMPLES)(sweep_cli.sweep)
app.command("merge", epilog=merge_cli.EXAMPLES)(merge_cli.merge)
app.command("tune", epilog=tune_cli.EXAMPLES)(tune_cli.tune)
app.command("probe", epilog=probe_cli.EXAMPLES)(probe_cli.probe)
app.command("doctor", epilog=doctor_cli.EXAMPLES)(doctor_cli.doctor)
app.add_typer(ls_cli.app, name="ls")
app.add_typer(leaderboard_cli.app, name="leaderboard")
app.add_typer(tasks_cli.app, name="tasks")
app.add_typer(toyworld_cli.app, name="toyworld")
app.add_typer(judges_cli.app, name="judges")
app.add_typer(sd_cli.app, name="sd")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``culbench`` console script."""
    try:
        command = plain_metavars(typer.main.get_command(app))  # help without Python types
        command(args=argv, prog_name="culbench", standalone_mode=False)
    except CulbenchError as exc:
        err_console.print(styled(("error:", "bold red"), f" {exc.one_line()}"), soft_wrap=True,
                          highlight=False)
        sys.exit(exc.exit_code)
    except _EXIT as exc:
        sys.exit(exc.exit_code)
    except _USAGE as exc:
        if not exc.format_message().strip():  # `culbench` or `culbench ls` alone: the help is printed
            sys.exit(exc.exit_code)
        ctx = getattr(exc, "ctx", None)  # the (sub)command that failed, e.g. `culbench run`
        command = ctx.command_path if ctx is not None else "culbench"
        err_console.print(styled(("error:", "bold red"), f" {exc.format_message()}; fix: see "
                                 f"`{command} --help`"), soft_wrap=True, highlight=False)
        sys.exit(2)
    except _ABORT:
        err_console.print(styled(("interrupted", "yellow"), ": committed steps are kept; rerun the "
                                 "same command to resume"), soft_wrap=True)
        sys.exit(130)
    except Exception as exc:  # a culbench bug: keep the traceback, print one line
        log = Path(tempfile.gettempdir()) / "culbench-crash.log"
        log.write_text(traceback.format_exc())
        err_console.print(styled(("internal error:", "bold red"), f" {type(exc).__name__}: {exc}; fix: "
                                 f"please report it with the traceback saved in {log}"),
                          soft_wrap=True, highlight=False)
        sys.exit(1)
