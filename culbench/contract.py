"""The method contract: checks every method — built-in or plugin — must pass.

``culbench check-method NAME`` runs them on the mock sequence (tiny random model, seconds):

* ``config``: the Config is a frozen dataclass whose values round-trip through JSON and
  ``--set`` parsing;
* ``returns``: ``unlearn`` returns a T2IModel with the same components (VAE and tokenizer
  untouched; the text encoder too, unless the method declares ``"text_encoder"`` in ``trains``),
  whose ``state_dict()`` loads into a fresh model as the same weights (what the runner stores);
* ``groups``: only parameters in the groups the method declares (``trains``) change;
* ``frozen``: the model handed in (the previous step, often the teacher) and the base model are
  left as they were (UNet and text encoder), unless the method returns that very object;
* ``deterministic``: the same request and seed give identical weights;
* ``from_scratch`` (only for methods that declare it): a model whose UNet was scrambled first
  gives the same weights, so the runner may resume such a run without its steps' weights (the
  detail says whether it keeps ``ctx.state``; if not, ``culbench run --step`` applies);
* ``smoke``: a whole smoke run of the mock sequence finishes (and its time is reported).

:func:`check_method_class` is the static part, run by the ``METHODS`` registry on every method it
loads (so a broken class fails at lookup, with the fix, before any check runs).

Methods that declare ``backends`` without ``"mock"`` (``retrain``: ToyWorld only) are checked
on ``toy10`` instead.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


def check_method_class(name: str, cls: Any) -> None:
    """The ``METHODS`` registry's check of a loaded method: a class with ``unlearn``, a frozen
    ``Config`` dataclass and the class attributes :class:`Method` declares (``trains`` and
    ``backends`` as tuples of names, ``from_scratch``). Raises ``RegistryError`` naming the fix."""
    from culbench.errors import RegistryError

    config = getattr(cls, "Config", None)
    if not (isinstance(cls, type) and callable(getattr(cls, "unlearn", None))):
        raise RegistryError(
            f"method '{name}' ({cls!r}) has no unlearn(model, request, ctx)",
            "register a class that defines unlearn",
        )
    if not (dataclasses.is_dataclass(config) and config.__dataclass_params__.frozen):
        raise RegistryError(
            f"method '{name}' has no frozen Config dataclass",
            "add `@dataclass(frozen=True) class Config:` inside the method class",
        )
    missing = [attr for attr in ("trains", "backends", "from_scratch") if not hasattr(cls, attr)]
    if missing:
        raise RegistryError(f"method '{name}' does not declare {', '.join(missing)}",
                            "subclass culbench.api.Method, which declares them with their defaults")
    for attr in ("trains", "backends"):
        value = getattr(cls, attr)
        if not (isinstance(value, tuple) and all(isinstance(v, str) for v in value)):
            raise RegistryError(f"method '{name}' declares {attr} = {value!r}, not a tuple of names",
                                f"write {attr} as a tuple of strings, e.g. {attr} = (\"toyworld\",)")


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def _hash_state(module: Any) -> dict[str, Any]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _same(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    import torch

    return [k for k in a if k not in b or not torch.equal(a[k], b[k])] + [k for k in b if k not in a]


def run_contract(name: str, overrides: tuple[str, ...] = (), threads: int = 1) -> list[Check]:
    """Run every check for method ``name``; never raises for a failing method."""
    import torch

    from culbench.api import Budget, StepContext
    from culbench.catalog import METHODS, MODELS
    from culbench.config import build_config, config_to_dict, parse_overrides
    from culbench.profiles import get_profile
    from culbench.runner import run
    from culbench.tasks import resolve_sequence

    torch.set_num_threads(threads)
    cls = METHODS.get(name)
    checks: list[Check] = []

    def check(label: str, fn: Callable[[], str]) -> None:
        try:
            checks.append(Check(label, True, fn()))
        except AssertionError as exc:
            checks.append(Check(label, False, str(exc)))
        except Exception as exc:  # a crash inside the method is a failed check, with its reason
            checks.append(Check(label, False, f"{type(exc).__name__}: {exc}"))

    config = build_config(cls.Config, name, parse_overrides(overrides, name))

    def config_check() -> str:
        assert dataclasses.is_dataclass(config) and type(config).__dataclass_params__.frozen, \
            "Config must be a frozen dataclass"
        as_dict = config_to_dict(config)
        again = build_config(cls.Config, name, {k: str(v) for k, v in as_dict.items()
                                                if not isinstance(v, (list, dict))})
        assert config_to_dict(again) == as_dict, f"--set round trip changed {as_dict} -> {config_to_dict(again)}"
        return f"{len(as_dict)} fields"

    check("config", config_check)

    backends = cls.backends  # empty = any; methods tied to one world declare it (retrain: toyworld)
    seq = resolve_sequence("mock" if not backends or "mock" in backends else "toy10")
    profile = get_profile("smoke")

    def fresh_model() -> Any:
        return MODELS.get(seq.spec.model.backend)(device="cpu", **seq.spec.model.options)

    kept_state: list[str] = []  # the ctx.state keys the last request left

    def one_request(seed: int, scramble: bool = False) -> tuple[Any, Any, Any, dict[str, Any], Any]:
        model, base = fresh_model(), fresh_model()
        if scramble:  # another starting point: what a from-scratch method must not depend on
            noise = torch.Generator().manual_seed(1234)
            with torch.no_grad():
                for p in model.unet.parameters():
                    p.add_(torch.randn(p.shape, generator=noise) * 0.1)
        before = _hash_state(model.unet)
        ctx = StepContext(step=1, seed=seed, budget=Budget(profile.max_iterations, profile.max_samples),
                          base_model=lambda: base, run_seed=seed)
        torch.manual_seed(seed)
        method = cls(config)
        method.on_sequence_start(model, ctx)
        out = method.unlearn(model, seq.request(1), ctx)
        kept_state[:] = list(ctx.state)
        return model, base, out, before, fresh_model()

    results: dict[str, Any] = {}

    declared = getattr(cls(config), "trained_groups", lambda: tuple(cls.trains))()

    def returns_check() -> str:
        model, base, out, before, pristine = one_request(0)
        results.update(model=model, base=base, out=out, before=before, pristine=pristine)
        for attr in ("unet", "text_encoder", "sample", "state_dict", "parameters"):
            assert hasattr(out, attr), f"unlearn returned {type(out).__name__} without .{attr}"
        out_text = _hash_state(out.text_encoder)
        text_moved = _same(out_text, _hash_state(pristine.text_encoder))
        assert not text_moved or "text_encoder" in declared, \
            "the text encoder changed (it is frozen unless the method declares 'text_encoder' in trains)"
        if out.vae is not None:
            assert not _same(_hash_state(out.vae), _hash_state(pristine.vae)), "the VAE changed"
        stored = fresh_model()
        stored.load_state_dict(out.state_dict())
        lost = _same(_hash_state(out.unet), _hash_state(stored.unet)) + [
            f"text_encoder.{k}" for k in _same(out_text, _hash_state(stored.text_encoder))]
        assert not lost, f"state_dict() does not carry the returned weights (assign a new text encoder, " \
                         f"do not edit the shipped one in place): {lost[:3]}"
        return type(out).__name__ + (" with its own text encoder" if text_moved else "")

    check("returns", returns_check)

    def groups_check() -> str:
        assert results, "skipped: unlearn failed"
        out, before = results["out"], results["before"]
        changed = _same(before, _hash_state(out.unet))
        groups = out.parameter_groups()
        allowed = {n for g in declared for n in groups.get(g, [])}
        stray = [k for k in changed if k not in allowed]
        assert not stray, f"changed outside the declared groups {declared}: {stray[:3]}"
        return f"{len(changed)} tensors changed, all in {declared or '()'}"

    check("groups", groups_check)

    def frozen_check() -> str:
        assert results, "skipped: unlearn failed"
        model, base, out, before = results["model"], results["base"], results["out"], results["before"]
        shipped = _hash_state(results["pristine"].text_encoder)
        if out is not model:
            moved = _same(before, _hash_state(model.unet)) + _same(shipped, _hash_state(model.text_encoder))
            assert not moved, f"the model handed in was modified: {moved[:3]}"
        moved = (_same(_hash_state(results["pristine"].unet), _hash_state(base.unet))
                 + _same(shipped, _hash_state(base.text_encoder)))
        assert not moved, f"the base model was modified: {moved[:3]}"
        return "input and base model unchanged" if out is not model else "edits in place (returns its input)"

    check("frozen", frozen_check)

    def deterministic_check() -> str:
        assert results, "skipped: unlearn failed"
        again = one_request(0)[2]
        diff = _same(results["out"].state_dict(), again.state_dict())
        assert not diff, f"two runs with seed 0 differ in {diff[:3]}"
        return "identical weights for the same seed"

    check("deterministic", deterministic_check)

    def from_scratch_check() -> str:
        assert results, "skipped: unlearn failed"
        again = one_request(0, scramble=True)[2]
        diff = _same(results["out"].state_dict(), again.state_dict())
        assert not diff, f"declares from_scratch but its output depends on the input weights: {diff[:3]}"
        steps = (f"keeps {', '.join(kept_state)} in ctx.state, so its steps run in order" if kept_state
                 else "keeps no state, so its steps can also be computed alone (--step)")
        return f"the same weights from a scrambled input model; {steps}"

    if getattr(cls, "from_scratch", False):
        check("from_scratch", from_scratch_check)

    def smoke_check() -> str:
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as out:
            run(name, sequence=seq.name, profile="smoke", out=out, overrides=overrides, threads=threads)
        return f"{seq.name} smoke run in {time.perf_counter() - start:.1f} s"

    check("smoke", smoke_check)
    return checks
