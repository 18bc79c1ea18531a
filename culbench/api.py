"""The method contract: what a continual-unlearning method receives and returns.

A method is a class registered with :func:`register_method`, constructed from a frozen
config dataclass, whose :meth:`Method.unlearn` is called once per deletion request::

    @register_method("my_method")
    class MyMethod(Method):
        '''One line for `culbench ls methods`.'''

        @dataclass(frozen=True)
        class Config:
            lr: float = 1e-5      # AdamW learning rate
            iterations: int = 200  # optimiser steps per request

        def unlearn(self, model, request, ctx):
            ...  # edit model (or a clone of it) to forget request.concept
            return model

The runner owns all I/O, seeding, timing and checkpointing: methods never write files,
print, or parse arguments, and take their randomness from the :class:`StepContext`
(``ctx.rng()``, ``ctx.generator()``, ``ctx.sample_seed(stream)``).

A method file imports ``culbench.api``, ``culbench.training`` (the public training helpers) and
``culbench.closed_form`` (the closed-form cross-attention edits), the standard library and
third-party libraries (torch, diffusers, numpy), and nothing else from culbench; a method tied to
one backend (it declares ``backends``) may also import that backend's package,
``culbench.<backend>`` (``retrain``: ``culbench.toyworld``).
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from culbench.catalog import METHODS
from culbench.errors import CulbenchError
from culbench.request import (
    Concept,
    ForgetSet,
    PromptPair,
    RetainSet,
    UnlearnRequest,
    concept_positions,
    end_of_text,
    mentions,
    substitute,
    token_span,
)

if TYPE_CHECKING:  # torch is imported only by code that runs models
    import torch

__all__ = [
    "Budget",
    "Concept",
    "CulbenchError",
    "ForgetSet",
    "MemoryStore",
    "Method",
    "ParameterGroups",
    "Progress",
    "PromptPair",
    "RetainSet",
    "StepContext",
    "T2IModel",
    "UnlearnRequest",
    "concept_positions",
    "end_of_text",
    "mentions",
    "register_method",
    "substitute",
    "token_span",
]


# -- how the step runs -------------------------------------------------------------------
@dataclass(frozen=True)
class Budget:
    """Compute budget from the profile.

    Methods declare their own iteration counts in their config and pass them through
    :meth:`iterations`, which the ``smoke`` profile caps so that any method finishes a
    step in seconds.
    """

    max_iterations: int | None = None
    max_samples: int | None = None

    def iterations(self, requested: int) -> int:
        """``requested`` capped by the profile (at least 1)."""
        cap = self.max_iterations
        return max(1, requested if cap is None else min(requested, cap))

    def samples(self, requested: int) -> int:
        """A number of generated samples (e.g. a replay bank) capped by the profile."""
        cap = self.max_samples
        return max(1, requested if cap is None else min(requested, cap))


class Progress(Protocol):
    """Progress reporting handed to methods: ``tick = ctx.progress(total, "training")``."""

    def __call__(self, total: int, description: str) -> Callable[[int], None]: ...


def _silent_progress(total: int, description: str) -> Callable[[int], None]:
    return lambda advance=1: None


def _no_snapshot() -> Any:
    return None


def _drop_snapshot(payload: Any) -> None:
    return None


class MemoryStore:
    """The in-process default of ``StepContext.shared`` (tests, a model edited outside a run):
    the same ``load`` / ``save`` / ``discard`` / ``locked`` as the runner's file-backed store
    (``culbench.runfolder.SharedStore``), kept in a dict."""

    def __init__(self) -> None:
        self.entries: dict[str, Any] = {}

    def load(self, key: str) -> Any:
        return self.entries.get(key)

    def save(self, key: str, payload: Any) -> None:
        self.entries[key] = payload

    def discard(self, key: str) -> None:
        self.entries.pop(key, None)

    def locked(self, key: str) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


def step_seed(seed: int, step: int) -> int:
    """The seed of step ``step`` of a run with seed ``seed`` (``StepContext.seed``): independent
    of history, so a resumed run, or a step computed alone, sees the same value."""
    return (seed * 1_000_003 + step * 7_919) % (2**31 - 1)


@dataclass
class StepContext:
    """Everything the runner hands a method besides the model and the request.

    Attributes:
        step: 1-based step index.
        seed: the seed for this step's randomness (derived from the run seed and step,
            so a resumed run sees the same value).
        device: torch device string, e.g. ``"cpu"`` or ``"cuda:0"``.
        budget: the profile's compute budget.
        progress: ``progress(total, description)`` returns ``advance(n=1)``.
        state: a dict that persists across steps (and across resume: the runner saves it
            with each step, so keep it to tensors, numbers, strings, lists and dicts).
        base_model: returns the frozen step-0 model (loaded on first call).
        save_snapshot: ``save_snapshot(payload)`` for a step that runs long (retrain: ~1 h on
            CPU): the runner keeps ``payload`` (same types as ``state``) on disk, so a run killed
            mid-step resumes from it instead of from the step's start. Save whatever makes the
            resumed result identical to an uninterrupted one (weights, optimiser, generator state,
            iteration); each call replaces the last; the runner deletes it when the step commits.
        load_snapshot: ``load_snapshot()`` returns this step's last saved payload, or ``None``
            (none saved, or saved from a different input model: it is then ignored).
        run_seed: the run's ``--seed``, the same at every step (``step_seed(run_seed, k)`` is
            step k's ``seed``): a method that must draw something once per run derives it from
            this rather than keeping it in ``state``, so any step can be computed alone
            (``culbench run --step``, for ``from_scratch`` methods).
        shared: artefacts reused across the steps and runs of one results root (``load(key)``,
            ``save(key, payload)``, ``discard(key)``, ``with locked(key):``): something a method
            computes once for every run, such as the retrain oracle's prior model. A key must name
            everything its payload depends on (hash the recipe into it).
        regularisers: add-ons (``culbench.regularisers``) that :class:`culbench.training.Trainer`
            applies to the gradients of the parameters it trains (a ``BASE+R`` method sets them).
        order: the run's deletion order (concept names, step 1's first), handed only to a method
            whose ``role`` is ``"oracle"`` (a reference the benchmark computes may know the requests
            still to come); empty for every other method, which must not.
    """

    step: int
    seed: int
    device: str = "cpu"
    budget: Budget = field(default_factory=Budget)
    progress: Callable[[int, str], Callable[..., None]] = _silent_progress
    state: dict[str, Any] = field(default_factory=dict)
    base_model: Callable[[], T2IModel] | None = None
    save_snapshot: Callable[[Any], None] = _drop_snapshot
    load_snapshot: Callable[[], Any] = _no_snapshot
    run_seed: int = 0
    shared: Any = field(default_factory=MemoryStore)
    regularisers: tuple[Any, ...] = ()
    order: tuple[str, ...] = ()

    def generator(self, offset: int = 0) -> torch.Generator:
        """A ``torch.Generator`` on ``device`` seeded from the step seed (+ ``offset``)."""
        import torch

        gen = torch.Generator(device=self.device)
        gen.manual_seed(self.seed + offset)
        return gen

    def rng(self) -> random.Random:
        """A ``random.Random(seed)``: the step's Python-level draws (batch indices, prompt choices).
        Each call starts the same stream anew, so make one per step and pass it on."""
        return random.Random(self.seed)

    def sample_seed(self, stream: int = 0, index: int = 0) -> int:
        """The seed of generated sample ``index`` of ``stream``: ``seed * 7919 + stream * 10**6 +
        index``. Generated banks (replay, anchor or surrogate images, partial trajectories) each
        take their own stream (0, 1, ...), a range of 10**6 seeds that no other bank of the step
        shares; a bank's sample i is seeded ``sample_seed(stream) + i`` (see ``sample_seeds``)."""
        return self.seed * 7919 + stream * 10**6 + index

    def sample_seeds(self, stream: int, n: int, start: int = 0) -> list[int]:
        """The seeds of samples ``start .. start + n - 1`` of ``stream`` (see ``sample_seed``)."""
        first = self.sample_seed(stream, start)
        return [first + i for i in range(n)]


