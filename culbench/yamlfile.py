"""Strict YAML task files: parsed with the line of every key, checked against a pydantic model,
and every problem reported as ``FILE:LINE: what: why`` with the fix (a :class:`TaskError`).

Files are UTF-8 (a leading byte-order mark is accepted); a key given twice in one mapping is an
error, not a silent override.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from culbench.errors import TaskError


def read_text(path: Path) -> str:
    """A task file's text: UTF-8, with or without a byte-order mark."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise TaskError(f"{path}:{line}: not UTF-8 (byte {exc.object[exc.start]:#04x})",
                        "save the file as UTF-8") from None


def load_yaml(path: Path) -> tuple[Any, dict[tuple[Any, ...], int]]:
    """Parse YAML and return the data and a map from key path to 1-based line."""
    if not path.is_file():
        raise TaskError(f"{path}: file not found", "check the path in the sequence file")
    text = read_text(path)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise TaskError(
            f"{path}{line}: invalid YAML ({getattr(exc, 'problem', exc)})", "fix the YAML syntax"
        ) from None
    lines: dict[tuple[Any, ...], int] = {}

    def walk(node: yaml.Node | None, at: tuple[Any, ...]) -> None:
        if node is None:
            return
        lines.setdefault(at, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if at + (key.value,) in lines:
                    raise TaskError(f"{path}:{key.start_mark.line + 1}: key '{key.value}' is given twice "
                                    f"(first at line {lines[at + (key.value,)]})", "keep one of them")
                lines[at + (key.value,)] = key.start_mark.line + 1
                walk(value, at + (key.value,))
        elif isinstance(node, yaml.SequenceNode):
            for index, value in enumerate(node.value):
                lines[at + (index,)] = value.start_mark.line + 1
                walk(value, at + (index,))

    walk(root, ())
    return data, lines


def where(path: Path, lines: dict[tuple[Any, ...], int], loc: tuple[Any, ...]) -> str:
    for cut in range(len(loc), -1, -1):
        if loc[:cut] in lines:
            return f"{path}:{lines[loc[:cut]]}"
    return str(path)


def dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def parse(model: type[BaseModel], path: Path) -> tuple[Any, dict[tuple[Any, ...], int]]:
    data, lines = load_yaml(path)
    if not isinstance(data, dict):
        raise TaskError(f"{path}:1: expected a mapping at the top level", "see tasks/README.md")
    try:
        return model.model_validate(data), lines
    except ValidationError as exc:
        # an unknown key is usually a typo of a missing one: report it first
        err = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")[0]
        loc = tuple(err["loc"])
        msg = err["msg"]
        fix = "see tasks/README.md for the schema"
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(model, loc[:-1])
            close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
            msg = f"unknown key (did you mean '{close[0]}'?)" if close else "unknown key"
            fix = f"remove it or use one of: {', '.join(allowed)}"
        elif err["type"] == "missing":
            fix = f"add the key '{loc[-1]}'"
        raise TaskError(f"{where(path, lines, loc)}: {dotted(loc)}: {msg}", fix) from None


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    current: Any = model
    for part in loc:
        if isinstance(part, int) or current is None:
            continue
        annotation = current.model_fields[part].annotation if part in current.model_fields else None
        args = getattr(annotation, "__args__", ()) or (annotation,)
        current = next((a for a in args if isinstance(a, type) and issubclass(a, BaseModel)), None)
    return sorted(current.model_fields) if current is not None else []
