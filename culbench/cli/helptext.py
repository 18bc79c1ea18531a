"""Help text people read: typer shows each parameter's Python type (``<str>``, ``<list[Path]>``,
``<bool>``); :func:`plain_metavars` replaces them with words (TEXT, INTEGER, NUMBER, PATH) and
names arguments in capitals, as the command docstrings do (``culbench ls runs ROOT``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import click

WORDS = {str: "TEXT", int: "INTEGER", float: "NUMBER", Path: "PATH"}


def _word(param: Any) -> str | None:
    """The word for what ``param`` takes: '' for a flag, None to keep typer's (choices)."""
    if getattr(param, "is_flag", False):
        return ""
    desc = getattr(param, "type_descriptor", None)
    if desc is None or desc.is_choice:
        return None
    if desc.is_path:
        return "PATH"
    annotation = desc.annotation
    if desc.is_list and get_args(annotation):
        annotation = get_args(annotation)[0]
    return WORDS.get(annotation)


def plain_metavars(command: click.Command) -> click.Command:
    """``command`` and its subcommands with typed placeholders replaced by words; returns it."""
    for param in command.params:
        word = _word(param)
        if word is None:
            continue
        if param.param_type_name == "argument":
            param.metavar = param.name.upper()
        else:
            param.metavar = word
        param.display_type_rich = lambda ctx, word=word: word or None  # typer's type column
    command.get_help_option = _untyped_help(command.get_help_option)
    for sub in getattr(command, "commands", {}).values():
        plain_metavars(sub)
    return command


def _untyped_help(get_help_option: Any) -> Any:
    """``get_help_option`` whose ``--help`` shows no ``<bool>`` (click makes it on demand)."""

    def wrapped(ctx: click.Context) -> Any:
        option = get_help_option(ctx)
        if option is not None:
            option.display_type_rich = lambda ctx: None
        return option

    return wrapped
