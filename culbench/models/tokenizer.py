"""An offline word-level tokenizer for closed-vocabulary worlds (mock, ToyWorld).

Stable Diffusion's CLIP BPE tokenizer has 49,408 entries; a 64-wide text encoder over it
would spend 12 MB on an embedding table for words ToyWorld never uses. A closed word
vocabulary keeps the text encoder tiny, needs no download, and is saved/loaded with
``save_pretrained``/``from_pretrained`` like any transformers tokenizer. The SD tier uses
the real CLIP tokenizer from the model folder.
"""

from __future__ import annotations

from collections.abc import Iterable

BOS, EOS, UNK = "<|startoftext|>", "<|endoftext|>", "<|unk|>"


def word_tokenizer(words: Iterable[str], max_length: int = 16):  # -> PreTrainedTokenizerFast
    """A CLIP-style tokenizer (BOS ... EOS, padded with EOS) over ``words``.

    Args:
        words: the vocabulary; case-insensitive; punctuation ``,`` and ``.`` are added.
        max_length: padded/truncated sequence length including BOS and EOS.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {BOS: 0, EOS: 1, UNK: 2}
    for word in sorted({w.lower() for w in words} | {",", "."}):
        vocab.setdefault(word, len(vocab))
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A {EOS}", special_tokens=[(BOS, vocab[BOS]), (EOS, vocab[EOS])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        pad_token=EOS,
        model_max_length=max_length,
    )
