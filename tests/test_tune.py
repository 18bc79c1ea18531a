"""``culbench tune``: the same budget for every method, the defaults first, a declared pick."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from culbench import tuning
from culbench.api import Method
from culbench.catalog import METHODS
from culbench.errors import ConfigError


class _Grid(Method):
    @dataclass(frozen=True)
    class Config:
        scale: float = 1.0  # ignored: the model is returned unchanged

    tune_grid = {"scale": (0.5, 1.0, 2.0, 4.0)}

    def unlearn(self, model, request, ctx):  # noqa: ANN001, ANN201
        return model


def test_candidates_start_with_the_defaults_and_fill_the_budget() -> None:
    picks = tuning.candidates("grid", _Grid, budget=4)
    assert picks[0] == () and len(picks) == 4 == len(set(picks))
    assert ("grid.scale=1.0",) not in picks  # the defaults appear once, as ()
    with pytest.raises(ConfigError, match="declares a tuning grid of 3 points besides its defaults; the budget needs 7"):
        tuning.candidates("grid", _Grid, budget=8)


def test_tune_runs_every_candidate_on_the_validation_split_and_records_the_pick(tmp_path: Path) -> None:
    from culbench.cli.tune import tune

    from culbench.runner import run

    METHODS.register("tunegrid")(_Grid)
    try:  # the defaults' validation run was begun evaluating every step: tune finishes that one
        run("tunegrid", sequence="mock", profile="smoke", out=tmp_path, threads=2, split="val")
        tune(method="tunegrid", sequence="mock", profile="smoke", out=tmp_path, budget=3, threads=2,
             index=tmp_path / "index")
    finally:
        METHODS.unregister("tunegrid")
    record = json.loads((tmp_path / "mock@1" / "tunegrid" / tuning.TUNE_FILE).read_text())
    assert record["budget"] == 3 and record["split"] == "val" and record["rule"] == tuning.RULE
    assert [c["overrides"] for c in record["candidates"]][0] == []
    runs = [c["run"] for c in record["candidates"]]
    assert all("~val" in r for r in runs)
    assert "~ends" not in runs[0] and all("~val~ends" in r for r in runs[1:])  # the others evaluate steps 0, T
    scores = [c["headline_h"] for c in record["candidates"]]
    assert record["chosen"] == tuning.pick(scores)
    index = json.loads((tmp_path / "index" / "mock@1.json").read_text())
    entry = index["methods"]["tunegrid"]
    assert entry["budget"] == 3 and entry["chosen"] == record["candidates"][record["chosen"]]["overrides"]
    published = json.loads((tmp_path / "index" / entry["record"]).read_text())
    assert [c["run"] for c in published["candidates"]] == [  # relative to the tuning results root
        str(Path(c["run"]).relative_to(tmp_path)) for c in record["candidates"]]


def test_every_ranked_built_in_declares_a_grid_that_fills_the_budget() -> None:
    from culbench.catalog import method_role

    ranked = [name for name in METHODS.names() if method_role(name) == "ranked" and METHODS.entry(name).source == "builtin"]
    assert {"dfr", "uce", "esd", "sa"} <= set(ranked)
    for name in ranked:
        picks = tuning.candidates(name, METHODS.get(name))
        assert len(picks) == tuning.BUDGET == len(set(picks)), name
        for overrides in picks:  # every point is a valid configuration of the method
            from culbench.config import build_config, parse_overrides

            build_config(METHODS.get(name).Config, name, parse_overrides(overrides, name))
