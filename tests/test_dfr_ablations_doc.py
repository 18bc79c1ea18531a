"""docs/dfr_ablations.md is generated from the committed ablation runs and must not go stale."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ablation_table_matches_the_committed_runs() -> None:
    spec = importlib.util.spec_from_file_location("dfr_ablations", ROOT / "benchmarks" / "dfr_ablations.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    expected = module.document(module.table(module.RESULTS))
    assert "not run" not in expected, "an ablation variant has no committed runs"
    assert (ROOT / "docs" / "dfr_ablations.md").read_text(encoding="utf-8") == expected, (
        "stale: run `python benchmarks/dfr_ablations.py --write-only --doc docs/dfr_ablations.md`")
