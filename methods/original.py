"""The untouched model: the reference row every leaderboard starts from.

``original`` serves each deletion request by doing nothing, so its rows show what the
base model generates (UA ≈ 0, retention ≈ 1) and exercise the whole loop.
"""

from __future__ import annotations

from dataclasses import dataclass

from culbench.api import Method, StepContext, T2IModel, UnlearnRequest, register_method


@register_method("original")
class Original(Method):
    """Reference row: the base model, unchanged at every step."""

    @dataclass(frozen=True)
    class Config:
        """No hyperparameters."""

    trains = ()
    role = "reference"

    def unlearn(self, model: T2IModel, request: UnlearnRequest, ctx: StepContext) -> T2IModel:
        return model
