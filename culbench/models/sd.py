"""The Stable Diffusion backend: a ``T2IModel`` from a diffusers SD v1.x folder (or a cached hub id).

Nothing is downloaded unless the user passes a hub id *and* ``allow_download=true``; on
this project's machines (``HF_HUB_OFFLINE=1``) a hub id must already be in the local cache.
The UNet — the part methods train — is kept in float32; the frozen text encoder and VAE run in
float16 on CUDA (``dtype="auto"``), float32 on CPU. Attention uses PyTorch SDPA (diffusers'
default processor on torch 2).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from culbench.compute import check_device
from culbench.errors import CulbenchError
from culbench.models.diffusers_t2i import DiffusersT2I
from culbench.models.performance import Performance

COMPONENTS = ("unet", "text_encoder", "tokenizer", "vae", "scheduler")


def _check_folder(folder: Path) -> None:
    missing = [c for c in COMPONENTS if not (folder / c).is_dir()]
    if not (folder / "model_index.json").is_file() or missing:
        raise CulbenchError(
            f"{folder} is not a diffusers Stable Diffusion folder (missing: "
            f"{', '.join(missing) or 'model_index.json'})",
            "pass the folder written by StableDiffusionPipeline.save_pretrained (it holds "
            "model_index.json, unet/, text_encoder/, tokenizer/, vae/, scheduler/)")


def _resolve(model: str, allow_download: bool) -> tuple[str, bool]:
    """``(path_or_id, local_files_only)`` after checking that the weights can be found."""
    path = Path(model).expanduser()
    if path.exists():
        _check_folder(path)
        return str(path), True
    if "/" not in model or model.startswith((".", "/", "~")):
        raise CulbenchError(f"model folder {model} does not exist",
                            "pass a local Stable Diffusion folder or a hub id such as CompVis/stable-diffusion-v1-4")
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
    return model, offline or not allow_download


def build_sd_model(
    *, model: str | None = None, device: str = "cpu", dtype: str = "auto", sample_steps: int = 50,
    guidance: float = 7.5, batch_size: int = 8, allow_download: bool = False, devices: str = "", **switches: Any,
) -> DiffusersT2I:
    """Load an SD v1.x model.

    Args:
        model: a diffusers folder, or a hub id already in the local cache (``allow_download``
            lets diffusers fetch it when online).
        device: torch device; ``cuda`` must be available when asked for.
        dtype: ``auto`` (float16 frozen parts on CUDA, float32 on CPU), ``float32``,
            ``float16`` or ``bfloat16`` for the frozen text encoder and VAE.
        sample_steps, guidance, batch_size: sampler defaults (a sequence's eval settings win).
        devices: comma-separated devices to sample on in parallel (``cuda:0,cuda:1``; the model
            itself lives on ``device``, which should be the first of them).
        switches: speed and memory switches (:mod:`culbench.models.performance`).
    """
    import importlib.util

    import torch

    if not model:
        raise CulbenchError("the Stable Diffusion backend needs a model",
                            "pass --model PATH_OR_ID (a diffusers SD v1.x folder, e.g. one saved by save_pretrained)")
    sample_devices = [d.strip() for d in str(devices).split(",") if d.strip()]
    for wanted in (device, *sample_devices):
        check_device(wanted)
    frozen_dtype = {"auto": torch.float16 if device.startswith("cuda") else torch.float32,
                    "float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}.get(dtype)
    if frozen_dtype is None:
        raise CulbenchError(f"unknown dtype '{dtype}'", "use auto, float32, float16 or bfloat16")
    source, local_only = _resolve(model, allow_download)
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    common = {"local_files_only": local_only}
    # diffusers loads without allocating twice only with accelerate; say which, so it does not warn
    lean = {"low_cpu_mem_usage": importlib.util.find_spec("accelerate") is not None}
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # a loading bar per component is noise in culbench's output
    try:
        unet = UNet2DConditionModel.from_pretrained(source, subfolder="unet", torch_dtype=torch.float32, **common,
                                                    **lean)
        text = CLIPTextModel.from_pretrained(source, subfolder="text_encoder", torch_dtype=frozen_dtype, **common)
        tokenizer = CLIPTokenizer.from_pretrained(source, subfolder="tokenizer", **common)
        vae = AutoencoderKL.from_pretrained(source, subfolder="vae", torch_dtype=frozen_dtype, **common, **lean)
        scheduler = DDPMScheduler.from_pretrained(source, subfolder="scheduler", **common)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CulbenchError(f"could not load Stable Diffusion weights from {model} ({first})",
                            "check the folder (or that the hub id is in your HF cache; downloads need "
                            "--model-option allow_download=true and a network)") from None
    loaded = _SDModel(unet, text, tokenizer, scheduler, vae, device=device, sample_steps=sample_steps,
                      guidance=guidance, batch_size=batch_size, sample_devices=sample_devices)
    loaded.backend = "sd"
    return loaded.set_performance(Performance.parse(switches))


class _SDModel(DiffusersT2I):
    """``DiffusersT2I`` whose frozen parts may run in a lower precision than the UNet."""

    def encode(self, prompts):  # noqa: ANN001, ANN201 - same signature as the base class
        return super().encode(prompts).float()

    def decode(self, latents):  # noqa: ANN001, ANN201
        dtype = next(self.vae.parameters()).dtype if self.vae is not None else latents.dtype
        return super().decode(latents.to(dtype))
