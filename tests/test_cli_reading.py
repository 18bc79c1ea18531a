"""A command line people read (issue #37): the version, fix hints printed as written, help without
Python types, profiles and plugins described, smoke numbers labelled, one default for every entry."""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path

import pytest
from conftest import run_cli

from culbench.catalog import METHODS
from culbench.cli import main
from culbench.errors import CulbenchError

BRACKETS = "pip install 'culbench[vlm]' or pip install -e '.[vlm]'"


def _main(args: list[str]) -> int:
    """Run the CLI in this process; its exit status."""
    try:
        main(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_version_prints_the_culbench_version() -> None:
    import culbench

    done = run_cli("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"culbench {culbench.__version__}"


@pytest.mark.parametrize("args", [[], ["ls"]])
def test_a_bare_command_prints_its_help_and_no_empty_error(args: list[str]) -> None:
    done = run_cli(*args)
    assert "Usage: culbench" in done.stdout
    assert "error" not in done.stderr, done.stderr


def test_an_error_prints_its_fix_with_square_brackets(monkeypatch, capsys, tmp_path: Path) -> None:  # noqa: ANN001
    from culbench.runfolder import progress

    def fail(root: Path) -> list:
        raise CulbenchError("the VLM judge needs transformers", BRACKETS)

    monkeypatch.setattr(progress, "run_progress", fail)
    assert _main(["ls", "runs", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"error: the VLM judge needs transformers; fix: {BRACKETS}" in err


def test_doctor_prints_a_fix_with_square_brackets(monkeypatch, capsys) -> None:  # noqa: ANN001
    from culbench.cli import doctor

    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setattr(doctor, "findings", lambda: [doctor.Finding("VLM judge", False, f"fix: {BRACKETS}", False)])
    assert _main(["doctor"]) == 0
    assert BRACKETS in capsys.readouterr().out


def _commands() -> list[list[str]]:
    import typer

    from culbench.cli import app

    def walk(command, path: list[str]):  # noqa: ANN001, ANN202
        yield path
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, [*path, name])

    return list(walk(typer.main.get_command(app), []))


def test_help_shows_no_python_types_or_rest_markup(monkeypatch, capsys) -> None:  # noqa: ANN001
    monkeypatch.setenv("COLUMNS", "200")
    commands = _commands()
    assert ["run"] in commands and ["ls", "runs"] in commands and len(commands) > 20
    for path in commands:
        assert _main([*path, "--help"]) == 0, path
        text = capsys.readouterr().out
        assert "Usage: culbench" in text, path
        for bad in ("<str>", "<int>", "<float>", "<bool>", "<path>", "list[", "``", ":class:", ":meth:", ":func:"):
            assert bad not in text, (path, bad)
    _main(["run", "--help"])
    run_help = capsys.readouterr().out
    assert "--seed" in run_help and "INTEGER" in run_help and "PATH" in run_help
    _main(["ls", "runs", "--help"])
    assert "[ROOT]" in capsys.readouterr().out  # arguments are named as the docstrings name them


def test_ls_profiles_shows_what_each_profile_evaluates() -> None:
    from culbench.profiles import PROFILES

    done = run_cli("ls", "profiles")
    assert done.returncode == 0, done.stderr
    lines = {line.strip("│ ").split("│")[0].strip(): line for line in done.stdout.splitlines()}
    for label, field, none in (("prompts per concept", "prompts_per_concept", "all"),
                               ("seeds per prompt", "seeds_per_prompt", "all"),
                               ("sampler steps", "sample_steps", "sequence's"),
                               ("max iterations / request", "max_iterations", "no cap")):
        cells = [c.strip() for c in lines[label].strip("│ \n").split("│")[1:]]
        assert cells == [none if getattr(p, field) is None else str(getattr(p, field)) for p in PROFILES.values()]
    assert "smoke: seconds per run" in done.stdout


@pytest.fixture
def plugin_method(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    """A lazily registered plugin method whose module would fail if it were imported."""
    (tmp_path / "summary_plugin_mod.py").write_text(
        '"""Module docstring."""\nraise ImportError("importing me needs torch")\n\n\n'
        'class Eraser:\n    """Erases concepts by magic, one request at a time.\n\n    More text.\n    """\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    METHODS.register_lazy("summary-test-only", "summary_plugin_mod:Eraser", source="plugin magic==0.1")
    yield "summary-test-only"
    METHODS.unregister("summary-test-only")


def test_ls_methods_shows_a_plugins_docstring_without_importing_it(plugin_method: str, monkeypatch,  # noqa: ANN001
                                                                   capsys) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    assert _main(["ls", "methods"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if plugin_method in line)
    assert "plugin magic==0.1" in row and "Erases concepts by magic, one request at a time." in row
    assert "summary_plugin_mod" not in sys.modules


def test_source_summary_reads_a_submodule_without_running_its_package(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    from culbench.catalog import source_summary

    package = tmp_path / "summary_pkg_test"
    package.mkdir()
    (package / "__init__.py").write_text("raise RuntimeError('never run')\n")
    (package / "methods.py").write_text('"""The module."""\n\nclass A:\n    """Class A does a thing."""\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    assert source_summary("summary_pkg_test.methods:A") == "Class A does a thing."
    assert source_summary("summary_pkg_test.methods:Missing") == "The module."
    assert source_summary("no_such_module_anywhere:A") == ""
    assert "summary_pkg_test" not in sys.modules


def test_smoke_results_say_they_are_plumbing(smoke_run: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    from culbench.cli.run import _print_result
    from culbench.cli.sweep import settings_table
    from culbench.leaderboard import build, render
    from culbench.profiles import SMOKE_NOTE, caveat

    assert caveat("smoke") == SMOKE_NOTE and caveat("standard") == ""
    _print_result(smoke_run)
    assert SMOKE_NOTE in capsys.readouterr().out
    assert settings_table({("original", ()): [smoke_run]})[-1] == SMOKE_NOTE
    tables = build([smoke_run])
    assert all(SMOKE_NOTE in t.title for t in tables)
    assert SMOKE_NOTE in render(tables, "md")
    assert all(t["note"] == SMOKE_NOTE for t in json.loads(render(tables, "json")))
    done = run_cli("report", str(smoke_run), "--out", str(tmp_path / "report"), "--no-plots")
    assert done.returncode == 0, done.stderr
    assert SMOKE_NOTE in done.stdout
    assert f"## mock@1 · profile smoke · {SMOKE_NOTE}" in (tmp_path / "report" / "report.md").read_text()


def test_run_sweep_and_the_python_api_share_their_defaults() -> None:
    from culbench.cli import run as run_cli_module
    from culbench.cli import sweep as sweep_cli_module
    from culbench.runner import run
    from culbench.spec import RunSpec

    spec = RunSpec("dfr")
    for command in (run_cli_module.run, sweep_cli_module.sweep):
        params = inspect.signature(command).parameters
        assert params["profile"].default == spec.profile == "standard", command
        assert params["out"].default == spec.out == Path("results"), command
    assert "standard" in inspect.getdoc(run)
    printed = run_cli("sweep", "--methods", "dfr", "--seeds", "0", "--print-commands")
    assert "--profile standard --out results " in printed.stdout
