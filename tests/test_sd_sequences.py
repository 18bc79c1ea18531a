"""dfr10-sd15 task data and the CLIP zero-shot judge plumbing (with an injected tiny CLIP)."""

from __future__ import annotations

from pathlib import Path

import torch

from culbench.generators import sd15
from culbench.catalog import builtin_dir
from culbench.tasks import resolve_sequence


def test_committed_files_match_the_generator() -> None:
    root = builtin_dir("tasks") / "dfr10-sd15"
    for relative, content in sd15.files().items():
        assert (root / relative).read_text(encoding="utf-8") == content, f"{relative} is stale: rerun the generator"


def test_dfr10_structure() -> None:
    seq = resolve_sequence("dfr10-sd15")
    assert seq.steps == ["pikachu", "brad_pitt", "dog", "golf_ball", "van_gogh_style", "apple", "spiderman",
                         "lionel_messi", "cartoon_style", "banana"]
    assert len(seq.general_concepts) >= 24
    for step, cid in enumerate(seq.steps, 1):
        request = seq.request(step)
        assert len(seq.concepts[cid].related) >= 3 and request.anchor is not None
        assert len(request.forget) >= 100
        assert all(request.anchor.name in p.mapped and seq.concepts[cid].name not in p.mapped for p in request.forget)
    for cid, prompts in seq.prompts.items():
        assert not {p.prompt for p in prompts.train + prompts.val} & set(prompts.eval), cid


def test_clip_zeroshot_judge_plumbing_with_a_tiny_clip() -> None:
    from culbench.evaluation.clip_judge import ClipZeroShotJudge
    from culbench.toyworld.clip import ToyWorldCLIP

    seq = resolve_sequence("toy10@1")
    judge = ClipZeroShotJudge(embedder=ToyWorldCLIP(), template="a {name} shape")
    judge.bind(seq.concepts, seq.roles)
    assert {c.id for c in judge.groups["red"]} == {"red", "orange", "pink", "brown"}
    concepts = [seq.concepts[c] for c in ("red", "orange", "square", "dark")]
    out = judge(torch.rand(4, 3, 32, 32), concepts)
    assert len(out.present) == 4 and all(0 <= s <= 1 for s in out.score)
    assert judge.fingerprint()["embedder"]["name"] == "toyworld-clip"
