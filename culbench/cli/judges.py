"""``culbench judges agree``: how far a run's judge agrees with a second judge (Cohen's κ)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from culbench.cli.console import console

EXAMPLES = """Examples:

  culbench judges agree results/toy10@1/esd/smoke/seed0

  culbench judges agree results/toy10@1/*/standard/seed0 --per-concept 6 --out judges.md

  culbench judges agree RUN --step 0 --second-option version=2    # base model, v2 CLIP weights
"""

app = typer.Typer(help="Compare judges on the same images.", no_args_is_help=True)
COLUMNS = ("n", "presence_a", "presence_b", "agreement", "kappa", "agreement_read", "kappa_read")
HEADINGS = ("images", "P main", "P second", "agree", "κ", "agree (reading)", "κ (reading)")


def _options(values: list[str] | None) -> dict[str, object]:
    """``--second-option k=v`` as judge options (ints, floats, bools parsed)."""
    import yaml

    from culbench.errors import ConfigError

    options: dict[str, object] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"bad --second-option '{item}'",
                              "write KEY=VALUE, e.g. --second-option version=2")
        options[key.strip()] = yaml.safe_load(value)
    return options


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "—" if value != value else f"{value:.3f}"
    return str(value)


def _lines(title: str, rows: list[dict[str, object]]) -> list[str]:
    head = "| " + " | ".join(("kind", *HEADINGS)) + " |"
    body = ["| " + " | ".join([str(r["kind"]), *(_cell(r[c]) for c in COLUMNS)]) + " |"
            for r in rows]
    return [f"### {title}", "", head, "|" + "---|" * (len(COLUMNS) + 1), *body, ""]


Runs = Annotated[list[Path], typer.Argument(help="Run folders (the final step keeps its weights).")]
Step = Annotated[int | None, typer.Option(help="Step to regenerate (default: final; 0: base).")]
PerConcept = Annotated[int, typer.Option(help="Evaluation images per concept (0: all).")]
Second = Annotated[str, typer.Option(help="The second judge (`culbench ls judges`).")]
SecondOption = Annotated[list[str] | None, typer.Option(help="KEY=VALUE second judge option.")]
Device = Annotated[str, typer.Option(help="torch device.")]
Out = Annotated[Path | None, typer.Option(help="Markdown tables here, pairs as .json.")]


@app.command("agree", epilog=EXAMPLES)
def agree(runs: Runs, step: Step = None, per_concept: PerConcept = 12,
          second: Second = "toyworld-clip-zeroshot", second_option: SecondOption = None,
          out: Out = None, device: Device = "cpu") -> None:
    """Regenerate a sample of each run's final-step evaluation images from its saved weights, judge
    them with the run's judge and a second judge, and print raw agreement and Cohen's κ per concept
    kind (on verdicts: does the image show its concept; on readings: which value of the kind each
    judge sees), per run and pooled per method."""
    from culbench.evaluation.agreement import agreement_rows
    from culbench.evaluation.judge_agreement import judge_pairs

    results = [judge_pairs(run, step=step, per_concept=per_concept, second=second,
                           second_options=_options(second_option), device=device) for run in runs]
    lines = ["# Judge agreement", "",
             f"Main judge (each run's own) against `{second}`; κ = Cohen's κ. "
             "Regenerated from each run's weights.", ""]
    methods: dict[str, list[dict[str, object]]] = {}
    for result in results:
        methods.setdefault(result["method"], []).extend(result["pairs"])
        match = result["stored_match"]
        note = "" if match is None else f" (main judge matches the stored verdicts on {match:.3f})"
        title = f"{result['run_id']} · step {result['step']}{note}"
        lines += _lines(title, agreement_rows(result["pairs"]))
    for method, pairs in methods.items():
        lines += _lines(f"method {method} (pooled over its runs)", agreement_rows(pairs))
    console.print("\n".join(lines), highlight=False, soft_wrap=True, markup=False)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("\n".join(lines), encoding="utf-8")
        out.with_suffix(".json").write_text(json.dumps(results, indent=1), encoding="utf-8")
        console.print(f"wrote {out} and {out.with_suffix('.json')}", highlight=False,
                      soft_wrap=True)
