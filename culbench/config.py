"""Method configs: ``--set dfr.lr=1e-5`` overrides checked against the frozen dataclass."""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import types
import typing
from collections.abc import Iterable
from typing import Any, Literal, Union

from culbench.errors import ConfigError

_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}


def parse_overrides(items: Iterable[str], method: str) -> dict[str, str]:
    """``["dfr.lr=1e-5"]`` -> ``{"lr": "1e-5"}`` for method ``dfr``; other prefixes raise. A
    composed method ``esd+l2sp`` takes ``esd.FIELD`` (or ``esd+l2sp.FIELD``) for its own settings
    and ``l2sp.FIELD`` for its regulariser's, kept as ``{"l2sp.FIELD": ...}``."""
    base, *addons = method.split("+")
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        prefix, dot, field = key.strip().partition(".")
        if not sep or not dot or not field:
            raise ConfigError(
                f"override '{item}' is not of the form METHOD.FIELD=VALUE",
                f"write e.g. --set {method}.lr=1e-5",
            )
        if prefix in addons:
            out[f"{prefix}.{field}"] = value.strip()
            continue
        if prefix not in (method, base):
            raise ConfigError(
                f"override '{item}' is for method '{prefix}' but this run uses '{method}'",
                f"write --set {base}.{field}={value}",
            )
        out[field] = value.strip()
    return out


def _convert(raw: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    text = str(raw).strip()
    if origin in (Union, types.UnionType):
        if type(None) in args and text.lower() in ("none", "null", ""):
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(raw, arg, where)
            except ConfigError as exc:
                errors.append(exc.message)
        raise ConfigError(errors[0] if errors else f"{where}: bad value '{raw}'", "check the type")
    if origin is Literal:
        for option in args:
            if text == str(option):
                return option
        raise ConfigError(
            f"{where} must be one of {', '.join(map(str, args))}, not '{text}'", "pick one of those"
        )
    if origin in (tuple, list):
        parts = raw if isinstance(raw, (list, tuple)) else [p for p in text.split(",") if p.strip()]
        inner = args[0] if args else str
        values = [_convert(p, inner, where) for p in parts]
        return tuple(values) if origin is tuple else values
    if hint is bool:
        if isinstance(raw, bool):
            return raw
        if text.lower() in _TRUE | _FALSE:
            return text.lower() in _TRUE
        raise ConfigError(f"{where} must be true or false, not '{text}'", "use true or false")
    if hint is int:
        if isinstance(raw, bool):
            raise ConfigError(f"{where} must be an integer, not '{text}'", "write a whole number")
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"{where} must be an integer, not '{text}'", "write a whole number") from None
    if hint is float:
        try:
            value = float(text)
        except ValueError:
            raise ConfigError(f"{where} must be a number, not '{text}'", "write e.g. 1e-5") from None
        if not math.isfinite(value):
            raise ConfigError(f"{where} must be a finite number, not '{text}'", "write e.g. 1e-5")
        return value
    if hint is str:
        return text
    raise ConfigError(f"{where} has unsupported type {hint!r}", "report this as a culbench bug")


def build_config(config_cls: type, method: str, overrides: dict[str, Any]) -> Any:
    """An instance of ``config_cls`` with ``overrides`` applied and type-checked."""
    hints = typing.get_type_hints(config_cls)
    fields = {f.name for f in dataclasses.fields(config_cls)}
    values: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for key, raw in overrides.items():
        if "." in key:  # a composed method's add-on setting: "l2sp.weight"
            part, _, sub = key.partition(".")
            nested.setdefault(part, {})[sub] = raw
            continue
        if key not in fields:
            close = difflib.get_close_matches(key, sorted(fields), n=3)
            hint = f" (did you mean: {', '.join(close)})" if close else ""
            options = ", ".join(sorted(fields)) or "none"
            raise ConfigError(
                f"unknown config key '{method}.{key}'{hint}", f"{method} accepts: {options}"
            )
        values[key] = _convert(raw, hints[key], f"{method}.{key}")
    for part, subs in nested.items():
        if part not in fields or not dataclasses.is_dataclass(hints[part]):
            raise ConfigError(f"'{part}' is not an add-on of method '{method}'",
                              f"name it in the method, e.g. --method {method}+{part}")
        values[part] = build_config(hints[part], part, subs)
    try:
        return config_cls(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid {method} config: {exc}", "check the --set values") from None


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def config_hash(config: Any) -> str:
    """sha256 of the canonical JSON of a config."""
    return hashlib.sha256(
        json.dumps(config_to_dict(config), sort_keys=True).encode()
    ).hexdigest()


def describe_config(config_cls: type) -> list[tuple[str, str, str, str]]:
    """``(field, type, default, comment)`` per field of a Config dataclass, for ``culbench ls``.

    The comment is the trailing ``# ...`` on the field's line in the source, when there is one.
    """
    import inspect
    import re

    comments: dict[str, str] = {}
    for cls in reversed([c for c in config_cls.__mro__ if dataclasses.is_dataclass(c)]):  # a composed
        try:                                                                           # Config's base too
            source = inspect.getsource(cls)
        except (OSError, TypeError):  # built at run time: no source to read comments from
            source = ""
        comments.update({m.group(1): m.group(2).strip() for m in
                         re.finditer(r"^\s*(\w+)\s*:[^#\n]*#\s*(.*)$", source, flags=re.MULTILINE)})
    hints = typing.get_type_hints(config_cls)
    rows = []
    for f in dataclasses.fields(config_cls):
        if dataclasses.is_dataclass(hints.get(f.name)):  # a composed method's add-on: its own rows
            rows += [(f"{f.name}.{name}", *rest) for name, *rest in describe_config(hints[f.name])]
            continue
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else "(required)")
        shown = default if isinstance(default, str) else "none" if default is None else json.dumps(default)
        rows.append((f.name, _type_name(hints.get(f.name)), shown, comments.get(f.name, "")))
    return rows


def _type_name(hint: Any) -> str:
    """``Literal["a", "b"]`` -> ``a | b``; ``int | None`` -> ``int | none``; ``float`` -> ``float``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        return " | ".join(str(a) for a in args)
    if origin in (Union, types.UnionType):
        return " | ".join("none" if a is type(None) else _type_name(a) for a in args)
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
