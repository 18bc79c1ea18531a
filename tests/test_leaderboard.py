"""`culbench leaderboard build`: every format from result files, tie-aware ranks, refusals."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

from conftest import chromium, run_cli

from culbench.leaderboard import build, render


def test_formats_and_rows(smoke_run: Path, dfr_mock_run: Path) -> None:
    tables = build([smoke_run, dfr_mock_run])
    assert [t.title for t in tables] == ["mock@1 · profile smoke · smoke profile: plumbing numbers, not measurements"]
    assert {r.label for r in tables[0].rows} == {"dfr[iterations=4 lr=0.01]", "original"}
    md = render(tables, "md")
    assert md.count("| self-reported") == 2 and "tie-aware" in md
    rows = list(csv.DictReader(io.StringIO(render(tables, "csv"))))
    assert {r["method"] for r in rows} == {"dfr", "original"}
    assert all(r["status"].startswith("self-reported") for r in rows)
    data = json.loads(render(tables, "json"))
    assert data[0]["rank_by"] == "headline_h" and len(data[0]["rows"]) == 2
    # one seed: shown, never ranked (a row ranks with >= 3 seeds); the untouched model is a
    # reference row: listed last, unranked; with no ranked row nothing is marked best
    assert [(r["label"], r["rank"], r["reference"], r["too_few_seeds"]) for r in data[0]["rows"]] == \
        [("dfr[iterations=4 lr=0.01]", None, False, True), ("original", None, True, True)]
    assert "| — | dfr[iterations=4 lr=0.01] | 0 | self-reported · unranked: 1 seed of 3 |" in md
    assert "| ref | original |" in md and "**" not in md
    assert r"\begin{tabular}" in render(tables, "latex")


def test_verified_rows_come_from_leaderboard_results(smoke_run: Path, tmp_path: Path) -> None:
    target = tmp_path / "leaderboard" / "results" / "run"
    shutil.copytree(smoke_run, target)
    assert "| verified |" in render(build([tmp_path / "leaderboard" / "results"]), "md")
    elsewhere = tmp_path / "my" / "results" / "run"  # any other results folder is self-reported
    shutil.copytree(smoke_run, elsewhere)
    assert "| self-reported |" in render(build([elsewhere]), "md")


def test_default_config_keeps_the_plain_name_beside_variants(smoke_run: Path, dfr_mock_run: Path,
                                                              tmp_path: Path) -> None:
    from culbench.runner import run

    default = run("dfr", sequence="mock", seed=0, profile="smoke", out=tmp_path)
    labels = {r.label for r in build([default, dfr_mock_run])[0].rows}
    assert labels == {"dfr", "dfr[iterations=4 lr=0.01]"}


def test_html_is_one_self_contained_file(smoke_run: Path, dfr_mock_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "board.html"
    done = run_cli("leaderboard", "build", str(smoke_run), str(dfr_mock_run), "--format", "html", "--out", str(out))
    assert done.returncode == 0, done.stderr
    page = out.read_text()
    assert page.count("<tr class=") == 2 and "data:image/png;base64," in page
    assert page.count(" presence' src='data:image/png;base64,") == 2  # every row, the reference row too
    assert "http://" not in page and "https://" not in page  # no external assets


def test_partial_runs_are_refused(smoke_run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "partial"
    shutil.copytree(smoke_run, copy)
    (copy / "summary.json").unlink()
    done = run_cli("leaderboard", "build", str(tmp_path))
    assert done.returncode != 0 and "incomplete run" in done.stderr and "--allow-partial" in done.stderr


def test_allow_partial_shows_unfinished_runs_marked_and_unranked(smoke_run: Path, dfr_mock_run: Path,
                                                                 tmp_path: Path) -> None:
    from culbench.runfolder import committed_steps, step_dir

    copy = tmp_path / "partial"
    shutil.copytree(dfr_mock_run, copy)
    (copy / "summary.json").unlink()
    steps = committed_steps(copy)
    shutil.rmtree(step_dir(copy, steps[-1]))  # interrupted before its last step
    tables = build([smoke_run, copy], allow_partial=True)
    rows = {r.label: r for r in tables[0].rows}
    dfr = rows["dfr[iterations=4 lr=0.01]"]
    assert dfr.partial == (steps[-2], steps[-1])
    assert len(dfr.summaries[0]["metrics"]["ua_cumulative"]) == steps[-2]  # values stop where the run did
    md = render(tables, "md")
    assert f"| — | dfr[iterations=4 lr=0.01] | 0 | self-reported · partial {steps[-2]}/{steps[-1]} |" in md
    assert json.loads(render(tables, "json"))[0]["rows"][0]["partial"] == [steps[-2], steps[-1]]
    cli = run_cli("leaderboard", "build", str(copy), "--allow-partial", "--format", "csv")
    assert cli.returncode == 0 and "partial" in cli.stdout, cli.stderr


def test_sweep_runs_skips_done_and_writes_the_table(tmp_path: Path) -> None:
    args = ["sweep", "--methods", "original,finetune", "--seeds", "0,1", "--sequence", "mock", "--profile", "smoke",
            "--out", str(tmp_path / "r"), "--table", str(tmp_path / "board.md")]
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    assert len(list((tmp_path / "r").rglob("summary.json"))) == 4
    table = (tmp_path / "board.md").read_text()
    assert "| finetune | 0,1 |" in table and "| original | 0,1 |" in table
    again = run_cli(*args)  # everything is complete: nothing reruns
    assert again.returncode == 0 and again.stderr.count("already complete") == 4
    printed = run_cli("sweep", "--methods", "dfr", "--seeds", "0", "--print-commands")
    assert printed.stdout.strip().startswith("culbench run --method dfr --seed 0")


def test_sweep_modes_give_reference_rows(tmp_path: Path) -> None:
    printed = run_cli("sweep", "--methods", "uce", "--seeds", "0,1", "--modes", "sequential,independent",
                      "--print-commands")
    lines = printed.stdout.strip().splitlines()
    assert len(lines) == 4 and sum(line.endswith("--mode independent") for line in lines) == 2
    done = run_cli("sweep", "--methods", "original", "--seeds", "0", "--sequence", "mock", "--profile", "smoke",
                   "--modes", "independent", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "| original~independent | (defaults) | 1 |" in done.stdout
    assert (tmp_path / "mock@1" / "original~independent" / "smoke" / "seed0" / "summary.json").is_file()
    wrong = run_cli("sweep", "--methods", "uce", "--modes", "parallel", "--print-commands")
    assert wrong.returncode != 0 and "unknown mode 'parallel'" in wrong.stderr


def test_html_renders_and_sorts_in_headless_chromium(smoke_run: Path, dfr_mock_run: Path, tmp_path: Path) -> None:
    import subprocess

    import numpy as np
    from PIL import Image

    flags = chromium()
    out = tmp_path / "board.html"
    assert run_cli("leaderboard", "build", str(smoke_run), str(dfr_mock_run), "--format", "html",
                   "--out", str(out)).returncode == 0
    for fragment, first in (("#sort=1", ">dfr["), ("#sort=1,desc", ">original<")):
        dom = subprocess.run([*flags, "--dump-dom", f"file://{out}{fragment}"], capture_output=True, text=True,
                             timeout=120)
        assert dom.returncode == 0, dom.stderr[-2000:]
        assert dom.stdout.count("<tr class=") == 2  # both rows rendered by the browser
        other = ">original<" if first == ">dfr[" else ">dfr["
        assert dom.stdout.index(first) < dom.stdout.index(other), f"{fragment}: {first} should come first"
    shot = tmp_path / "shot.png"
    subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1200,900", f"file://{out}"],
                   capture_output=True, timeout=120, check=True)
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.std() > 10, "the screenshot is blank"


def test_sweep_grid_on_the_validation_split_is_never_ranked(tmp_path: Path) -> None:
    out = tmp_path / "tuning"
    done = run_cli("sweep", "--methods", "finetune", "--seeds", "0", "--sequence", "mock", "--profile", "smoke",
                   "--out", str(out), "--split", "val", "--grid", "finetune.iterations=1,2")
    assert done.returncode == 0, done.stderr
    runs = sorted(p.parent for p in out.rglob("summary.json"))
    assert len(runs) == 2 and all(p.parent.parent.name.endswith("~val") for p in runs)
    assert "| finetune | iterations=1 | 1 |" in done.stdout and "| finetune | iterations=2 | 1 |" in done.stdout
    assert done.stdout.count("**") >= 2  # the best H (ties included) is marked
    report = run_cli("report", str(out), "--out", str(tmp_path / "report"), "--no-plots")
    assert report.returncode == 0, report.stderr
    assert "finetune~val[iterations=1]" in (tmp_path / "report" / "report.md").read_text()
    board = run_cli("leaderboard", "build", str(out))
    assert board.returncode != 0 and "validation prompts" in board.stderr and "fix:" in board.stderr
    wrong = run_cli("sweep", "--methods", "finetune", "--grid", "dfr.lr=1e-4", "--print-commands")
    assert wrong.returncode != 0 and "not in --methods" in wrong.stderr


def _copy_run(run_dir: Path, root: Path) -> Path:
    out = run_dir.parents[3]  # <out>/<sequence>/<method>/<profile>/seed<N>
    target = root / run_dir.relative_to(out)
    shutil.copytree(run_dir, target)
    return target


def test_publish_rewrites_tables_and_readme_and_detects_staleness(smoke_run: Path, dfr_mock_run: Path,
                                                                  tmp_path: Path) -> None:
    import json

    root = tmp_path / "repo"
    (root / "leaderboard").mkdir(parents=True)
    (root / "README.md").write_text("# x\n\n<!-- leaderboard:start -->\nPLACEHOLDER\n<!-- leaderboard:end -->\n\nrest\n")
    _copy_run(smoke_run, root / "leaderboard" / "results")
    dfr = _copy_run(dfr_mock_run, root / "leaderboard" / "results")
    stale = run_cli("leaderboard", "publish", "--root", str(root), "--check")
    assert stale.returncode != 0 and "stale leaderboard files" in stale.stderr and "fix:" in stale.stderr
    done = run_cli("leaderboard", "publish", "--root", str(root), "--no-html")
    assert done.returncode == 0, done.stderr
    readme = (root / "README.md").read_text()
    assert "PLACEHOLDER" not in readme and readme.endswith("rest\n") and "| dfr[iterations=4 lr=0.01] | 0 |" in readme
    assert "| original | 0 | verified |" in readme
    assert run_cli("leaderboard", "publish", "--root", str(root), "--check").returncode == 0
    summary = json.loads((dfr / "summary.json").read_text())  # a result changes: the tables are stale
    summary["metrics"]["ua_cumulative"][-1] = 0.123
    (dfr / "summary.json").write_text(json.dumps(summary))
    again = run_cli("leaderboard", "publish", "--root", str(root), "--check")
    assert again.returncode != 0 and "leaderboard/leaderboard.md" in again.stderr


def test_committed_leaderboard_is_not_stale() -> None:
    from culbench.leaderboard.publish import stale

    root = Path(__file__).resolve().parents[1]
    if (root / "leaderboard" / "results").exists():
        assert stale(root) == [], "run `culbench leaderboard publish` and commit the result"
        # what a newcomer types in a clean checkout prints the committed table byte for byte
        built = run_cli("leaderboard", "build", cwd=root)
        assert built.returncode == 0, built.stderr
        assert built.stdout == (root / "leaderboard" / "leaderboard.md").read_text(encoding="utf-8")
    else:  # no published results: no generated tables may pretend otherwise
        assert not (root / "leaderboard" / "leaderboard.md").exists()


def test_sweep_leaderboard_set_is_every_builtin_but_retrain() -> None:
    from culbench.catalog import METHODS, method_role
    from culbench.leaderboard.publish import published_methods

    builtin = {e.name for e in METHODS.entries() if e.source == "builtin"}
    assert set(published_methods()) | {"retrain"} == builtin  # a new built-in joins the board
    assert method_role("retrain") == "oracle" and method_role("original") == "reference"
    assert {method_role(n) for n in builtin - {"retrain", "original"}} == {"ranked"}
    done = run_cli("sweep", "--methods", "leaderboard", "--seeds", "0", "--print-commands")
    assert done.returncode == 0, done.stderr
    listed = [line.split("--method ")[1].split()[0] for line in done.stdout.splitlines() if line]
    assert listed == published_methods() and "retrain" not in listed


def test_a_registered_class_declares_its_role() -> None:
    import pytest

    from culbench.api import Method
    from culbench.catalog import METHODS, method_role
    from culbench.errors import RegistryError

    class Scale(Method):
        role = "reference"

    class Odd(Method):
        role = "baseline"

    METHODS.register("tmp_scale_method", Scale)
    METHODS.register("tmp_odd_method", Odd)
    try:
        assert method_role("tmp_scale_method") == "reference"
        with pytest.raises(RegistryError, match="role 'baseline'"):
            method_role("tmp_odd_method")
    finally:
        METHODS.unregister("tmp_scale_method")
        METHODS.unregister("tmp_odd_method")


def test_published_records_only_runs_validate(smoke_run: Path, tmp_path: Path) -> None:
    from culbench.runfolder import committed_steps, read_json, step_dir

    slim = tmp_path / "leaderboard" / "results" / "run"
    shutil.copytree(smoke_run, slim)
    for k in committed_steps(slim):  # what leaderboard/results keeps: records, not step files
        for name in read_json(step_dir(slim, k) / "step.json")["files"]:
            (step_dir(slim, k) / name).unlink(missing_ok=True)
    done = run_cli("validate", str(slim))
    assert done.returncode == 0 and "records only" in done.stdout, done.stderr
    summary = json.loads((slim / "summary.json").read_text())
    summary["presence"][-1][0] = 0.5 if summary["presence"][-1][0] != 0.5 else 0.25  # a tampered record
    (slim / "summary.json").write_text(json.dumps(summary))
    bad = run_cli("validate", str(slim))
    assert bad.returncode != 0 and "presence matrix differs" in bad.stderr


def test_a_summary_written_before_per_prompt_hits_is_read_and_told_how_to_rebuild(smoke_run: Path,
                                                                                 tmp_path: Path) -> None:
    """An older full run: the leaderboard reads it (legacy intervals); validate names the fix,
    and rerunning the run's command rebuilds the summary with per-prompt hits."""
    from culbench.runner import run

    old = tmp_path / "mock@1" / "original" / "smoke" / "seed0"
    shutil.copytree(smoke_run, old)
    summary = json.loads((old / "summary.json").read_text())
    del summary["prompt_hits"], summary["prompt_images"]
    (old / "summary.json").write_text(json.dumps(summary))
    assert build([old])[0].rows[0].legacy_intervals
    bad = run_cli("validate", str(old))
    assert bad.returncode != 0 and "predates per-prompt hit counts" in bad.stderr, bad.stderr
    (old / "summary.json").unlink()
    assert run("original", sequence="mock", profile="smoke", out=tmp_path) == old
    assert "prompt_hits" in json.loads((old / "summary.json").read_text())
    assert not build([old])[0].rows[0].legacy_intervals


