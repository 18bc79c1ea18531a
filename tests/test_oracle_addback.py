"""The retrain oracle's add-back recipe: one prior trained without every concept the sequence
forgets, shared by every run and step, fine-tuned at step k on data without the concepts forgotten
by then; and the shared store it keeps the prior in."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from culbench.api import Budget, CulbenchError, MemoryStore, Method, StepContext, step_seed
from culbench.catalog import METHODS, MODELS
from culbench.errors import RunError
from culbench.profiles import get_profile
from culbench.runfolder import SharedStore
from culbench.runner import run
from culbench.tasks import resolve_sequence
from culbench.toyworld import train as recipe_code


def test_add_back_never_shows_a_model_a_concept_forgotten_by_its_step(monkeypatch: pytest.MonkeyPatch) -> None:
    seq, prof = resolve_sequence("toy10"), get_profile("smoke")
    first, second = seq.steps[:2]
    cls = METHODS.get("retrain")
    renders: list[tuple[int, tuple[str, ...]]] = []
    render = recipe_code.render_training_set
    monkeypatch.setattr(recipe_code, "render_training_set", lambda recipe, exclude, named=(): renders.append(
        (recipe.seed, tuple(sorted(named)))) or render(recipe, exclude, named))
    store = MemoryStore()

    def after(step: int, run_seed: int, without: tuple[str, ...] = (first, second)) -> dict:
        model = MODELS.get(seq.spec.model.backend)(device="cpu", **seq.spec.model.options)
        ctx = StepContext(step=step, seed=step_seed(run_seed, step), run_seed=run_seed, shared=store,
                          budget=Budget(prof.max_iterations, prof.max_samples))
        config = cls.Config(prior_without=without)
        return cls(config).unlearn(model, seq.request(step), ctx).state_dict()

    one = after(1, 5)
    assert renders == [(0, tuple(sorted((first, second)))), (step_seed(5, 1), (first,))]  # prior, then add-back
    assert len(store.entries) == 1 and next(iter(store.entries)).startswith("prior-")
    two = after(2, 5)  # every listed concept forgotten: the prior itself, not trained again
    assert len(renders) == 2
    assert all(torch.equal(v, after(2, 6)[k]) for k, v in two.items())  # one prior for every run seed
    assert any(not torch.equal(v, two[k]) for k, v in one.items())
    with pytest.raises(CulbenchError, match=f"leaves out {first}, forgotten by step 1"):
        after(1, 5, without=(second,))


class _Shares(Method):
    """Test-only: counts its steps in the shared store."""

    def unlearn(self, model, request, ctx):  # noqa: ANN001, ANN201
        with ctx.shared.locked("count"):
            ctx.shared.save("count", (ctx.shared.load("count") or 0) + 1)
        return model


def test_the_runner_gives_every_run_of_a_results_root_one_shared_store(tmp_path: Path) -> None:
    METHODS.register("shares-test-only")(_Shares)
    try:
        for seed in (0, 1):
            run("shares-test-only", sequence="mock", profile="smoke", out=tmp_path, threads=1, seed=seed)
    finally:
        METHODS._entries.pop("shares-test-only", None)
    store = SharedStore(tmp_path / ".cache" / "shared" / "shares-test-only")
    assert store.load("count") == 2 * len(resolve_sequence("mock").steps)


def test_a_damaged_shared_entry_is_recomputed_and_bad_keys_are_refused(tmp_path: Path) -> None:
    store = SharedStore(tmp_path)
    store.save("prior-1", {"w": torch.ones(2)})
    assert torch.equal(store.load("prior-1")["w"], torch.ones(2))
    store.path("prior-1").write_bytes(b"half-written")
    assert store.load("prior-1") is None and (tmp_path / "prior-1.pt.damaged").is_file()
    store.discard("prior-1")
    with pytest.raises(RunError, match="not a plain file name"):
        store.save("../escape", 1)


def test_a_published_entry_is_read_when_the_results_root_has_none_and_checked(tmp_path: Path) -> None:
    """Shipped entries (``culbench/published/<method>/``) stand in for a missing local one, after
    their sha256 check; a local entry wins; an edited shipped file stops the run with one line."""
    from culbench.runfolder.atomic import sha256_file

    shipped = tmp_path / "published"
    SharedStore(shipped).save("prior-2", {"w": torch.full((2,), 3.0)})
    (shipped / "SHA256SUMS").write_text(f"{sha256_file(shipped / 'prior-2.pt')}  prior-2.pt\n")
    store = SharedStore(tmp_path / "root", published=shipped)
    assert torch.equal(store.load("prior-2")["w"], torch.full((2,), 3.0)) and store.load("other") is None
    store.save("prior-2", {"w": torch.zeros(2)})
    assert torch.equal(store.load("prior-2")["w"], torch.zeros(2))
    store.discard("prior-2")
    (shipped / "prior-2.pt").write_bytes((shipped / "prior-2.pt").read_bytes() + b"x")
    with pytest.raises(RunError, match="reinstall culbench"):
        store.load("prior-2")


def test_add_back_focus_oversamples_the_concepts_put_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """``addback_focus``: the fine-tune's rows that name a concept put back at step k make about that
    share of its data; the prior (and a 0 focus) see the data as drawn."""
    from culbench.toyworld.captions import caption_concepts

    seq, prof = resolve_sequence("toy10"), get_profile("smoke")
    first, second = seq.steps[:2]
    seen: list[tuple[float, int]] = []  # (share of rows naming `second`, rows) of each training set
    train = recipe_code.train_unet

    def spy(latents, captions, recipe, **kwargs):  # noqa: ANN001, ANN003, ANN202
        seen.append((sum(second in caption_concepts(c) for c in captions) / len(captions), len(captions)))
        return train(latents, captions, recipe, **kwargs)

    monkeypatch.setattr(recipe_code, "train_unet", spy)
    cls = METHODS.get("retrain")
    for focus in (0.0, 0.5):
        model = MODELS.get(seq.spec.model.backend)(device="cpu", **seq.spec.model.options)
        ctx = StepContext(step=1, seed=0, run_seed=0, shared=MemoryStore(),
                          budget=Budget(prof.max_iterations, None))  # 2 steps, every one of the 400 scenes
        cls(cls.Config(prior_without=(first, second), addback_focus=focus, n_images=400)).unlearn(
            model, seq.request(1), ctx)
    prior, plain, focused = seen[0], seen[1], seen[3]  # each run: its prior, then its add-back
    assert prior[0] == 0.0 and 0.0 < plain[0] < 0.3  # the prior never sees it; as drawn: a minority
    assert abs(focused[0] - 0.5) < 0.1 and focused[1] > plain[1]  # oversampled to about half
    with pytest.raises(CulbenchError, match=r"addback_focus=1.0 and addback_rehearse=0.0 must be >= 0"):
        cls(cls.Config(prior_without=(first, second), addback_focus=1.0)).unlearn(model, seq.request(1), ctx)


def test_the_chain_puts_back_one_concept_per_link_latest_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """``addback_chain``: step k's model is step k+1's fine-tuned on data without the concepts forgotten
    by step k, so each link puts back one concept (the one forgotten at step k+1); the links are
    shared, so a later step of the same run trains nothing."""
    seq, prof = resolve_sequence("toy10"), get_profile("smoke")
    order = tuple(seq.steps[:3])
    cls = METHODS.get("retrain")
    renders: list[tuple[str, ...]] = []
    render = recipe_code.render_training_set
    monkeypatch.setattr(recipe_code, "render_training_set", lambda recipe, exclude, named=(): renders.append(
        tuple(named)) or render(recipe, exclude, named))
    store = MemoryStore()

    def after(step: int, chain_order: tuple[str, ...] = order) -> dict:
        model = MODELS.get(seq.spec.model.backend)(device="cpu", **seq.spec.model.options)
        ctx = StepContext(step=step, seed=step_seed(0, step), run_seed=0, shared=store, order=chain_order,
                          budget=Budget(prof.max_iterations, prof.max_samples))
        config = cls.Config(prior_without=order, addback_chain=True)
        return cls(config).unlearn(model, seq.request(step), ctx).state_dict()

    one = after(1)
    assert [sorted(r) for r in renders] == [sorted(order), sorted(order[:2]), sorted(order[:1])]
    assert sum(key.startswith("chain-") for key in store.entries) == 2
    two = after(2)  # step 2's model is the first link, already trained
    assert len(renders) == 3 and any(not torch.equal(v, two[k]) for k, v in one.items())
    with pytest.raises(CulbenchError, match="needs a sequential run"):
        after(1, chain_order=(order[1], order[0], order[2]))


class _Peeks(Method):
    """Test-only: records the deletion order the runner hands it."""

    seen: list[tuple[str, ...]] = []

    def unlearn(self, model, request, ctx):  # noqa: ANN001, ANN201
        type(self).seen.append(ctx.order)
        return model


def test_only_an_oracle_is_told_the_requests_still_to_come(tmp_path: Path) -> None:
    class Oracle(_Peeks):
        role = "oracle"
        seen: list[tuple[str, ...]] = []

    class Ranked(_Peeks):
        seen: list[tuple[str, ...]] = []

    steps = tuple(resolve_sequence("mock").steps)
    for name, cls in (("oracle-test-only", Oracle), ("ranked-test-only", Ranked)):
        METHODS.register(name)(cls)
        try:
            run(name, sequence="mock", profile="smoke", out=tmp_path, threads=1)
        finally:
            METHODS._entries.pop(name, None)
    assert Oracle.seen == [steps] * len(steps) and Ranked.seen == [()] * len(steps)


def test_a_chain_link_rehearses_the_concepts_earlier_links_put_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """``addback_rehearse`` with ``addback_rehearse_of=all``: a link's rows naming the concept it puts back
    make about ``addback_focus`` of its data, and those naming a concept an earlier link put back about
    ``addback_rehearse``."""
    from culbench.toyworld.captions import caption_concepts

    seq, prof = resolve_sequence("toy10"), get_profile("smoke")
    order = tuple(seq.steps[:3])
    shares: list[tuple[float, float]] = []  # per training set: rows naming order[1], then order[2] (not order[1])
    train = recipe_code.train_unet

    def spy(latents, captions, recipe, **kwargs):  # noqa: ANN001, ANN003, ANN202
        named = [caption_concepts(c) for c in captions]
        shares.append((sum(order[1] in n for n in named) / len(named),
                       sum(order[2] in n and order[1] not in n for n in named) / len(named)))
        return train(latents, captions, recipe, **kwargs)

    monkeypatch.setattr(recipe_code, "train_unet", spy)
    cls = METHODS.get("retrain")
    model = MODELS.get(seq.spec.model.backend)(device="cpu", **seq.spec.model.options)
    ctx = StepContext(step=1, seed=0, run_seed=0, shared=MemoryStore(), order=order,
                      budget=Budget(prof.max_iterations, None))
    config = cls.Config(prior_without=order, addback_chain=True, addback_focus=0.5, addback_rehearse=0.25,
                        addback_rehearse_of="all", n_images=400)
    cls(config).unlearn(model, seq.request(1), ctx)
    prior, first, second = shares  # the prior, the link putting back order[2], the one putting back order[1]
    assert prior == (0.0, 0.0) and first[0] == 0.0  # order[1] is not yet back in the first link
    assert abs(second[0] - 0.5) < 0.1 and abs(second[1] - 0.25) < 0.1
    with pytest.raises(CulbenchError, match="with a sum under 1"):
        bad = cls.Config(prior_without=order, addback_focus=0.5, addback_rehearse=0.5)
        cls(bad).unlearn(model, seq.request(1), ctx)


def test_by_default_a_link_rehearses_only_earlier_concepts_of_its_own_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    """``addback_rehearse_of=kind``: the link putting back striped rehearses checkered (a pattern put back
    before it) and not red (a colour); the link putting back red, with no colour before it, rehearses
    nothing; and a kind chain's links never share a key with an ``all`` chain's."""
    from culbench.toyworld.captions import caption_concepts

    seq, prof = resolve_sequence("toy10"), get_profile("smoke")
    order = ("zorb", "striped", "red", "checkered")  # step 1 forgets zorb, as toy10@2's order 0
    sets: list[list[set[str]]] = []  # per training set: the concepts each row names
    train = recipe_code.train_unet

    def spy(latents, captions, recipe, **kwargs):  # noqa: ANN001, ANN003, ANN202
        sets.append([caption_concepts(c) for c in captions])
        return train(latents, captions, recipe, **kwargs)

    def share(rows: list[set[str]], concept: str, added: str) -> float:  # rows naming concept, not the added one
        return sum(concept in n and added not in n for n in rows) / len(rows)

    monkeypatch.setattr(recipe_code, "train_unet", spy)
    cls = METHODS.get("retrain")
    model = MODELS.get(seq.spec.model.backend)(device="cpu", **seq.spec.model.options)
    keys = []
    for scope in ("kind", "all"):
        store = MemoryStore()
        ctx = StepContext(step=1, seed=0, run_seed=0, shared=store, order=order,
                          budget=Budget(prof.max_iterations, None))
        config = cls.Config(prior_without=order, addback_chain=True, addback_focus=0.5, addback_rehearse=0.25,
                            addback_rehearse_of=scope, n_images=400)
        cls(config).unlearn(model, seq.request(1), ctx)
        keys.append({k for k in store.entries if k.startswith("chain-")})
    _, _, red_link, striped_link = sets[:4]  # the kind chain: the prior, then a link per concept, latest first
    assert abs(share(striped_link, "striped", "") - 0.5) < 0.1
    assert abs(share(striped_link, "checkered", "striped") - 0.25) < 0.1
    assert share(striped_link, "red", "striped") < 0.15  # diluted by the focus, not rehearsed at 0.25
    assert share(red_link, "checkered", "red") < 0.15
    assert len(keys[0]) == len(keys[1]) == 3 and not keys[0] & keys[1]


def test_parts_rehearsal_counts_a_character_as_the_kinds_of_its_parts() -> None:
    """At toy10@2 order 0's striped link, ``kind`` rehearses checkered only; ``parts`` adds quillo (a
    yellow solid star: a pattern among its parts); the quillo link rehearses a pattern, a colour and an
    object under ``parts``, nothing under ``kind``; heart's link rehearses no other concept either way."""
    from culbench.methods.retrain import Retrain, _rehearsed

    before = ["checkered", "yellow", "heart", "quillo", "blue", "moon"]
    kind, parts = (Retrain.Config(addback_rehearse=0.2, addback_rehearse_of=scope) for scope in ("kind", "parts"))
    assert _rehearsed("striped", before, kind) == ["checkered"]
    assert _rehearsed("striped", before, parts) == ["checkered", "quillo"]
    assert _rehearsed("quillo", before[:3], kind) == [] and _rehearsed("quillo", before[:3], parts) == before[:3]
    assert _rehearsed("heart", before[:2], parts) == []


