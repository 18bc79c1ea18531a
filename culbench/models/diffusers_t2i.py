"""``DiffusersT2I``: the one T2IModel implementation, over diffusers/transformers parts.

ToyWorld, the mocks and Stable Diffusion differ only in the weights and sizes handed to it,
so a method that runs on one runs on the others.
"""

from __future__ import annotations

import copy
import hashlib
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from culbench.errors import CulbenchError
from culbench.models.performance import Performance

_GROUPS = ("full", "xattn", "xattn_kv", "non_xattn")
#: ``state_dict()`` key prefix of a replaced text encoder's tensors (absent for the shipped one)
TEXT_PREFIX = "text_encoder."


def _in_group(name: str, group: str) -> bool:
    is_xattn = ".attn2." in name
    if group == "full":
        return True
    if group == "xattn":
        return is_xattn
    if group == "xattn_kv":
        return is_xattn and (".to_k." in name or ".to_v." in name)
    return not is_xattn  # non_xattn


def initial_noise(seeds: Sequence[int], shape: tuple[int, ...]) -> torch.Tensor:
    """Per-seed Gaussian noise drawn on CPU, so it is identical on every device and batch."""
    return torch.stack(
        [torch.randn(shape, generator=torch.Generator().manual_seed(int(s))) for s in seeds]
    )


