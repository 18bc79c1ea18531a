"""The rich consoles the CLI prints to (stdout for results, stderr for errors and progress), and
how it writes a duration."""

from rich.console import Console

console = Console()
err_console = Console(stderr=True)


def duration(seconds: float | None) -> str:
    """``42s``, ``17m``, ``1h05m`` (blank for None): run times in `ls runs` and progress lines."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes = round(seconds / 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"
