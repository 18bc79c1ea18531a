"""Generators of the built-in task files (data under ``tasks/``), each deterministic:

* ``toy10``: the embedded ToyWorld sequence (``python -m culbench.generators.toy10 tasks/toy10``);
* ``sd15``: DFR's 10-step sequence on Stable Diffusion 1.5 (``python -m culbench.generators.sd15
  tasks/dfr10-sd15``);
* ``unlearncanvas``: the UnlearnCanvas sequences ``uc-styles12`` and ``uc-objects12``
  (``python -m culbench.generators.unlearncanvas tasks``).

A test per generator fails when the committed files differ from what it writes. Loading task
files is ``culbench.tasks``'s job.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path


def prompt_csv(rows: list[tuple[str, str, str]]) -> str:
    """A ``prompts/<id>.csv`` file's text from ``(split, prompt, mapped)`` rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["split", "prompt", "mapped"])
    writer.writerows(rows)
    return buffer.getvalue()


def rows_of(text: str) -> list[tuple[str, str, str]]:
    """``(split, prompt, mapped)`` rows of a ``prompts/<id>.csv`` file's text (``prompt_csv``'s inverse)."""
    return [(r["split"], r["prompt"], r["mapped"]) for r in csv.DictReader(io.StringIO(text))]


def probe_csv(rows: list[tuple[int, str, str]]) -> str:
    """A ``probes/<id>.csv`` file's text from ``(source, word, prompt)`` rows: evaluation prompt
    ``source`` of a forget concept reworded by ``word`` (``culbench.probes.paraphrase``)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["source", "word", "prompt"])
    writer.writerows(rows)
    return buffer.getvalue()


def write_task_files(root: Path, files: dict[str, str]) -> None:
    """Write a generator's ``{relative path: text}`` into a task folder."""
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
