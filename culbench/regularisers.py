"""CUIG's continual regularisers as add-ons any gradient-trained method can take: ``esd+gradproj``.

Paper: Lee et al., "Continual Unlearning for Text-to-Image Diffusion Models: A Regularization
Perspective" (CUIG), ICLR 2026, arXiv:2511.07970. Reference code: github.com/justinhylee135/CUIG
(``Regularizers/Weight``, ``Regularizers/SelFT``, ``Regularizers/Projection``), commit
dd2204865147653d73f6c396b272b41b0bc0d40f. Re-implemented from culbench's research notes and a
reading of that code; nothing is copied.

A method name ``BASE+R1+R2`` (``culbench run --method esd+l2sp``) names ``BASE`` with the
regularisers ``R1``, ``R2`` registered in ``REGULARISERS``; their settings are set like the
method's (``--set l2sp.weight=1e4``, ``--set esd.lr=3e-5``). A regulariser acts through
:class:`culbench.training.Trainer`, which every built-in fine-tuning method uses: it is prepared
with the request (:meth:`Regulariser.prepare`), sees the trained parameters when the trainer opens
(:meth:`Regulariser.begin`) and edits their gradients after each backward pass, before clipping
(:meth:`Regulariser.on_grad`). A method that never opens a ``Trainer`` (a closed-form edit such as
``uce``) cannot take one: the run stops at its first step with an error naming why.

Built-ins (CUIG's defaults in brackets):

* ``l1sp`` / ``l2sp``: ``weight · mean |θ − θ₀|`` / ``weight · mean (θ − θ₀)²`` over the trained
  elements [50 / 25000], θ₀ the weights the request starts from (CUIG stores them at the first
  iteration of each request's training); ``anchor=base`` anchors to the step-0 model instead.
* ``selft``: only the ``topk`` share of trained elements with the largest |θ ⊙ ∇L| may change [0.10].
* ``gradproj``: cross-attention key/value gradients G become G·P, P = I − C(CᵀC + εI)⁻¹Cᵀ, with C
  the text-encoder embeddings of the concepts to keep (one column per prompt: the mean embedding of
  the concept's tokens; near-duplicates, cosine > 0.95, dropped), so the keys and values those
  embeddings produce do not move.

Deviations:

1. **SelFT's score** is the gradient of the method's own loss at its first iteration (before any
   update), whatever the method; CUIG scores with an ablation loss averaged over DDIM timesteps
   between target and anchor prompts.
2. **Gradient projection's auxiliary prompts** are the request's retain prompts (near and far
   concepts given to the method) and the forget prompts of the concepts erased at earlier steps,
   at most ``max_prompts``; CUIG uses ~200 LLM-written prompts about anchor, retained and earlier
   erased concepts. ε is CUIG's: max(1e-4, 1e-6 · tr(CᵀC)/n); a singular CᵀC falls back to the
   pseudo-inverse as in the reference.
3. **L1-SP / L2-SP** add their gradient in closed form (``2w(θ − θ₀)/N`` and ``w·sign(θ − θ₀)/N``)
   instead of building the penalty's autograd graph: the same update.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from culbench.api import Method, StepContext, T2IModel, UnlearnRequest, token_span
from culbench.catalog import METHODS, REGULARISERS
from culbench.errors import CulbenchError

__all__ = ["GradProj", "L1SP", "L2SP", "Regulariser", "SelFT", "compose", "projector", "register_regulariser"]


def register_regulariser(name: str) -> Any:
    """Class decorator: register a :class:`Regulariser` under ``name``."""
    return REGULARISERS.register(name)


class Regulariser:
    """Base class of an add-on that shapes a gradient-trained method's updates (see module doc)."""

    @dataclass(frozen=True)
    class Config:
        """No settings."""

    def __init__(self, config: Any = None) -> None:
        self.config = config if config is not None else type(self).Config()
        self.applied = False

    def prepare(self, model: T2IModel, request: UnlearnRequest, ctx: StepContext) -> None:  # noqa: B027
        """Called before the method serves ``request`` with the model it is handed."""

    def begin(self, student: T2IModel, params: Sequence[Any]) -> None:  # noqa: B027
        """Called when the method's trainer opens: ``params`` are the parameters it trains."""

    def on_grad(self, params: Sequence[Any], iteration: int) -> None:
        """Edit ``p.grad`` of the trained parameters in place after the ``iteration``-th backward."""
        raise NotImplementedError


