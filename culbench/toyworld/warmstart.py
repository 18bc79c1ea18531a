"""Warm starts across ToyWorld model versions: a newer version's text encoder + UNet begin as the
shipped weights of an older one, so that only what changed (the vocabulary, the captions) has to
be learned.

The text encoder's token embedding is remapped row by row: a word both vocabularies share keeps
its row; a word only the newer vocabulary has starts from a fresh random row (normal, std 0.02,
as CLIP initialises it), so the model learns what it means from the captions, not from a copy of
another word's row.
"""

from __future__ import annotations

from typing import Any

import torch

EMBEDDING_KEY = "embeddings.token_embedding.weight"


def remap_embedding(old: torch.Tensor, old_vocab: dict[str, int], new_vocab: dict[str, int],
                    generator: torch.Generator) -> torch.Tensor:
    """A ``(len(new_vocab), dim)`` embedding: shared words keep their ``old`` rows, new words get
    random rows.

    >>> old = torch.arange(6.0).reshape(3, 2)
    >>> new = remap_embedding(old, {"a": 0, "b": 1, "c": 2}, {"a": 0, "c": 1, "b": 2, "d": 3},
    ...                       torch.Generator().manual_seed(0))
    >>> new[:3].tolist(), tuple(new.shape)
    ([[0.0, 1.0], [4.0, 5.0], [2.0, 3.0]], (4, 2))
    """
    out = torch.randn((len(new_vocab), old.shape[1]), generator=generator) * 0.02
    for word, row in new_vocab.items():
        if word in old_vocab:
            out[row] = old[old_vocab[word]]
    return out


def warm_states(from_version: int, to_version: int, seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """UNet and text-encoder state dicts of the shipped ``from_version`` model, the embedding
    remapped to ``to_version``'s vocabulary (new rows drawn from ``seed``)."""
    from culbench.toyworld import assets
    from culbench.toyworld.model import tokenizer, weights_folder

    folder = weights_folder(from_version)
    unet = assets.load_tensors("unet.safetensors", folder)
    text = assets.load_tensors("text_encoder.safetensors", folder)
    text = {k: v.float() if v.is_floating_point() else v for k, v in text.items()}
    unet = {k: v.float() if v.is_floating_point() else v for k, v in unet.items()}
    generator = torch.Generator().manual_seed(seed)
    text[EMBEDDING_KEY] = remap_embedding(text[EMBEDDING_KEY], tokenizer(from_version).get_vocab(),
                                          tokenizer(to_version).get_vocab(), generator)
    return unet, text
