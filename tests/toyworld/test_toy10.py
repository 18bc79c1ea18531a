"""The toy10 task files: in sync with their generator, and shaped as the benchmark needs."""

from __future__ import annotations

from pathlib import Path

from culbench.catalog import builtin_dir
from culbench.tasks import resolve_sequence
from culbench.generators import toy10


def test_committed_files_match_the_generator() -> None:
    root = builtin_dir("tasks") / "toy10"
    expected = toy10.files()
    on_disk = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
    assert on_disk == set(expected)
    for relative, content in expected.items():
        assert (root / relative).read_text() == content, (
            f"{relative} is stale: run `python -m culbench.generators.toy10 tasks/toy10`")


def test_toy10_structure() -> None:
    seq = resolve_sequence("toy10")
    assert seq.id == "toy10@1" and len(seq.steps) == 10
    kinds = {seq.concepts[c].kind for c in seq.steps}
    assert kinds == {"character", "object", "colour", "pattern"}
    general = seq.general_concepts
    assert {seq.roles[c] for c in general} == {"in_domain", "cross_domain"}
    assert len(general) >= 10
    for step, concept in enumerate(seq.steps, start=1):
        related = seq.concepts[concept].related
        assert len(related) >= 3 and not set(related) & set(seq.steps)
        request = seq.request(step)
        pairs = request.forget
        minimum = 32 if seq.concepts[concept].kind == "character" else 100
        assert len({p.prompt for p in pairs}) == len(pairs) >= minimum
        assert all(p.mapped and concept not in p.mapped.replace(",", " ").split() for p in pairs)
    for cid, prompts in seq.prompts.items():
        train = {p.prompt for p in prompts.train} | {p.prompt for p in prompts.val}
        assert not train & set(prompts.eval), f"{cid}: eval prompts leak into train/val"
        assert len(prompts.eval) >= 12


def test_mapped_prompts_use_the_anchor_and_keep_context() -> None:
    from culbench.toyworld.data import scene_from_prompt

    seq = resolve_sequence("toy10")
    request = seq.request(3)  # red
    assert request.concept.id == "red" and request.anchor is not None and request.anchor.id == "green"
    for pair in request.forget:
        before, after = scene_from_prompt(pair.prompt).labels(), scene_from_prompt(pair.mapped).labels()
        assert after["colour"] == "green"
        assert {k: v for k, v in before.items() if k != "colour"} == {k: v for k, v in after.items() if k != "colour"}


def test_judge_reuses_its_pass_for_the_features_of_the_images_it_just_judged() -> None:
    import torch

    from culbench.toyworld.judge import ToyWorldJudge

    judge = ToyWorldJudge()
    seq = resolve_sequence("toy10")
    images = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    concepts = [seq.concepts[c] for c in list(seq.concepts)[:6]]
    out = judge(images, concepts)
    with torch.no_grad():
        fresh = judge.net.embed(images)
        logits = judge.net(images)
    assert torch.equal(judge.features(images), fresh)  # reused, bit for bit
    for i, concept in enumerate(concepts):
        head = logits[concept.kind][i]
        assert out.present[i] == (int(head.argmax()) == judge_index(concept))
    other = images.clone()
    assert torch.equal(judge.features(other), fresh)  # another tensor: computed anew, same values
    images.mul_(0.5)  # edited in place: the kept pass is stale and must not be used
    with torch.no_grad():
        assert torch.equal(judge.features(images), judge.net.embed(images))


def judge_index(concept) -> int:  # noqa: ANN001
    from culbench.toyworld.judge import HEADS

    return HEADS[concept.kind].index(concept.id)
