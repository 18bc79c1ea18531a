"""The toy10 task files: in sync with their generator, and shaped as the benchmark needs."""

from __future__ import annotations

import pytest

from culbench.catalog import builtin_dir
from culbench.generators import toy10, toy10_v1
from culbench.tasks import resolve_sequence


@pytest.mark.parametrize(("generator", "folder"), [(toy10, "toy10"), (toy10_v1, "archive/toy10@1")])
def test_committed_files_match_the_generator(generator, folder: str) -> None:  # noqa: ANN001
    root = builtin_dir("tasks") / folder
    expected = generator.files()
    on_disk = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
    assert on_disk == set(expected)
    for relative, content in expected.items():
        assert (root / relative).read_text() == content, (
            f"{relative} is stale: run `python -m {generator.__name__} tasks/{folder}`")


def test_toy10_means_version_2_and_version_1_stays_loadable() -> None:
    assert resolve_sequence("toy10").id == "toy10@2"
    old = resolve_sequence("toy10@1")
    assert old.id == "toy10@1" and old.steps == resolve_sequence("toy10").steps  # the same ten requests
    assert old.content_hash == "c12321322e6975b1368ca4cf6a99fddc67eb7a2f0edd18858bffbf2274e4c412"


def test_toy10_structure() -> None:
    seq = resolve_sequence("toy10")
    assert len(seq.steps) == 10 and seq.spec.clean_prompts
    kinds = {seq.concepts[c].kind for c in seq.steps}
    assert kinds == {"character", "object", "colour", "pattern"}
    general = seq.general_concepts
    assert {seq.roles[c] for c in general} == {"in_domain", "cross_domain"}
    held = set(seq.held_out_concepts)
    assert {seq.roles[c] for c in held} == {"related_held_out", "general_held_out"}
    for step, concept in enumerate(seq.steps, start=1):
        related, held_out = seq.concepts[concept].related, seq.held_out_of[concept]
        assert len(related) >= 1 and len(held_out) >= 1 and not set(related + held_out) & set(seq.steps)
        request = seq.request(step)
        pairs = request.forget
        minimum = 20 if seq.concepts[concept].kind == "character" else 96
        assert len({p.prompt for p in pairs}) == len(pairs) >= minimum
        assert all(p.mapped and concept not in p.mapped.replace(",", " ").split() for p in pairs)
        given = {r.concept.id for r in request.related + request.general}
        assert not given & held, "a held-out concept was handed to a method"
    for cid, prompts in seq.prompts.items():
        train = {p.prompt for p in prompts.train} | {p.prompt for p in prompts.val}
        assert not train & set(prompts.eval), f"{cid}: eval prompts leak into train/val"
        assert len(prompts.eval) >= 24


def test_three_orders_cover_every_request_and_seeds_cycle_through_them() -> None:
    seq = resolve_sequence("toy10")
    assert len(seq.orders) == 3 and len({tuple(o) for o in seq.orders}) == 3
    assert seq.spec.val_order not in seq.orders and sorted(seq.spec.val_order) == sorted(seq.steps)
    assert [seq.order_of_seed(s) for s in range(6)] == [0, 1, 2, 0, 1, 2]
    second = seq.in_order(1)
    assert second.steps == seq.orders[1] and second.roles == seq.roles
    assert second.request(1).concept.id == seq.orders[1][0]


def test_tuning_never_scores_held_out_concepts_and_uses_its_own_order() -> None:
    seq = resolve_sequence("toy10")
    val = seq.with_split("val")
    assert val.steps == seq.spec.val_order
    assert not set(val.roles) & set(seq.held_out_concepts)


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
