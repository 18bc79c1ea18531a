"""Model backends that build a :class:`culbench.api.T2IModel` (mock, ToyWorld, Stable Diffusion)."""
