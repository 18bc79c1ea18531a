"""``culbench sd``: the Stable Diffusion tier's tools."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from culbench.cli.console import console

EXAMPLES = """Examples:

  culbench sd make-random-model /data/sd15-random          # SD v1.5's exact configuration, random weights (~4 GB)

  culbench run --sequence dfr10-sd15 --model /data/sd15-random --profile smoke --dry-run
"""

app = typer.Typer(help="The Stable Diffusion tier's tools.", no_args_is_help=True)


@app.command("make-random-model", epilog=EXAMPLES)
def make_random_model(
    path: Annotated[Path, typer.Argument(help="Folder to write (a diffusers layout, as save_pretrained writes).")],
    size: Annotated[str, typer.Option(
        help="full (SD v1.5: 860 M-parameter UNet, CLIP ViT-L/14) | tiny (tests).")] = "full",
    seed: Annotated[int, typer.Option(help="Seed of the random initialisation.")] = 0,
) -> None:
    """Write a randomly initialised SD v1.5-configured model (CLIP's real tokenizer, offline): real
    size, cost and memory for --model PATH without downloading weights. Its images are noise."""
    from culbench.errors import CulbenchError
    from culbench.models.sd_random import write_random_sd

    if path.exists() and any(path.iterdir()):
        raise CulbenchError(f"{path} exists and is not empty", "give a new folder, or delete that one")
    write_random_sd(path, size=size, seed=seed)
    console.print(f"wrote {path} (random SD v1.5 configuration, size {size}); use it with --model {path}",
                  highlight=False, soft_wrap=True)
