"""Robustness probes: does a forgotten concept come back?

A probe is a registered, versioned evaluation (``culbench ls probes``) that runs on any committed
checkpoint of any run (``culbench probe RUN``; by default the final step) and records what it
found in the run folder (``probes/<probe>/KK.json``, with its fingerprint), so that a rerun skips
what is done and a changed probe or checkpoint is computed again:

* ``paraphrase``: presence of each forgotten concept under other words for it (synonyms,
  characters described by their parts), from the sequence's ``probes/`` prompts, which no method
  is ever given.
* ``relearn``: how fast each forgotten concept comes back when the checkpoint is fine-tuned on a
  few images of it (a restoration curve), to compare with the retrain oracle under the same attack.
* ``agreement``: the run's judge against a second judge on a sample of the checkpoint's images
  (Cohen's κ), for the report.
* ``attack``: presence of each forgotten concept after a white-box soft prompt attack (soft
  tokens in the name's place, trained on images of the concept, judged on fresh samples).

Both attacks take the attacker's images from ``culbench.probes.images``: ToyWorld renders, or on
Stable Diffusion the run's base model's images of the concept.
"""

from culbench.probes.base import Probe, ProbeTarget, seeds_for
from culbench.probes.runner import build_probe, load_target, run_probes

__all__ = ["Probe", "ProbeTarget", "build_probe", "load_target", "run_probes", "seeds_for"]
