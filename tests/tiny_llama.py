"""Tiny random Llama models for the real-model path's tests, a chat template, and two tokenizers
that spell multiple-choice answer letters differently (soft labels across tokenizers): characters
only (` A` = space, `A`), and characters plus ` A` ... ` D` as single tokens, as most BPE
vocabularies have them."""

import string

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
            "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")
CHARS = string.ascii_letters + string.digits + string.punctuation + " \n"


def space_letter_tokenizer() -> PreTrainedTokenizerFast:
    """Characters, plus ` A` ... ` D` as single tokens (as in most BPE vocabularies)."""
    vocab = {"<pad>": 0, "<eos>": 1, "<unk>": 2}
    for t in [" A", " B", " C", " D", *sorted(set(CHARS))]:
        vocab[t] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r" [ABCD]|[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>",
                                   padding_side="left")


def tiny(tok, seed: int, layers: int = 2) -> LlamaForCausalLM:
    """A random Llama model (hidden 16) for tokenizer `tok`, in eval mode."""
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=layers,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=2048,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=None)
    return LlamaForCausalLM(cfg).eval()