class DiffusersT2I:
    """A text-to-image latent (or pixel) diffusion model.

    Args:
        unet: ``UNet2DConditionModel``.
        text_encoder: ``CLIPTextModel`` (frozen; a method may replace it with a trained copy, see
            :meth:`state_dict`).
        tokenizer: matching tokenizer.
        scheduler: training noise scheduler (its config also builds the DDIM sampler).
        vae: ``AutoencoderKL`` or ``None`` for pixel space (frozen).
        device: torch device string.
        sample_steps: default DDIM steps for :meth:`sample`.
        guidance: default classifier-free guidance scale (1.0 = no CFG).
        batch_size: images per forward pass in :meth:`sample` (halved for the rest of the
            model's life whenever a batch runs out of accelerator memory).
    """

    def __init__(
        self,
        unet: torch.nn.Module,
        text_encoder: torch.nn.Module,
        tokenizer: Any,
        scheduler: Any,
        vae: torch.nn.Module | None = None,
        *,
        device: str = "cpu",
        sample_steps: int = 20,
        guidance: float = 1.0,
        batch_size: int = 64,
        sample_devices: Sequence[str] = (),
    ) -> None:
        self.device = device
        self.backend = "diffusers"  # set by the builders: "mock", "toyworld", "sd"
        self.unet = unet.to(device)
        self.text_encoder = text_encoder.to(device).eval().requires_grad_(False)
        self._shipped_text = self.text_encoder  # shared by clones; never edited
        self.vae = vae.to(device).eval().requires_grad_(False) if vae is not None else None
        self.tokenizer = tokenizer
        self.scheduler = scheduler
        self.prediction_type = scheduler.config.prediction_type
        size = unet.config.sample_size
        size = size if isinstance(size, int) else size[0]
        self.latent_shape = (unet.config.in_channels, size, size)
        self.sample_steps = sample_steps
        self.guidance = guidance
        self.batch_size = batch_size
        self._embeddings: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._embeddings_of: tuple[torch.nn.Module, int] | None = None  # text_key() of the cache
        self._replicas = None
        self.performance = Performance()
        self._compiled: tuple[torch.nn.Module, Any] | None = None  # (unet, its torch.compile wrapper)
        if len(sample_devices) > 1:  # data-parallel sampling (culbench.models.replicas)
            from culbench.models.replicas import Replicas

            self._replicas = Replicas(sample_devices)

    # -- text ----------------------------------------------------------------------------
    def text_key(self) -> tuple[torch.nn.Module, int]:
        """Identity of the current text encoder's weights: the module itself (compared by
        identity; held, so its address cannot be reused by another) and its parameters' version
        counters (bumped by every in-place update): a replaced or retrained encoder differs."""
        return self.text_encoder, sum(p._version for p in self.text_encoder.parameters())

    @torch.no_grad()
    def encode(self, prompts: Sequence[str]) -> torch.Tensor:
        """Text embeddings ``(B, L, D)``; cached per prompt for the current text encoder (the
        cache empties itself when the encoder is replaced or its weights change)."""
        key = self.text_key()
        if self._embeddings_of != key:  # clones start sharing the cache: a new encoder gets its own
            self._embeddings, self._embeddings_of = OrderedDict(), key
        missing = [p for p in dict.fromkeys(prompts) if p not in self._embeddings]
        if missing:
            tokens = self.tokenizer(
                missing,
                padding="max_length",
                max_length=self.tokenizer.model_max_length,
                truncation=True,
                return_tensors="pt",
            )
            hidden = self.text_encoder(tokens.input_ids.to(self.device))[0]
            for prompt, emb in zip(missing, hidden):
                self._embeddings[prompt] = emb
            while len(self._embeddings) > 8192:
                self._embeddings.popitem(last=False)
        return torch.stack([self._embeddings[p] for p in prompts])

    # -- performance switches --------------------------------------------------------------
    def set_performance(self, performance: Performance) -> DiffusersT2I:
        """Apply :class:`~culbench.models.performance.Performance` switches to this model (and the
        clones made from it afterwards); returns the model."""
        from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

        self.performance = performance
        classic = [isinstance(p, AttnProcessor) for p in self.unet.attn_processors.values()]
        if performance.attention == "classic" and not all(classic):
            self.unet.set_attn_processor(AttnProcessor())
        elif performance.attention == "sdpa" and any(classic):  # only undoes "classic": other processors stay
            self.unet.set_attn_processor(AttnProcessor2_0())
        if performance.grad_checkpointing:
            self.unet.enable_gradient_checkpointing()
        elif self.unet.is_gradient_checkpointing:
            self.unet.disable_gradient_checkpointing()
        return self

    def performance_record(self) -> dict[str, Any]:
        """The switches in force, with the attention processors the UNet actually uses and the
        sampling batch (what each step's compute record keeps)."""
        processors = sorted({type(p).__name__ for p in self.unet.attn_processors.values()})
        return self.performance.record(attention_processors=processors, sample_batch=self.batch_size)

    def _forward(self) -> Any:
        """The UNet's forward: compiled for no-gradient calls under ``compile=true``."""
        if not self.performance.compile or torch.is_grad_enabled():
            return self.unet
        if self._compiled is None or self._compiled[0] is not self.unet:
            self._compiled = (self.unet, torch.compile(self.unet))
        return self._compiled[1]

    # -- diffusion -----------------------------------------------------------------------
    def predict(self, x_t: torch.Tensor, t: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """Raw denoiser output (ε or v) for a batch, float32 (a no-gradient call runs under the
        ``autocast`` switch)."""
        if t.ndim == 0:
            t = t.expand(x_t.shape[0])
        with self.performance.inference(self.device):
            out = self._forward()(x_t, t.to(self.device), encoder_hidden_states=emb).sample
        return out.float()

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.scheduler.add_noise(x0, noise, t.cpu()).to(x0.dtype)

    def target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.prediction_type == "v_prediction":
            return self.scheduler.get_velocity(x0, noise, t.cpu())
        return noise

    @property
    def num_train_timesteps(self) -> int:
        return int(self.scheduler.config.num_train_timesteps)

    def _sampler(self, steps: int) -> Any:
        from diffusers import DDIMScheduler

        sampler = DDIMScheduler.from_config(self.scheduler.config)
        sampler.set_timesteps(steps)
        return sampler

    @torch.no_grad()
    def sample(
        self,
        prompts: Sequence[str],
        seeds: Sequence[int],
        *,
        steps: int | None = None,
        guidance: float | None = None,
        output: str = "image",
        progress: Callable[[int], None] | None = None,
        embeddings: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """DDIM (η = 0) samples, one per (prompt, seed); see :class:`culbench.api.T2IModel`.

        ``embeddings`` ``(B, L, D)``, if given, condition sample ``i`` instead of the text
        embedding of ``prompts[i]`` (soft prompts: ``culbench.probes.attack``); the unconditional
        branch of guidance still encodes ``""``."""
        if len(prompts) != len(seeds):
            raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
        if embeddings is not None and len(embeddings) != len(prompts):
            raise ValueError(f"{len(prompts)} prompts but {len(embeddings)} embeddings")
        if output not in ("image", "latent"):
            raise ValueError(f"output must be 'image' or 'latent', not {output!r}")
        steps = steps or self.sample_steps
        guidance = self.guidance if guidance is None else guidance
        jobs = [(list(prompts[i : i + self.batch_size]), list(seeds[i : i + self.batch_size]),
                 None if embeddings is None else embeddings[i : i + self.batch_size])
                for i in range(0, len(prompts), self.batch_size)]

        def run(model: DiffusersT2I, job: tuple[list[str], list[int], Any]) -> torch.Tensor:
            try:
                x = model._denoise(job[0], job[1], steps, guidance, cond=job[2])
                x = x.to(self.device) if output == "latent" else model.decode(x)
            except torch.OutOfMemoryError:
                if len(job[0]) == 1:
                    raise
                half = (len(job[0]) + 1) // 2  # images do not depend on the batch: sample the halves apart
                model.batch_size = self.batch_size = min(self.batch_size, half)
                return torch.cat([run(model, tuple(None if part is None else part[cut] for part in job))
                                  for cut in (slice(None, half), slice(half, None))])
            if progress is not None:
                progress(len(job[0]))
            return x

        chunks = self._replicas.map(self, jobs, run) if self._replicas else [run(self, job) for job in jobs]
        return torch.cat(chunks) if chunks else torch.empty(0, *self.latent_shape)

    @torch.no_grad()
    def sample_partial(self, prompts: Sequence[str], seeds: Sequence[int], *, steps: int, stop: int,
                       guidance: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the first ``stop`` of ``steps`` DDIM steps; return ``(x_t, t)`` where ``t`` is the
        timestep the next step would denoise (ESD-style intermediate latents)."""
        if not 0 <= stop < steps:
            raise ValueError(f"stop must be in [0, {steps}), not {stop}")
        x = self._denoise(list(prompts), list(seeds), steps, guidance, stop=stop)
        return x, self._sampler(steps).timesteps[stop].expand(len(prompts))

    def _denoise(self, prompts: list[str], seeds: list[int], steps: int, guidance: float,
                 stop: int | None = None, cond: torch.Tensor | None = None) -> torch.Tensor:
        sampler = self._sampler(steps)
        x = initial_noise(seeds, self.latent_shape).to(self.device) * sampler.init_noise_sigma
        cond = self.encode(prompts) if cond is None else cond.to(self.device)
        uncond = self.encode([""] * len(prompts)) if guidance != 1.0 else None
        for t in sampler.timesteps[:stop]:
            if uncond is None:
                out = self.predict(x, t, cond)
            else:
                both = self.predict(torch.cat([x, x]), t, torch.cat([uncond, cond]))
                out_u, out_c = both.chunk(2)
                out = out_u + guidance * (out_c - out_u)
            x = sampler.step(out, t, x, eta=0.0).prev_sample
        return x

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents -> images ``(B, 3, H, W)`` in [0, 1]."""
        x = latents
        if self.vae is not None:
            x = self.vae.decode(x / self.vae.config.scaling_factor).sample
        return (x / 2 + 0.5).clamp(0, 1).float().cpu()

    # -- weights -------------------------------------------------------------------------
    def parameter_groups(self) -> dict[str, list[str]]:
        names = [name for name, _ in self.unet.named_parameters()]
        return {group: [n for n in names if _in_group(n, group)] for group in _GROUPS}

    def parameters(self, group: str = "full") -> list[torch.nn.Parameter]:
        if group not in _GROUPS:
            raise CulbenchError(
                f"unknown parameter group '{group}'", f"use one of: {', '.join(_GROUPS)}"
            )
        return [p for n, p in self.unet.named_parameters() if _in_group(n, group)]

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The UNet's tensors; plus the text encoder's (keys ``text_encoder.*``) when a method
        replaced the shipped encoder (``retrain``), so checkpoints and hashes of models with the
        shipped encoder hold the UNet alone."""
        state = {k: v.detach().to("cpu", copy=True) for k, v in self.unet.state_dict().items()}
        if self.text_encoder is not self._shipped_text:
            state.update({TEXT_PREFIX + k: v.detach().to("cpu", copy=True)
                          for k, v in self.text_encoder.state_dict().items()})
        return state

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Load :meth:`state_dict` output; without ``text_encoder.*`` keys the shipped encoder is
        put back, with them a copy of it carrying those weights."""
        text = {k[len(TEXT_PREFIX):]: v for k, v in state.items() if k.startswith(TEXT_PREFIX)}
        self.unet.load_state_dict({k: v for k, v in state.items() if not k.startswith(TEXT_PREFIX)})
        if not text:
            self.text_encoder = self._shipped_text
            return
        encoder = copy.deepcopy(self._shipped_text)
        encoder.load_state_dict(text)
        self.text_encoder = encoder.eval().requires_grad_(False)

    def clone(self) -> DiffusersT2I:
        twin = copy.copy(self)
        twin.unet = copy.deepcopy(self.unet)
        return twin

    def weights_sha256(self) -> str:
        """Hash of :meth:`state_dict` (names, dtypes, shapes and bytes, in name order)."""
        digest = hashlib.sha256()
        for name, tensor in sorted(self.state_dict().items()):
            digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
            digest.update(tensor.contiguous().view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()