# -- the model ---------------------------------------------------------------------------
ParameterGroups = Mapping[str, Sequence[str]]


@runtime_checkable
class T2IModel(Protocol):
    """A text-to-image diffusion model as methods see it (ToyWorld and Stable Diffusion).

    Attributes:
        unet: the denoiser (a diffusers ``UNet2DConditionModel``); the part methods edit.
        text_encoder: the text encoder (``CLIPTextModel``), frozen and shared by clones. A
            method that declares ``"text_encoder"`` in ``trains`` may *assign* a trained copy
            (``twin.text_encoder = trained``, never an in-place edit of the shared one); the
            model's prompt cache follows and ``state_dict()`` then carries it.
        tokenizer: its tokenizer.
        scheduler: the training noise schedule (a diffusers scheduler).
        vae: the autoencoder for latent models, ``None`` for pixel-space models.
        device: torch device string.
        prediction_type: ``"epsilon"`` or ``"v_prediction"``.
        latent_shape: ``(C, H, W)`` of the denoiser's input.
        backend: the name of the backend that built it (``"mock"``, ``"toyworld"``, ``"sd"``), for
            a method tied to one backend to check what it is handed.
    """

    unet: torch.nn.Module
    text_encoder: torch.nn.Module
    tokenizer: Any
    scheduler: Any
    vae: torch.nn.Module | None
    device: str
    prediction_type: str
    latent_shape: tuple[int, int, int]
    backend: str

    def encode(self, prompts: Sequence[str]) -> torch.Tensor:
        """Text embeddings ``(B, L, D)`` for the denoiser's cross-attention."""
        ...

    def predict(self, x_t: torch.Tensor, t: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """The denoiser's raw output (ε or v per ``prediction_type``) for ``x_t`` at ``t``."""
        ...

    def add_noise(
        self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor
    ) -> torch.Tensor:
        """Forward diffusion q(x_t | x_0) under the training schedule."""
        ...

    def target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The regression target of ``predict`` (ε, or v for v-prediction)."""
        ...

    def sample(
        self,
        prompts: Sequence[str],
        seeds: Sequence[int],
        *,
        steps: int | None = None,
        guidance: float | None = None,
        output: str = "image",
        progress: Callable[[int], None] | None = None,
    ) -> torch.Tensor:
        """Generate one sample per (prompt, seed) with DDIM.

        The initial noise of each sample depends only on its seed, so the same
        (prompt, seed) gives the same sample in any batch, step or method.

        Returns:
            ``output="image"``: ``(B, 3, H, W)`` in [0, 1]; ``output="latent"``: the
            denoised latents ``(B, C, h, w)`` that :meth:`add_noise` takes.
        """
        ...

    @property
    def num_train_timesteps(self) -> int:
        """Length T of the training noise schedule (t ranges over 0..T-1)."""
        ...

    def sample_partial(self, prompts: Sequence[str], seeds: Sequence[int], *, steps: int, stop: int,
                       guidance: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``stop`` of ``steps`` DDIM steps from each seed's noise: ``(x_t, t)``,
        with ``t`` the timestep (one per sample) at which ``x_t`` sits."""
        ...

    def parameter_groups(self) -> ParameterGroups:
        """Named groups of UNet parameter names: ``full``, ``xattn``, ``xattn_kv``, ``non_xattn``."""
        ...

    def parameters(self, group: str = "full") -> list[torch.nn.Parameter]:
        """The UNet parameters of ``group`` (unknown groups raise)."""
        ...

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The editable weights on CPU: the UNet's, plus ``text_encoder.*`` when the text encoder
        was replaced."""
        ...

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Load weights produced by :meth:`state_dict`."""
        ...

    def clone(self) -> T2IModel:
        """A copy whose UNet can be trained without touching this one (frozen parts shared)."""
        ...


# -- the method --------------------------------------------------------------------------
class Method:
    """Base class of continual-unlearning methods (optional: any class with the same shape works,
    i.e. these methods and the class attributes ``trains``, ``backends`` and ``from_scratch``).

    Subclasses define a nested frozen ``Config`` dataclass (every hyperparameter, each with a
    comment) and :meth:`unlearn`. The runner builds ``cls(cls.Config(**overrides))``.
    """

    @dataclass(frozen=True)
    class Config:
        """No hyperparameters."""

    #: Parameter groups this method may change (checked by the contract suite): UNet groups
    #: (``full``, ``xattn``, ``xattn_kv``, ``non_xattn``) and ``"text_encoder"`` for a method that
    #: replaces the text encoder (``retrain``); without it the text encoder must stay as shipped.
    trains: ClassVar[tuple[str, ...]] = ("full",)
    #: True when ``unlearn`` ignores the UNet weights it is handed (it trains a fresh UNet, e.g.
    #: ``retrain``): a run may then drop its committed steps' weights and still resume, from the
    #: base model (checked by the contract suite); if it also keeps nothing in ``ctx.state``, each
    #: step can be computed alone, in parallel processes (``culbench run --step K``).
    from_scratch: ClassVar[bool] = False
    #: Model backends this method runs on (``"mock"``, ``"toyworld"``, ``"sd"``); empty = any. A
    #: method tied to one world declares it (``retrain``: ``("toyworld",)``, its training data is
    #: generated by culbench); the contract suite then checks it on a sequence of that backend.
    backends: ClassVar[tuple[str, ...]] = ()
    #: How the leaderboard shows this method's rows: ``"ranked"`` (they compete), ``"reference"``
    #: (shown for scale, never ranked: ``original``) or ``"oracle"`` (a reference row that "gap to
    #: retrain" is measured against: ``retrain``). Built-ins write it as a literal (read without import).
    role: ClassVar[str] = "ranked"
    #: The settings ``culbench tune`` searches: Config field -> candidate values. Every ranked
    #: built-in declares a grid of at least ``culbench.tuning.BUDGET`` points; the tuner tries the
    #: defaults and ``BUDGET - 1`` points drawn from it (the same budget for every method).
    tune_grid: ClassVar[dict[str, tuple[Any, ...]]] = {}

    def __init__(self, config: Any = None) -> None:
        self.config = config if config is not None else type(self).Config()

    def trained_groups(self) -> tuple[str, ...]:
        """Groups this *configured* instance may change: its Config's ``param_group`` when it
        has one, else all of ``trains``. The contract suite checks that nothing else moves."""
        group = getattr(self.config, "param_group", None)
        return (group,) if isinstance(group, str) else tuple(type(self).trains)

    def on_sequence_start(self, model: T2IModel, ctx: StepContext) -> None:  # noqa: B027
        """Called once before step 1 (not again on resume: keep lasting state in ``ctx.state``)."""

    def unlearn(self, model: T2IModel, request: UnlearnRequest, ctx: StepContext) -> T2IModel:
        """Serve one deletion request; return the edited model."""
        raise NotImplementedError


def register_method(name: str, *, summary: str = "") -> Callable[[type], type]:
    """Class decorator: register a method under ``name``."""
    return METHODS.register(name, summary=summary)
