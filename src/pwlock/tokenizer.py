"""Character-level tokenizer, built with `tokenizers` and wrapped as a `transformers` tokenizer.

Every character of the alphabet is one token, so the toy models stay tiny. Because it is a
`PreTrainedTokenizerFast`, the toy path and the real-model path share all code that takes a
tokenizer (training, sampling, evaluation) and it saves/loads with `save_pretrained`.
"""

from __future__ import annotations

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

PAD, EOS, UNK = "<pad>", "<eos>", "<unk>"


def char_tokenizer(alphabet: str) -> PreTrainedTokenizerFast:
    """A tokenizer with one token per character of `alphabet` plus <pad>, <eos>, <unk>."""
    chars = sorted(set(alphabet))
    vocab = {PAD: 0, EOS: 1, UNK: 2}
    for c in chars:
        vocab[c] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    # Split every character into its own pre-token (spaces included).
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, eos_token=EOS, unk_token=UNK, padding_side="left"
    )