def test_gap_to_retrain_is_measured_against_the_oracle_row(tmp_path: Path) -> None:
    """A finished retrain row adds "Gap retrain": mean |P - P_oracle| over concepts at step 10."""
    import numpy as np

    from culbench.catalog import METHODS
    from culbench.config import config_hash, config_to_dict

    published = Path(__file__).resolve().parents[1] / "leaderboard" / "results" / "toy10@1"
    oracle_presence = {}
    for seed in (0, 1):  # stand-in oracle: the published `original` runs relabelled as retrain
        src, dst = published / "original" / "standard" / f"seed{seed}", tmp_path / "retrain" / f"seed{seed}"
        dst.mkdir(parents=True)
        summary = json.loads((src / "summary.json").read_text())
        defaults = METHODS.get("retrain").Config()
        summary.update(method="retrain", config_hash=config_hash(defaults))
        summary["presence"][-1][0] = 0.5 * seed  # seeds differ in one cell
        oracle_presence[seed] = np.array(summary["presence"])
        manifest = json.loads((src / "manifest.json").read_text())
        manifest["identity"]["method"].update(name="retrain", config=config_to_dict(defaults))
        (dst / "summary.json").write_text(json.dumps(summary))
        (dst / "manifest.json").write_text(json.dumps(manifest))
    dfr = published / "dfr" / "standard"
    table = build([tmp_path / "retrain", dfr])[0]
    rows = {r.label: r for r in table.rows}
    assert "gap_retrain" in [c.key for c in table.columns]
    oracle = np.mean(list(oracle_presence.values()), axis=0)  # steps × concepts
    gaps, areas = [], []
    for seed in (0, 1, 2):
        s = json.loads((dfr / f"seed{seed}" / "summary.json").read_text())
        assert s["concepts"] == summary["concepts"]
        curve = np.abs(np.array(s["presence"]) - oracle).mean(axis=1)  # the gap at every step
        gaps.append(curve[-1])
        areas.append(((curve[1:] + curve[:-1]) / 2).mean())
    dfr_row = next(r for label, r in rows.items() if label.startswith("dfr"))  # toy10@1's dfr settings
    assert abs(dfr_row.value("gap_retrain")[0] - np.mean(gaps)) < 1e-6 and np.mean(gaps) > 0.05
    assert abs(dfr_row.value("auc_gap_retrain")[0] - np.mean(areas)) < 1e-6
    assert 0 < np.mean(areas) < np.mean(gaps)  # the stand-in oracle is the base: dfr drifts away from it
    # the oracle's own seeds are compared with its other seeds: the floor (one cell differs by 0.5)
    n_concepts = oracle.shape[1]
    assert abs(rows["retrain"].value("gap_retrain")[0] - 0.5 / n_concepts) < 1e-6
    # ... only at the last step: its area is that step's half-trapezoid over K steps
    steps = oracle.shape[0] - 1
    assert abs(rows["retrain"].value("auc_gap_retrain")[0] - 0.5 / n_concepts / 2 / steps) < 1e-6
    assert "Gap retrain ↓" in render([table], "md") and "AUC gap retrain ↓" in render([table], "md")
    no_oracle = build([dfr])[0]  # without a retrain row the columns are absent
    assert not {"gap_retrain", "auc_gap_retrain"} & {c.key for c in no_oracle.columns}


