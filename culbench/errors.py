"""User-facing errors: one line that says what went wrong and how to fix it.

The CLI prints a ``CulbenchError`` as a single line and exits non-zero; anything
else is a bug and is reported as such (with the traceback saved, never printed).
"""

from __future__ import annotations


class CulbenchError(Exception):
    """An error caused by the user's input or environment, with a suggested fix.

    Args:
        message: what went wrong, one sentence, no trailing period needed.
        fix: what the user should do about it (printed after the message).
    """

    exit_code = 2

    def __init__(self, message: str, fix: str | None = None) -> None:
        self.message = message
        self.fix = fix
        super().__init__(self.one_line())

    def one_line(self) -> str:
        """The message and the fix joined into one line."""
        text = self.message.rstrip(". ")
        return f"{text}; fix: {self.fix}" if self.fix else text


class RegistryError(CulbenchError):
    """Unknown, duplicate or shadowing registry names."""


class TaskError(CulbenchError):
    """A malformed task file (concept, prompt CSV or sequence)."""


class ConfigError(CulbenchError):
    """A bad ``--set`` override or config file."""


class RunError(CulbenchError):
    """A run directory that cannot be resumed or validated."""

    exit_code = 1
