"""``culbench run``: run one method through a sequence, resumably."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from culbench.cli.console import console, err_console
from culbench.spec import DEFAULT_OUT, DEFAULT_PROFILE

EXAMPLES = """Examples:

  culbench run --method dfr

  culbench run --method original --profile smoke

  culbench run --method dfr --seed 1 --set dfr.lr=3e-4 --out results

  culbench run --method dfr --set dfr.iterations=40 --split val --out tuning   # choose settings on val prompts

  culbench run --method my_plugin --sequence mock --profile smoke

  culbench run --method retrain --step 3 --step 4 --device cuda   # steps of a from-scratch method, one process each
"""


def run(
    method: Annotated[str, typer.Option("--method", "-m", help="Registered method (culbench ls methods).")],
    sequence: Annotated[str, typer.Option(help="Sequence name, name@version or path to sequence.yaml (default: toy10).")] = "",
    seed: Annotated[int, typer.Option(help="Run seed (method randomness).")] = 0,
    profile: Annotated[str, typer.Option(help="smoke | standard | standard-6x6 | full (culbench ls profiles).")] = DEFAULT_PROFILE,
    out: Annotated[Path, typer.Option(help="Results root directory (culbench sweep's too).")] = DEFAULT_OUT,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Config override METHOD.FIELD=VALUE (repeatable).")] = None,
    device: Annotated[str, typer.Option(help="torch device, e.g. cpu or cuda.")] = "cpu",
    threads: Annotated[int | None, typer.Option(help="torch CPU threads (default: all cores).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or progress lines (off a terminal, progress is a line a minute: CULBENCH_PROGRESS_EVERY=SECONDS).")] = False,
    mode: Annotated[str, typer.Option(help="sequential (the benchmark) | independent (each request from the base model) | simultaneous (concepts 1..k at once from the base) | merged-uniform, merged-ta, merged-ties (step k: requests 1..k each served from the base, merged): reference rows.")] = "sequential",
    model: Annotated[str | None, typer.Option(help="Model weights for backends that take them: an SD folder or cached hub id.")] = None,
    model_option: Annotated[list[str] | None, typer.Option(help="Backend option KEY=VALUE (repeatable), e.g. dtype=bfloat16.")] = None,
    judge: Annotated[str | None, typer.Option(help="Evaluate with this judge instead of the sequence's (culbench ls judges), e.g. vlm-yesno.")] = None,
    fid: Annotated[str | None, typer.Option(help="FID features: inception (clean-fid's network, --fid-option path=FILE); default: the judge's features.")] = None,
    fid_option: Annotated[list[str] | None, typer.Option(help="FID feature option KEY=VALUE (repeatable), e.g. path=/models/inception-2015-12-05.pt.")] = None,
    judge_option: Annotated[list[str] | None, typer.Option(help="Judge option KEY=VALUE (repeatable), e.g. pretrained=/path/clip.pt.")] = None,
    split: Annotated[str, typer.Option(help="eval (the benchmark) | val: evaluate on the validation prompts to choose hyper-parameters (run labelled ~val, never ranked).")] = "eval",
    evaluate: Annotated[str, typer.Option(help="all (every step, the benchmark) | ends: evaluate only the base and the final model (run labelled ~ends; what a final-step number such as tuning's H needs).")] = "all",
    eval_cache: Annotated[bool, typer.Option(help="Reuse the evaluation of bit-identical weights (step 0 of every run) from OUT/.cache/eval.")] = True,
    step: Annotated[list[int] | None, typer.Option("--step", help="Compute only this step (repeatable; 0 = the base model), from the base model: for methods that train from scratch (retrain), so several processes can fill one run at once.")] = None,
    dry_run: Annotated[bool, typer.Option(help="Print the plan (requests, images, time estimate from one timed batch) and exit.")] = False,
) -> None:
    """Run METHOD through every deletion request of a sequence, evaluating after each step.

    Rerunning the same command resumes after the last committed step.
    """
    from culbench.cli.progress import open_progress
    from culbench.runner import DEFAULT_SEQUENCE, Hooks, RunSpec, run_spec

    spec = RunSpec(
        method, sequence=sequence or DEFAULT_SEQUENCE, seed=seed, profile=profile, out=out,
        overrides=tuple(set_ or ()), device=device, threads=threads, mode=mode, split=split, evaluate=evaluate, judge=judge,
        model_options=_model_options(model, model_option), judge_options=_model_options(None, judge_option),
        fid=fid, fid_options=_model_options(None, fid_option), eval_cache=eval_cache,
        steps=tuple(step) if step else None,
    )
    if dry_run:
        from culbench.plan import dry_run as make_plan

        for line in make_plan(spec).lines():
            console.print(line, highlight=False, markup=False, soft_wrap=True)
        return
    with open_progress(err_console, quiet) as (progress, log):
        warn = lambda m: err_console.print(f"warning: {m}", highlight=False, soft_wrap=True)  # noqa: E731
        run_dir = run_spec(spec, Hooks(progress, log, warn, ["culbench", *sys.argv[1:]]))
    _print_result(run_dir)


def _model_options(model: str | None, items: list[str] | None) -> dict[str, object]:
    """``--model`` and ``--model-option k=v`` as backend options (ints, floats, bools parsed)."""
    import yaml

    from culbench.errors import ConfigError

    options: dict[str, object] = {"model": model} if model else {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"bad --model-option '{item}'", "write KEY=VALUE, e.g. --model-option dtype=bfloat16")
        options[key.strip()] = yaml.safe_load(value)
    return options


def _print_result(run_dir: Path) -> None:
    import json

    summary = run_dir / "summary.json"
    console.print(f"run directory: {run_dir}", highlight=False, soft_wrap=True)
    if not summary.exists():
        return
    from culbench.profiles import caveat

    record = json.loads(summary.read_text())
    metrics = record["metrics"]

    def last(name: str) -> str:
        values = [v for v in metrics.get(name, []) if v is not None]
        return f"{values[-1]:.3f}" if values else "n/a"

    held = [f"held-out related {last('retention_related_held_out')}  held-out far "
            f"{last('retention_general_held_out')}  "] if metrics.get("retention_related_held_out") else []
    h = metrics.get("headline_h")
    headline = f"H {h:.3f} " if isinstance(h, float) else ""
    console.print(
        f"final: cumulative UA {last('ua_cumulative')}  related retention "
        f"{last('retention_related')}  general retention {last('retention_general')}  {''.join(held)}"
        f"{headline}(base-normalised)", highlight=False, soft_wrap=True,
    )
    if caveat(record.get("profile", "")):
        console.print(caveat(record["profile"]), style="yellow", highlight=False, soft_wrap=True)
