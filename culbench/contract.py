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
from pathlib import Path
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
    """Run every check for method ``name``; never raises for a failing method (a bad override or
    an unknown name raises, as ``culbench run`` would)."""
    import torch

    from culbench.catalog import METHODS
    from culbench.spec import RunSpec

    torch.set_num_threads(threads)
    backends = METHODS.get(name).backends  # empty = any; methods tied to one world declare it (retrain)
    sequence = "mock" if not backends or "mock" in backends else "toy10"
    harness = _Harness(RunSpec(name, sequence=sequence, profile="smoke", overrides=tuple(overrides),
                               threads=threads).resolve())
    checks = [("config", harness.config_check), ("returns", harness.returns_check),
              ("groups", harness.groups_check), ("frozen", harness.frozen_check),
              ("deterministic", harness.deterministic_check)]
    if harness.cls.from_scratch:
        checks.append(("from_scratch", harness.from_scratch_check))
    return [_check(label, fn) for label, fn in [*checks, ("smoke", harness.smoke_check)]]


def _check(label: str, fn: Callable[[], str]) -> Check:
    try:
        return Check(label, True, fn())
    except AssertionError as exc:
        return Check(label, False, str(exc))
    except Exception as exc:  # noqa: BLE001 - a crash inside the method is a failed check, with its reason
        return Check(label, False, f"{type(exc).__name__}: {exc}")


class _Harness:
    """One method on the smoke profile of a small sequence, and the contract's checks on it."""

    def __init__(self, resolved: Any) -> None:
        self.r, self.cls, self.config = resolved, resolved.method_cls, resolved.config
        method = self.cls(self.config)  # a duck-typed method without trained_groups declares all of trains
        self.declared = tuple(getattr(method, "trained_groups", lambda: self.cls.trains)())
        self.kept_state: list[str] = []  # the ctx.state keys the last request left
        self.results: dict[str, Any] = {}  # the first request's models (from returns_check)

    def fresh_model(self) -> Any:
        from culbench.catalog import MODELS

        return MODELS.get(self.r.seq.spec.model.backend)(device="cpu", **self.r.backend_options)

    def one_request(self, seed: int, scramble: bool = False) -> tuple[Any, Any, Any, dict[str, Any], Any]:
        """Serve request 1 from a fresh model: (model handed in, base, returned, UNet before, pristine)."""
        import torch

        from culbench.api import Budget, StepContext

        model, base = self.fresh_model(), self.fresh_model()
        if scramble:  # another starting point: what a from-scratch method must not depend on
            noise = torch.Generator().manual_seed(1234)
            with torch.no_grad():
                for p in model.unet.parameters():
                    p.add_(torch.randn(p.shape, generator=noise) * 0.1)
        before = _hash_state(model.unet)
        prof = self.r.prof
        ctx = StepContext(step=1, seed=seed, budget=Budget(prof.max_iterations, prof.max_samples),
                          base_model=lambda: base, run_seed=seed)
        torch.manual_seed(seed)
        method = self.cls(self.config)
        method.on_sequence_start(model, ctx)
        out = method.unlearn(model, self.r.seq.request(1), ctx)
        self.kept_state[:] = list(ctx.state)
        return model, base, out, before, self.fresh_model()

    def config_check(self) -> str:
        from culbench.config import build_config, config_to_dict

        config, name = self.config, self.r.spec.method
        assert dataclasses.is_dataclass(config) and type(config).__dataclass_params__.frozen, \
            "Config must be a frozen dataclass"
        as_dict = config_to_dict(config)
        again = build_config(self.cls.Config, name, {k: str(v) for k, v in as_dict.items()
                                                     if not isinstance(v, (list, dict))})
        assert config_to_dict(again) == as_dict, f"--set round trip changed {as_dict} -> {config_to_dict(again)}"
        return f"{len(as_dict)} fields"

    def returns_check(self) -> str:
        model, base, out, before, pristine = self.one_request(0)
        self.results.update(model=model, base=base, out=out, before=before, pristine=pristine)
        for attr in ("unet", "text_encoder", "sample", "state_dict", "parameters"):
            assert hasattr(out, attr), f"unlearn returned {type(out).__name__} without .{attr}"
        out_text = _hash_state(out.text_encoder)
        text_moved = _same(out_text, _hash_state(pristine.text_encoder))
        assert not text_moved or "text_encoder" in self.declared, \
            "the text encoder changed (it is frozen unless the method declares 'text_encoder' in trains)"
        if out.vae is not None:
            assert not _same(_hash_state(out.vae), _hash_state(pristine.vae)), "the VAE changed"
        stored = self.fresh_model()
        stored.load_state_dict(out.state_dict())
        lost = _same(_hash_state(out.unet), _hash_state(stored.unet)) + [
            f"text_encoder.{k}" for k in _same(out_text, _hash_state(stored.text_encoder))]
        assert not lost, f"state_dict() does not carry the returned weights (assign a new text encoder, " \
                         f"do not edit the shipped one in place): {lost[:3]}"
        return type(out).__name__ + (" with its own text encoder" if text_moved else "")

    def groups_check(self) -> str:
        assert self.results, "skipped: unlearn failed"
        out, before = self.results["out"], self.results["before"]
        changed = _same(before, _hash_state(out.unet))
        groups = out.parameter_groups()
        allowed = {n for g in self.declared for n in groups.get(g, [])}
        stray = [k for k in changed if k not in allowed]
        assert not stray, f"changed outside the declared groups {self.declared}: {stray[:3]}"
        return f"{len(changed)} tensors changed, all in {self.declared or '()'}"

    def frozen_check(self) -> str:
        assert self.results, "skipped: unlearn failed"
        model, base, out, before = (self.results[k] for k in ("model", "base", "out", "before"))
        pristine = self.results["pristine"]
        shipped = _hash_state(pristine.text_encoder)
        if out is not model:
            moved = _same(before, _hash_state(model.unet)) + _same(shipped, _hash_state(model.text_encoder))
            assert not moved, f"the model handed in was modified: {moved[:3]}"
        moved = _same(_hash_state(pristine.unet), _hash_state(base.unet)) + _same(shipped, _hash_state(base.text_encoder))
        assert not moved, f"the base model was modified: {moved[:3]}"
        return "input and base model unchanged" if out is not model else "edits in place (returns its input)"

    def deterministic_check(self) -> str:
        assert self.results, "skipped: unlearn failed"
        diff = _same(self.results["out"].state_dict(), self.one_request(0)[2].state_dict())
        assert not diff, f"two runs with seed 0 differ in {diff[:3]}"
        return "identical weights for the same seed"

    def from_scratch_check(self) -> str:
        assert self.results, "skipped: unlearn failed"
        again = self.one_request(0, scramble=True)[2]
        diff = _same(self.results["out"].state_dict(), again.state_dict())
        assert not diff, f"declares from_scratch but its output depends on the input weights: {diff[:3]}"
        steps = (f"keeps {', '.join(self.kept_state)} in ctx.state, so its steps run in order" if self.kept_state
                 else "keeps no state, so its steps can also be computed alone (--step)")
        return f"the same weights from a scrambled input model; {steps}"

    def smoke_check(self) -> str:
        from culbench.runner import run_spec

        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as out:
            run_spec(dataclasses.replace(self.r.spec, out=Path(out)))
        return f"{self.r.seq.name} smoke run in {time.perf_counter() - start:.1f} s"