def test_a_seed_run_on_several_device_types_is_left_out_of_the_compute_columns(tmp_path: Path) -> None:
    """A run whose steps ran partly on a GPU and partly on CPU has no comparable cost: the row's
    s/request and peak memory come from its other seeds, and its status says which was left out."""
    published = Path(__file__).resolve().parents[1] / "leaderboard" / "results" / "toy10@1" / "finetune" / "standard"
    for seed in (0, 1):
        src, dst = published / f"seed{seed}", tmp_path / f"seed{seed}"
        shutil.copytree(src, dst)
    mixed = json.loads((tmp_path / "seed1" / "summary.json").read_text())
    mixed["compute"].update(devices=["cpu", "cuda"], unlearn_seconds_median=1.0, peak_rss_mb=1.0)
    (tmp_path / "seed1" / "summary.json").write_text(json.dumps(mixed))
    alone = json.loads((tmp_path / "seed0" / "summary.json").read_text())["compute"]
    row = build([tmp_path])[0].rows[0]
    assert row.seeds == [0, 1] and row.mixed_devices == {1: ["cpu", "cuda"]}
    assert row.value("unlearn_seconds_median") == (alone["unlearn_seconds_median"],) * 3
    assert row.value("peak_rss_mb")[0] == alone["peak_rss_mb"] != 1.0
    assert row.value("ua_cumulative")[1] < row.value("ua_cumulative")[2]  # the other columns still use both seeds
    md = render(build([tmp_path]), "md")
    assert "seed 1 on cpu+cuda, not in compute" in md
    assert json.loads(render(build([tmp_path]), "json"))[0]["rows"][0]["mixed_devices"] == {"1": ["cpu", "cuda"]}
    (tmp_path / "seed0").rename(tmp_path.parent / f"{tmp_path.name}-seed0")  # only the mixed seed is left
    assert build([tmp_path])[0].rows[0].value("unlearn_seconds_median") == (None, None, None)