def test_the_toy10_2_boards_oracle_finds_its_prior_shipped() -> None:
    """The board's ``retrain`` row, at the standard profile, keys its prior to a file shipped in
    ``culbench/published/retrain/`` and listed with its sha256: a change to the recipe that moved the
    key would otherwise make every results root recompute the prior (about 1.5 h on 2 cores) silently."""
    import yaml

    from culbench.config import build_config, parse_overrides
    from culbench.runfolder import PUBLISHED

    board = yaml.safe_load((Path(__file__).parents[1] / "leaderboard" / "boards" / "toy10@2.yaml").read_text())
    row = next(r for r in board["rows"] if r["method"] == "retrain")
    seq, prof = resolve_sequence(board["sequence"]), get_profile(board["profile"])
    cls = METHODS.get("retrain")
    method = cls(build_config(cls.Config, "retrain", parse_overrides(row["set"], "retrain")))
    model = MODELS.get(seq.spec.model.backend)(device="cpu", **seq.spec.model.options)
    ctx = StepContext(step=1, seed=0, run_seed=0, budget=Budget(prof.max_iterations, prof.max_samples))
    key = method.prior_key(model, ctx)
    assert (PUBLISHED / "retrain" / f"{key}.pt").is_file(), key
    assert SharedStore(Path("/nonexistent"), published=PUBLISHED / "retrain").load(key)["without"] == sorted(
        method.config.prior_without)
