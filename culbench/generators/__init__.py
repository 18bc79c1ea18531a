"""Generators of the built-in task files (data under ``tasks/``), each deterministic:

* ``toy10``: the embedded ToyWorld sequence (``python -m culbench.generators.toy10 tasks/toy10``);
* ``sd15``: DFR's 10-step sequence on Stable Diffusion 1.5 (``python -m culbench.generators.sd15
  tasks/dfr10-sd15``);
* ``unlearncanvas``: the UnlearnCanvas sequences ``uc-styles12`` and ``uc-objects12``
  (``python -m culbench.generators.unlearncanvas tasks``).

A test per generator fails when the committed files differ from what it writes. Loading task
files is ``culbench.tasks``'s job.
"""