def _seeds_of(run_dir: Path, seeds: tuple[int, ...], root: Path) -> Path:
    """Copies of one run as the seeds ``seeds`` of a row."""
    for seed in seeds:
        target = root / f"seed{seed}"
        shutil.copytree(run_dir, target)
        summary = json.loads((target / "summary.json").read_text())
        summary["seed"] = seed
        (target / "summary.json").write_text(json.dumps(summary))
    return root


def test_a_row_ranks_only_with_three_seeds(dfr_mock_run: Path, tmp_path: Path) -> None:
    """Two seeds are shown, marked and unranked; the third seed makes the row rank."""
    two = build([_seeds_of(dfr_mock_run, (0, 1), tmp_path / "two")])[0]
    assert two.ranks == [None] and not two.best
    md = render([two], "md")
    assert "| — | dfr[iterations=4 lr=0.01] | 0,1 | self-reported · unranked: 2 seeds of 3 |" in md
    assert "**" not in md and "| 1 |" not in md
    row = json.loads(render([two], "json"))[0]["rows"][0]
    assert row["rank"] is None and row["too_few_seeds"] and not row["reference"]
    assert {r["rank"] for r in csv.DictReader(io.StringIO(render([two], "csv")))} == {"—"}
    three = build([_seeds_of(dfr_mock_run, (0, 1, 2), tmp_path / "three")])[0]
    assert three.ranks == [1] and "| 1 | dfr[iterations=4 lr=0.01] | 0,1,2 | self-reported |" in \
        render([three], "md")


