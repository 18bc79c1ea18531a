"""The rich consoles the CLI prints to (stdout for results, stderr for errors and progress)."""

from rich.console import Console

console = Console()
err_console = Console(stderr=True)
