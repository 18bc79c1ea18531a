"""Robustness probes: records in the run folder, resumable and fingerprinted; the paraphrase probe
reads the sequence's probes/ prompts, which no method is given."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import run_cli

from culbench import runfolder as rf
from culbench.errors import CulbenchError
from culbench.probes import run_probes
from culbench.tasks import resolve_sequence


@pytest.fixture(scope="module")
def base_run(toy10_smoke_run: Path) -> Path:
    """The shared toy10@2 smoke run of ``original`` (seed 1: order 1; conftest)."""
    return toy10_smoke_run


def test_paraphrase_probe_records_each_forgotten_concept_and_resumes(base_run: Path, tmp_path: Path) -> None:
    run_dir = Path(shutil.copytree(base_run, tmp_path / "run"))
    seq = resolve_sequence("toy10")
    [record] = run_probes(run_dir, ["paraphrase"], [0])
    concepts = record["result"]["concepts"]
    assert list(concepts) == seq.orders[1]  # step 0: every concept the run forgets (the sanity check)
    red = concepts["red"]
    assert red["n"] == 4 and red["own_paired"] and set(red["words"]) == {"crimson", "scarlet"}
    assert sum(red["prompt_images"]) == 4 and 0 <= red["presence"] <= 1
    path = rf.probe_path(run_dir, "paraphrase", 0)
    assert json.loads(path.read_text())["fingerprint"]["model_sha256"] == rf.read_step(run_dir, 0)["model_sha256"]
    stamp = path.stat().st_mtime_ns
    assert run_probes(run_dir, ["paraphrase"], [0])[0] == record and path.stat().st_mtime_ns == stamp  # skipped
    other = run_probes(run_dir, ["paraphrase"], [0], overrides=["paraphrase.prompts=1"])[0]
    assert other["result"]["concepts"]["red"]["n"] == 2  # another config: computed again
    [last] = run_probes(run_dir, ["paraphrase"], [None])  # the final step: the run's order
    assert list(last["result"]["concepts"]) == seq.orders[1] and last["step"] == 10
    path.write_text("{half")
    again = run_probes(run_dir, ["paraphrase"], [0])[0]  # damaged: set aside, recomputed
    assert again["result"] == record["result"] and path.with_name("00.json.damaged").is_file()


def test_a_step_committed_ahead_of_a_gap_is_probed(base_run: Path, tmp_path: Path) -> None:
    """A from-scratch method's steps computed alone (``--step``: the retrain oracle's) leave gaps;
    each committed step is a checkpoint of its own (weights are deltas from the base)."""
    run_dir = Path(shutil.copytree(base_run, tmp_path / "run"))
    shutil.rmtree(rf.step_dir(run_dir, 3))
    assert rf.committed_steps(run_dir) == [0, 1, 2]
    [record] = run_probes(run_dir, ["paraphrase"], [10])
    assert record["step"] == 10
    with pytest.raises(CulbenchError, match=r"step 3 is not committed.*one of \[0, 1, 2, 4,"):
        run_probes(run_dir, ["paraphrase"], [3])


def test_probe_inputs_that_cannot_work_fail_with_one_line(base_run: Path, tmp_path: Path) -> None:
    with pytest.raises(CulbenchError, match="unknown probe"):
        run_probes(base_run, ["paraphrse"], [0])
    with pytest.raises(CulbenchError, match="unknown config key 'paraphrase.promps'"):
        run_probes(base_run, ["paraphrase"], [0], overrides=["paraphrase.promps=3"])
    with pytest.raises(CulbenchError, match="step 11 is not committed"):
        run_probes(base_run, ["paraphrase"], [11])
    done = run_cli("probe", str(tmp_path))
    assert done.returncode != 0 and "no run folders" in done.stderr and "fix:" in done.stderr


def test_no_method_is_given_a_probe_prompt() -> None:
    """The reworded prompts are not in any prompt file a request draws from."""
    from culbench.probes.paraphrase import probe_file, read_probe_prompts

    seq = resolve_sequence("toy10")
    given = {p for cid in seq.roles for p in (*(x.prompt for x in seq.prompts[cid].train),
                                              *(x.mapped for x in seq.prompts[cid].train),
                                              *(x.prompt for x in seq.prompts[cid].val))}
    for cid in seq.steps:
        reworded = {p for words in read_probe_prompts(probe_file(seq, cid)).values() for p in words.values()}
        assert len(reworded) >= 10 and not reworded & given  # a character has 6 contexts x 2 wordings


def _record(run_dir: Path, probe: str, step: int, hits: dict[str, list[int]]) -> None:
    concepts = {c: {"presence": sum(h) / (2 * len(h)), "prompt_hits": h, "prompt_images": [2] * len(h)}
                for c, h in hits.items()}
    rf.write_probe(run_dir, probe, step, {"fingerprint": {}, "step": step, "seconds": 0.0,
                                          "result": {"concepts": concepts, "summary": {}}})


def test_the_board_column_pools_runs_and_prompts(tmp_path: Path) -> None:
    from culbench.leaderboard.probes import probe_presence

    runs = [tmp_path / "a", tmp_path / "b"]
    _record(runs[0], "paraphrase", 10, {"red": [0, 0, 2, 0], "star": [0, 0, 0, 0]})
    _record(runs[1], "paraphrase", 10, {"star": [0, 1, 0, 0], "red": [2, 2, 0, 0]})
    mean, low, high = probe_presence(runs, [10, 10], "paraphrase", replicates=300)
    assert mean == pytest.approx((0.125 + (0.5 + 0.125) / 2) / 2)
    assert low is not None and high is not None and low < mean < high
    assert probe_presence(runs, [10, 9], "paraphrase") == (None, None, None)  # a run without a record
    _record(runs[1], "paraphrase", 9, {"red": [0, 0, 0, 0]})
    assert probe_presence(runs, [10, 9], "paraphrase") == (None, None, None)  # other concepts
    for run in runs:  # almost nothing found: the interval stays inside presence's range
        _record(run, "paraphrase", 8, {"red": [0, 0, 0, 0], "star": [0, 0, 0, 0]})
    _record(runs[0], "paraphrase", 8, {"red": [1, 0, 0, 0], "star": [0, 0, 0, 0]})
    mean, low, high = probe_presence(runs, [8, 8], "paraphrase", replicates=300)
    assert 0.0 == low < mean < high <= 1.0


def test_judge_agreement_probe_feeds_the_report(base_run: Path, tmp_path: Path) -> None:
    from culbench.leaderboard import load_rows
    from culbench.leaderboard.probes import agreement_lines

    run_dir = Path(shutil.copytree(base_run, tmp_path / "run"))
    [record] = run_probes(run_dir, ["agreement"], [None], overrides=["agreement.per_concept=1"])
    result = record["result"]
    assert result["stored_match"] == 1.0  # the images were regenerated exactly
    assert result["summary"]["n"] == len(resolve_sequence("toy10").roles) == len(result["pairs"])
    lines = agreement_lines(load_rows([run_dir]))
    assert lines[0].startswith("### Judge agreement") and lines[-2].startswith("| original | 1 |")


def test_probes_that_cannot_run_on_the_backend_are_skipped_unless_named(base_run: Path, tmp_path: Path) -> None:
    from culbench.catalog import PROBES
    from culbench.probes import Probe

    class _SdOnly(Probe):
        name, backends = "sd-only-test", ("sd",)

        def run(self, target, progress):  # noqa: ANN001, ANN201
            raise AssertionError("must not run on a ToyWorld run")

    PROBES.register("sd-only-test")(_SdOnly)
    try:
        logged: list[str] = []
        assert run_probes(base_run, ["sd-only-test"], [0], applicable_only=True, log=logged.append) == []
        assert "skipped" in logged[0]
        with pytest.raises(AssertionError, match="must not run"):
            run_probes(base_run, ["sd-only-test"], [0])
    finally:
        PROBES._entries.pop("sd-only-test", None)


def test_report_tables_and_restoration_curves_read_the_final_step_records(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from culbench.leaderboard.plots import restoration
    from culbench.leaderboard.probes import concept_lines, restoration_curves

    runs = [tmp_path / "a", tmp_path / "b"]
    for run_dir, hit in zip(runs, (0, 2), strict=True):
        _record(run_dir, "attack", 2, {"red": [hit, 0], "star": [0, 0]})
        relearn = {c: {"steps": [0, 4], "presence": [0.0, p], "auc": p / 2} for c, p in (("red", 1.0), ("star", 0.5))}
        rf.write_probe(run_dir, "relearn", 2, {"fingerprint": {}, "step": 2, "seconds": 0.0,
                                               "result": {"concepts": relearn, "summary": {}}})
    row = SimpleNamespace(label="m", sources=[str(r / "summary.json") for r in runs],
                          summaries=[{"forget_order": ["red", "star"]}] * 2, sequence="s@1")
    steps, curves = restoration_curves(row)
    assert steps.tolist() == [0.0, 4.0] and curves.tolist() == [[0.0, 0.75], [0.0, 0.75]]
    lines = concept_lines([row])
    assert "| red | — | — | 0.25 | 0.50 |" in lines and "| star | — | — | 0.00 | 0.25 |" in lines
    assert restoration([row], tmp_path / "r.png").is_file()
    assert restoration([SimpleNamespace(label="x", sources=[], summaries=[], sequence="s@1")], tmp_path / "n.png") is None
