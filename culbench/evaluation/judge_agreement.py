"""A run's main judge against a second judge on the same images: a sample of one step's
evaluation images (by default the final step's), regenerated from that step's saved weights with
the run's own evaluation prompts, seeds and sampler, then judged by both
(``evaluation.agreement`` scores them)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from culbench.errors import RunError
from culbench.runfolder.layout import MANIFEST, SAMPLES, WEIGHTS, step_dir

SECOND_JUDGE = "toyworld-clip-zeroshot"


def sample_items(run_dir: Path, step: int, seq: Any, profile: dict[str, Any],
                 per_concept: int) -> list[dict[str, Any]]:
    """``per_concept`` evaluation images per concept, evenly spaced over its prompt × seed list
    (all of them for 0): the step's ``samples.jsonl`` records when it is kept (with the verdict the
    run stored), else the profile's evaluation plan."""
    samples = step_dir(run_dir, step) / SAMPLES
    if samples.is_file():
        items = [json.loads(line) for line in samples.read_text().splitlines() if line.strip()]
    else:
        plan = seq.eval_items(profile.get("prompts_per_concept"), profile.get("seeds_per_prompt"))
        items = [{"concept": i.concept, "prompt": i.prompt, "seed": i.seed} for i in plan]
    by_concept: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        by_concept.setdefault(item["concept"], []).append(item)
    chosen = []
    for group in by_concept.values():
        take = len(group) if per_concept <= 0 else min(per_concept, len(group))
        chosen += [group[int(i)] for i in np.linspace(0, len(group) - 1, take).round()]
    return chosen


def step_model(run_dir: Path, step: int, manifest: dict[str, Any], seq: Any, device: str) -> Any:
    """The run's model after ``step`` (0: the base model), built as the run built it."""
    from culbench.catalog import MODELS
    from culbench.runfolder.weights import load_weights

    options = manifest["identity"]["model"]["options"]
    model = MODELS.get(seq.spec.model.backend)(device=device, **options)
    if step > 0:
        path = step_dir(run_dir, step) / WEIGHTS
        if not path.is_file():
            raise RunError(f"{run_dir} keeps no weights for step {step} ({path} is absent: "
                           "published runs carry none)",
                           "rerun the run with `culbench run` to regenerate them, "
                           "or pass --step 0 to compare the judges on the base model")
        model.load_state_dict(load_weights(path, model.state_dict()))
    model.unet.eval()
    return model


def run_judge(identity: dict[str, Any], seq: Any, device: str, extra: dict[str, Any] | None = None) -> Any:
    """The run's own judge (its identity's first evaluator), built with the sequence's judge
    options plus ``extra`` (the run's ``--judge-option`` values) and bound to the sequence."""
    from culbench.catalog import JUDGES

    name = identity["evaluators"][0]["name"]
    options = dict(seq.spec.judge.options) if name == seq.spec.judge.name else {}
    judge = JUDGES.get(name)(device=device, **{**options, **(extra or {})})
    judge.bind(seq.concepts, seq.roles)
    return judge


def judge_pairs(run_dir: Path, *, step: int | None = None, per_concept: int = 12,
                second: str = SECOND_JUDGE, second_options: dict[str, Any] | None = None,
                device: str = "cpu") -> dict[str, Any]:
    """Both judges' verdicts and readings on a sample of ``step``'s (default: the final step's)
    evaluation images of the run in ``run_dir``: its id, method, step, the pairs (one per image)
    and ``stored_match``, the share of the main judge's verdicts that equal the run's stored ones
    (1.0 when the images were regenerated exactly; None when the step kept no ``samples.jsonl``)."""
    from culbench.catalog import JUDGES
    from culbench.tasks import resolve_sequence

    run_dir = Path(run_dir)
    if not (run_dir / MANIFEST).is_file():
        raise RunError(f"{run_dir} is not a run folder (no {MANIFEST})",
                       "pass a run folder: <out>/<sequence@v>/<method>/<profile>/seed<n>")
    manifest = json.loads((run_dir / MANIFEST).read_text())
    identity = manifest["identity"]
    seq = resolve_sequence(identity["sequence"]["id"])
    step = manifest["steps_total"] if step is None else step
    profile = identity["profile"]
    items = sample_items(run_dir, step, seq, profile, per_concept)
    main_name = identity["evaluators"][0]["name"]
    second_judge = JUDGES.get(second)(device=device, **(second_options or {}))
    second_judge.bind(seq.concepts, seq.roles)
    judges = [run_judge(identity, seq, device), second_judge]
    model = step_model(run_dir, step, manifest, seq, device)
    sampler = {"steps": profile.get("sample_steps") or seq.spec.eval.sampler.steps,
               "guidance": seq.spec.eval.sampler.guidance}
    pairs, batch = [], int(profile.get("batch_size") or 64)
    for start in range(0, len(items), batch):
        chunk = items[start : start + batch]
        images = model.sample([i["prompt"] for i in chunk], [i["seed"] for i in chunk], **sampler)
        concepts = [seq.concepts[i["concept"]] for i in chunk]
        a, b = (judge(images, concepts) for judge in judges)
        for k, (item, concept) in enumerate(zip(chunk, concepts, strict=True)):
            read_a, read_b = ((v.detail[k] if v.detail else {}).get(concept.kind) for v in (a, b))
            pairs.append({"concept": concept.id, "kind": concept.kind, "seed": item["seed"],
                          "prompt": item["prompt"], "present_a": a.present[k],
                          "present_b": b.present[k], "read_a": read_a, "read_b": read_b,
                          "stored": item.get("present")})
    stored = [p["stored"] == p["present_a"] for p in pairs if p["stored"] is not None]
    return {"run_id": manifest.get("run_id", str(run_dir)), "method": identity["method"]["name"],
            "step": step, "judges": [main_name, second], "pairs": pairs,
            "stored_match": float(np.mean(stored)) if stored else None}
