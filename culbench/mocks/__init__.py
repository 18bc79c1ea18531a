"""Mocks shipped in the package: a tiny random diffusers model, a projection judge and a
2-step sequence, so tests and ``culbench run --method X --sequence mock --profile smoke``
exercise the whole loop in seconds without weights."""
