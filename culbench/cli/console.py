"""The rich consoles the CLI prints to (stdout for results, stderr for errors and progress), and
how it writes a duration.

Both read no markup: user-facing text such as ``pip install 'culbench[vlm]'`` prints as written
(rich would take ``[vlm]`` for a style and drop it); styled parts are :func:`styled` ``Text``.
"""

from rich.console import Console
from rich.text import Text

console = Console(markup=False)
err_console = Console(stderr=True, markup=False)


def styled(*parts: str | tuple[str, str]) -> Text:
    """Text from plain strings and ``(text, style)`` pairs, none of it read as markup."""
    return Text.assemble(*parts)


def duration(seconds: float | None) -> str:
    """``42s``, ``17m``, ``1h05m`` (blank for None): run times in `ls runs` and progress lines."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes = round(seconds / 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"
