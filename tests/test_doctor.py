"""``culbench doctor`` and loading plugins that are broken."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from culbench.catalog import METHODS
from culbench.errors import CulbenchError


@pytest.fixture
def broken_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    """A method plugin whose module raises ValueError when imported."""
    (tmp_path / "broken_plugin_mod.py").write_text("raise ValueError('bad constant in the plugin')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    METHODS.register_lazy("broken-test-only", "broken_plugin_mod:Method", source="plugin broken==0.1")
    yield "broken-test-only"
    METHODS.unregister("broken-test-only")
    sys.modules.pop("broken_plugin_mod", None)


def test_a_plugin_that_fails_to_import_is_a_one_line_error(broken_plugin: str) -> None:
    with pytest.raises(CulbenchError, match="could not be loaded.*ValueError: bad constant"):
        METHODS.get(broken_plugin)


def test_doctor_reports_a_broken_plugin(broken_plugin: str) -> None:
    from culbench.cli.doctor import _methods

    with pytest.raises(RuntimeError, match="1 of .* methods fail to load: .*broken-test-only"):
        _methods()