def test_row_intervals_are_the_cluster_bootstrap_over_runs_and_prompts(dfr_mock_run: Path, tmp_path: Path) -> None:
    """A row's presence intervals come from stream.bootstrap over its runs' per-prompt hits."""
    import numpy as np

    from culbench.evaluation.stream import bootstrap, stream_metrics
    from culbench.evaluation.summary import prompt_hits_of
    from culbench.leaderboard.rows import REPLICATES

    row = build([_seeds_of(dfr_mock_run, (0, 1, 2), tmp_path)])[0].rows[0]
    assert not row.legacy_intervals
    s = row.summaries[0]
    runs = [prompt_hits_of(x) for x in row.summaries]

    def finals(r: int, P: np.ndarray) -> dict[str, float]:
        return {"ua": float(np.atleast_1d(stream_metrics(P, s["concepts"], s["roles"], s["forget_order"])
                                          ["ua_cumulative"])[-1])}

    expected = bootstrap(runs, finals, REPLICATES)["ua"][0]  # type: ignore[arg-type]
    value, low, high = row.value("ua_cumulative")
    assert [low, high] == expected and low <= value <= high


def test_runs_without_per_prompt_hits_fall_back_to_the_t_interval_and_say_so() -> None:
    """Summaries written before per-prompt hits were recorded (toy10@1) keep the t-interval over
    seeds, marked "legacy intervals"."""
    import numpy as np

    from culbench.leaderboard.rows import t_half_width

    published = Path(__file__).resolve().parents[1] / "leaderboard" / "results" / "toy10@1" / "dfr" / "standard"
    table = build([published])[0]
    row = table.rows[0]
    assert row.legacy_intervals and table.ranks == [1]
    finals = np.array([s["metrics"]["ua_cumulative"][-1] for s in row.summaries])
    value, low, high = row.value("ua_cumulative")
    assert abs(high - value - t_half_width(finals)) < 1e-12
    assert "verified · legacy intervals · tuned " in render([table], "md")
