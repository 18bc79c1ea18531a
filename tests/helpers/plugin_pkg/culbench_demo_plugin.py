"""A third-party method package, installed by the tests through pip."""

from dataclasses import dataclass

from culbench.api import Method


class DemoPlugin(Method):
    """Demo plugin: returns the model unchanged."""

    @dataclass(frozen=True)
    class Config:
        strength: float = 1.0  # unused

    def unlearn(self, model, request, ctx):
        return model
