"""culbench: benchmark continual concept unlearning in text-to-image diffusion models.

Python API::

    import culbench
    run_dir = culbench.run("original", sequence="mock", profile="smoke")
"""

from __future__ import annotations

import logging
from typing import Any

from culbench.provenance import culbench_version

__version__ = culbench_version()
# diffusers imports bitsandbytes wherever it is installed (the perf extra), and its import logs a
# warning about an optional 4-bit CPU kernel culbench never uses
logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
__all__ = ["__version__", "run", "validate_run"]


def __getattr__(name: str) -> Any:  # keep `import culbench` light (no torch, no numpy)
    if name == "run":
        from culbench.runner import run

        return run
    if name == "validate_run":
        from culbench.validate import validate_run

        return validate_run
    raise AttributeError(f"module 'culbench' has no attribute {name!r}")