class _SP(Regulariser):
    """Shared part of L1-SP and L2-SP: the anchor θ₀, the element count N, the gradient added."""

    @dataclass(frozen=True)
    class Config:
        weight: float = 1.0
        anchor: Literal["start", "base"] = "start"  # θ₀: the request's starting weights, or step 0's

    def prepare(self, model: T2IModel, request: UnlearnRequest, ctx: StepContext) -> None:
        self._base = ctx.base_model() if self.config.anchor == "base" and ctx.base_model else None

    def begin(self, student: T2IModel, params: Sequence[Any]) -> None:
        if self._base is None:
            self._anchor = [p.detach().clone() for p in params]
        else:  # the same parameters of the step-0 model, found by position (UNet, then text encoder)
            ids = {id(p): i for i, p in enumerate([*student.unet.parameters(), *student.text_encoder.parameters()])}
            if any(id(p) not in ids for p in params):
                name = type(self).__name__.lower()  # l2sp, l1sp
                raise CulbenchError(f"{name}.anchor=base: the method trains parameters the step-0 model does "
                                    "not have (e.g. adapters), so they have no base value to anchor to",
                                    f"use {name}.anchor=start (the request's starting weights)")
            base = [*self._base.unet.parameters(), *self._base.text_encoder.parameters()]
            self._anchor = [base[ids[id(p)]].detach().clone() for p in params]
        self._n = max(1, sum(p.numel() for p in params))

    def penalty_grad(self, diff: Any) -> Any:
        """The penalty's gradient at θ − θ₀ = ``diff`` (one tensor)."""
        raise NotImplementedError

    def on_grad(self, params: Sequence[Any], iteration: int) -> None:
        for p, a in zip(params, self._anchor, strict=True):
            push = self.penalty_grad(p.detach() - a)
            p.grad = push if p.grad is None else p.grad.add_(push)
        self.applied = True


@register_regulariser("l2sp")
class L2SP(_SP):
    """L2-SP: weight · mean (θ − θ₀)² added to the loss (CUIG ``Weight/l2sp.py``)."""

    @dataclass(frozen=True)
    class Config(_SP.Config):
        weight: float = 25000.0  # CUIG's ConAbl default; ESD README: 1e4–3e5

    def penalty_grad(self, diff: Any) -> Any:
        return diff.mul_(2.0 * self.config.weight / self._n)


@register_regulariser("l1sp")
class L1SP(_SP):
    """L1-SP: weight · mean |θ − θ₀| added to the loss (CUIG ``Weight/l1sp.py``)."""

    @dataclass(frozen=True)
    class Config(_SP.Config):
        weight: float = 50.0  # CUIG's ConAbl default; ESD README: 1–100

    def penalty_grad(self, diff: Any) -> Any:
        return diff.sign_().mul_(self.config.weight / self._n)


@register_regulariser("selft")
class SelFT(Regulariser):
    """SelFT: only the top-k share of |θ ⊙ ∇L| among the trained elements may change."""

    @dataclass(frozen=True)
    class Config:
        topk: float = 0.10  # share of trained elements that may change (CUIG: 0.10)

    def prepare(self, model: T2IModel, request: UnlearnRequest, ctx: StepContext) -> None:
        if not 0.0 < self.config.topk <= 1.0:
            raise CulbenchError(f"selft.topk={self.config.topk} is not in (0, 1]", "set e.g. --set selft.topk=0.1")

    def on_grad(self, params: Sequence[Any], iteration: int) -> None:
        import torch

        if iteration == 0:  # score once, from the first loss, before any update (deviation 1)
            scores = torch.cat([(p.detach() * p.grad).abs().flatten() if p.grad is not None
                                else torch.zeros(p.numel()) for p in params])
            keep = max(1, int(self.config.topk * scores.numel()))
            flat = torch.zeros_like(scores)
            flat[torch.topk(scores, keep).indices] = 1.0
            self._masks = [m.view_as(p) for m, p in zip(flat.split([p.numel() for p in params]), params,
                                                         strict=True)]
        for p, m in zip(params, self._masks, strict=True):
            if p.grad is not None:
                p.grad.mul_(m)
        self.applied = True


@register_regulariser("gradproj")
class GradProj(Regulariser):
    """Semantic gradient projection: cross-attention K/V gradients kept off the kept concepts' span."""

    @dataclass(frozen=True)
    class Config:
        max_prompts: int = 200        # auxiliary prompts at most (CUIG: 200)
        similarity: float = 0.95      # a column with cosine above this to a kept one is dropped

    def prepare(self, model: T2IModel, request: UnlearnRequest, ctx: StepContext) -> None:
        pairs = [(s.concept.name, p) for s in (*request.related, *request.general) for p in s.prompts]
        pairs += [(f.concept.name, p) for f in request.previous for p in f.prompts]
        pairs = pairs[: self.config.max_prompts]
        if not pairs:
            raise CulbenchError(f"gradproj: request {request.step} gives no concept to keep",
                                "use gradproj on a sequence whose requests carry retain prompts")
        self._projector = projector(_concept_columns(model, pairs), self.config.similarity)

    def begin(self, student: T2IModel, params: Sequence[Any]) -> None:
        kv = {id(p) for p in student.parameters("xattn_kv")}
        dim = self._projector.shape[0]
        self._which = [id(p) in kv and p.dim() == 2 and p.shape[1] == dim for p in params]
        if not any(self._which):
            raise CulbenchError("gradproj: the method trains no cross-attention key/value projection, so there "
                                "is no gradient to project",
                                "train a group with them (e.g. --set esd.train_method=xattn)")

    def on_grad(self, params: Sequence[Any], iteration: int) -> None:
        for p, project in zip(params, self._which, strict=True):
            if project and p.grad is not None:
                p.grad = p.grad @ self._projector.to(p.grad.dtype)
        self.applied = True


