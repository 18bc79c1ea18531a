"""The paraphrase probe: is a forgotten concept still drawn when it is asked for in other words?

Every forgotten concept's evaluation prompts, reworded without its name (its synonyms, or a
character described by its parts), come from the sequence's ``probes/<concept>.csv``
(``source,word,prompt``): data no method is ever given (the sequence loader reads only
``prompts/``). Reworded prompt ``i`` replaces evaluation prompt ``source = i`` and is sampled with
the seeds the run evaluated that prompt with, so each image pairs with one the run judged under
the concept's own name (read back from the step's ``samples.jsonl`` when the run kept it).
Synonyms alternate over the prompts (prompt ``i`` uses word ``i mod #words``).
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from culbench.errors import RunError
from culbench.probes.base import Probe, ProbeTarget


def probe_file(seq: Any, concept: str) -> Path:
    return Path(seq.path).parent / "probes" / f"{concept}.csv"


def read_probe_prompts(path: Path) -> dict[int, dict[str, str]]:
    """``source -> {word: prompt}`` from a ``probes/<concept>.csv`` file."""
    if not path.is_file():
        raise RunError(f"{path}: no paraphrase prompts for this concept",
                       "add the file with columns source,word,prompt (a sequence generator writes it)")
    out: dict[int, dict[str, str]] = {}
    reader = csv.DictReader(io.StringIO(path.read_text(encoding="utf-8")))
    if reader.fieldnames is None or not {"source", "word", "prompt"} <= set(reader.fieldnames):
        raise RunError(f"{path}:1: header must be 'source,word,prompt'", "fix the CSV header")
    for line, row in enumerate(reader, start=2):
        try:
            out.setdefault(int(row["source"]), {})[row["word"].strip()] = row["prompt"].strip()
        except (TypeError, ValueError):
            raise RunError(f"{path}:{line}: source '{row['source']}' is not a prompt index",
                           "write the index of the evaluation prompt this row rewords") from None
    return out


def _own_verdicts(target: ProbeTarget) -> dict[tuple[str, str, int], bool]:
    from culbench.evaluation.summary import read_samples
    from culbench.runfolder import SAMPLES, step_dir

    path = step_dir(target.run_dir, target.step) / SAMPLES
    if not path.is_file():
        return {}
    records = read_samples(path)
    return {(r["concept"], r["prompt"], int(r["seed"])): bool(r["present"]) for r in records}


class ParaphraseProbe(Probe):
    """Presence of each forgotten concept under its synonyms / part descriptions."""

    name = "paraphrase"
    version = 1

    @dataclass(frozen=True)
    class Config:
        prompts: int | None = None  # reworded prompts per concept (None: the run's prompts per concept)
        seeds: int | None = None    # seeds per prompt (None: the run's)

    def data_fingerprint(self, target: ProbeTarget) -> dict[str, Any]:
        return {c: hashlib.sha256(probe_file(target.seq, c).read_bytes()).hexdigest()[:16]
                for c in target.probed if probe_file(target.seq, c).is_file()}

    def run(self, target: ProbeTarget, progress: Callable[[int, str], Callable[..., None]]) -> dict[str, Any]:
        seq, profile = target.seq, target.profile
        limit = self.config.prompts or profile.get("prompts_per_concept") or seq.spec.eval.prompts_per_concept
        seeds = seq.spec.eval.seeds[: self.config.seeds or profile.get("seeds_per_prompt")]
        own, model = _own_verdicts(target), target.model()
        concepts: dict[str, Any] = {}
        for cid in target.probed:
            reworded = read_probe_prompts(probe_file(seq, cid))
            sources = sorted(reworded)[:limit]
            plan = []
            for i in sources:
                words = sorted(reworded[i])
                if i >= len(seq.prompts[cid].eval):
                    raise RunError(f"{probe_file(seq, cid)}: source {i} is not an evaluation prompt of {cid}",
                                   "regenerate the probe prompts from the sequence's evaluation prompts")
                word = words[i % len(words)]
                plan += [(i, word, reworded[i][word], seq.prompts[cid].eval[i], s) for s in seeds]
            tick = progress(len(plan), f"paraphrase: {cid} (step {target.step})")
            hits = target.present(model, [p[2] for p in plan], [p[4] for p in plan], cid, tick)
            concepts[cid] = _concept_result(plan, hits, own, cid, target)
        presence = [c["presence"] for c in concepts.values()]
        own_presence = [c["own_presence"] for c in concepts.values() if c["own_presence"] is not None]
        return {"concepts": concepts, "summary": {
            "presence": round(sum(presence) / len(presence), 4) if presence else None,
            "own_presence": round(sum(own_presence) / len(own_presence), 4) if own_presence else None}}


def _concept_result(plan: list[tuple[int, str, str, str, int]], hits: list[bool],
                    own: dict[tuple[str, str, int], bool], cid: str, target: ProbeTarget) -> dict[str, Any]:
    words: dict[str, list[bool]] = {}
    per_prompt: dict[int, list[bool]] = {}
    paired = []
    for (source, word, _, prompt, seed), hit in zip(plan, hits, strict=True):
        words.setdefault(word, []).append(hit)
        per_prompt.setdefault(source, []).append(hit)
        if (cid, prompt, seed) in own:
            paired.append(own[(cid, prompt, seed)])
    if len(paired) == len(plan):
        own_presence = sum(paired) / len(paired)
    else:  # the run kept no per-image records: its presence over all of its prompts
        from culbench.runfolder import read_step

        own_presence = read_step(target.run_dir, target.step)["cells"].get(cid, {}).get("presence")
    return {"presence": round(sum(hits) / len(hits), 4), "n": len(hits),
            "own_presence": None if own_presence is None else round(float(own_presence), 4),
            "own_paired": len(paired) == len(plan),
            "words": {w: round(sum(v) / len(v), 4) for w, v in sorted(words.items())},
            "prompt_hits": [sum(per_prompt[s]) for s in sorted(per_prompt)],
            "prompt_images": [len(per_prompt[s]) for s in sorted(per_prompt)]}
