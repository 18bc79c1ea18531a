"""``culbench check-method``: run the method contract suite on a built-in or plugin method."""

from __future__ import annotations

from typing import Annotated

import typer

from culbench.cli.console import console, styled

EXAMPLES = """Examples:

  culbench check-method dfr

  culbench check-method my_method --set my_method.lr=1e-3
"""


def check_method(
    name: Annotated[str, typer.Argument(help="A registered method (`culbench ls methods`).")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="Config override NAME.key=value (repeatable).")] = None,
) -> None:
    """Check a method against the contract: config, components, parameter groups, frozen
    references, determinism and a smoke run on the mock sequence (seconds)."""
    from rich.table import Table

    from culbench.catalog import METHODS
    from culbench.contract import run_contract
    from culbench.errors import CulbenchError

    METHODS.get(name)  # unknown names: one-line error with suggestions
    checks = run_contract(name, tuple(set_ or ()))
    table = Table(title=f"method contract: {name}")
    for column in ("check", "result", "detail"):
        table.add_column(column)
    for c in checks:
        table.add_row(c.name, styled(("pass", "green")) if c.ok else styled(("FAIL", "red")), c.detail)
    console.print(table)
    failed = [c.name for c in checks if not c.ok]
    if failed:
        raise CulbenchError(f"method '{name}' fails the contract: {', '.join(failed)}",
                            "see the table above; the checks are documented in culbench/contract.py")
