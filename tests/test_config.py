"""``--set`` overrides are validated against the method's frozen Config dataclass."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pytest

from culbench.config import build_config, config_hash, config_to_dict, parse_overrides
from culbench.errors import ConfigError


@dataclass(frozen=True)
class Cfg:
    lr: float = 1e-5
    iterations: int = 100
    teacher: Literal["previous", "base"] = "previous"
    cached: bool = False
    groups: tuple[str, ...] = ("full",)
    anchor: str | None = None


def test_parse_and_build() -> None:
    raw = parse_overrides(["dfr.lr=3e-4", "dfr.iterations=7", "dfr.teacher=base",
                           "dfr.cached=true", "dfr.groups=xattn,full", "dfr.anchor=none"], "dfr")
    cfg = build_config(Cfg, "dfr", raw)
    assert cfg == Cfg(3e-4, 7, "base", True, ("xattn", "full"), None)
    assert config_to_dict(cfg)["groups"] == ["xattn", "full"]
    assert config_hash(cfg) != config_hash(Cfg())


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("dfr.lrr=1", "unknown config key 'dfr.lrr' (did you mean: lr)"),
        ("dfr.iterations=1.5", "dfr.iterations must be an integer"),
        ("dfr.lr=fast", "dfr.lr must be a number"),
        ("dfr.teacher=golden", "dfr.teacher must be one of previous, base"),
        ("dfr.cached=maybe", "dfr.cached must be true or false"),
    ],
)
def test_bad_overrides_raise(item: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_config(Cfg, "dfr", parse_overrides([item], "dfr"))


def test_override_for_another_method_or_malformed() -> None:
    with pytest.raises(ConfigError, match="is for method 'esd' but this run uses 'dfr'"):
        parse_overrides(["esd.lr=1"], "dfr")
    with pytest.raises(ConfigError, match="METHOD.FIELD=VALUE"):
        parse_overrides(["lr=1"], "dfr")