def _concept_columns(model: T2IModel, pairs: Sequence[tuple[str, str]]) -> Any:
    """``(d, n)``: per (concept name, prompt), the mean text embedding of the name's tokens in the
    prompt (the prompt's last token when the name is not found in it)."""
    import torch

    with torch.no_grad():
        emb = model.encode([p for _, p in pairs])
    columns = []
    for i, (name, prompt) in enumerate(pairs):
        span = token_span(model.tokenizer, prompt, name)
        if span is None:
            ids = model.tokenizer(prompt, truncation=True, max_length=model.tokenizer.model_max_length).input_ids
            span = range(len(ids) - 2, len(ids) - 1)
        columns.append(emb[i, list(span)].float().mean(dim=0))
    return torch.stack(columns, dim=1)


def projector(C: Any, similarity: float = 0.95) -> Any:
    """P = I − C(CᵀC + εI)⁻¹Cᵀ for the columns of ``C`` that are not near-duplicates (cosine >
    ``similarity`` to an earlier kept one); ε = max(1e-4, 1e-6·tr(CᵀC)/n); pseudo-inverse when singular.

    >>> import torch
    >>> C = torch.tensor([[1.0, 1.0], [0.0, 0.001], [0.0, 0.0]])
    >>> P = projector(C)  # the two columns are near-duplicates: one is kept
    >>> [round(v, 3) for v in (P @ torch.tensor([1.0, 0.0, 0.0])).tolist()]
    [0.0, 0.0, 0.0]
    >>> [round(v, 3) for v in (P @ torch.tensor([0.0, 0.0, 1.0])).tolist()]
    [0.0, 0.0, 1.0]
    """
    import torch

    unit = C / (C.norm(dim=0, keepdim=True) + 1e-8)
    keep = [0]
    for i in range(1, C.shape[1]):
        if float((unit[:, keep].T @ unit[:, i]).max()) < similarity:
            keep.append(i)
    C = C[:, keep].double()
    gram = C.T @ C
    eps = max(1e-4, 1e-6 * float(torch.trace(gram)) / C.shape[1])
    eye = torch.eye(C.shape[0], dtype=C.dtype)
    try:
        inner = torch.linalg.inv(gram + eps * torch.eye(C.shape[1], dtype=C.dtype))
        return (eye - C @ inner @ C.T).float()
    except torch.linalg.LinAlgError:
        return (eye - C @ torch.linalg.pinv(C)).float()


def compose(name: str) -> type | None:
    """The method class ``BASE+R1+...`` names (``None`` for a name without ``+``): ``BASE`` whose
    Config gains one field per regulariser (its Config) and whose steps run with the regularisers
    in ``ctx.regularisers``."""
    if "+" not in name:
        return None
    base_name, *names = name.split("+")
    base = METHODS.get(base_name)
    if len(set(names)) != len(names) or not all(names):
        raise CulbenchError(f"method '{name}' names a regulariser twice or an empty one",
                            f"write each once, e.g. {base_name}+{names[0] or 'l2sp'}")
    regs = {n: REGULARISERS.get(n) for n in names}
    clash = [n for n in regs if n in {f.name for f in dataclasses.fields(base.Config)}]
    if clash:
        raise CulbenchError(f"method '{base_name}' has a setting named '{clash[0]}', like the regulariser",
                            "rename the regulariser")
    config = dataclasses.make_dataclass(
        f"{base.Config.__name__}", [(n, r.Config, dataclasses.field(default_factory=r.Config))
                                    for n, r in regs.items()], bases=(base.Config,), frozen=True)
    body = {"Config": config, "regularisers": tuple(regs), "__doc__": f"{base_name} with {', '.join(names)} "
            f"(culbench.regularisers). {(base.__doc__ or '').strip().splitlines()[0] if base.__doc__ else ''}",
            "unlearn": _unlearn_with(base), "__module__": base.__module__}
    return type(f"{base.__name__}_{'_'.join(names)}", (base,), body)


def _unlearn_with(base: type) -> Any:
    def unlearn(self: Method, model: T2IModel, request: UnlearnRequest, ctx: StepContext) -> T2IModel:
        regs = [REGULARISERS.get(n)(getattr(self.config, n)) for n in type(self).regularisers]
        for reg in regs:
            reg.prepare(model, request, ctx)
        edited = base.unlearn(self, model, request, dataclasses.replace(ctx, regularisers=(*ctx.regularisers, *regs)))
        idle = [n for n, reg in zip(type(self).regularisers, regs, strict=True) if not reg.applied]
        if idle:
            raise CulbenchError(f"regulariser {idle[0]} never acted: method '{base.__name__}' does not train "
                                "through culbench.training.Trainer", "use it with a gradient-trained method")
        return edited

    return unlearn

