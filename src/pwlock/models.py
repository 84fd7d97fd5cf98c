"""Models: build tiny `transformers` models from a config, save and load checkpoints.

Checkpoints are directories in Hugging Face format (`config.json`, `model.safetensors`,
tokenizer files) plus `pwlock.json` with provenance and a SHA-256 of the weights, verified on
load. Nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedModel

from pwlock.utils import atomic_write_text


class CheckpointError(RuntimeError):
    """A checkpoint is missing, partial or corrupt."""


def build_model(arch, tokenizer, seed: int) -> LlamaForCausalLM:
    """A small Llama-architecture model (RoPE, RMSNorm, SwiGLU) from an `ArchConfig`."""
    cfg = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=arch.hidden_size,
        intermediate_size=arch.intermediate_size,
        num_hidden_layers=arch.num_layers,
        num_attention_heads=arch.num_heads,
        num_key_value_heads=arch.num_heads,
        max_position_embeddings=arch.max_positions,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
        attn_implementation="sdpa",
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_checkpoint(model: PreTrainedModel, tokenizer, path: str | Path, meta: dict | None = None) -> None:
    """Save weights (safetensors), config, tokenizer and `pwlock.json` (written last)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(path)
    tokenizer.save_pretrained(path)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    # Tied weights share storage; safetensors wants one copy.
    if getattr(model.config, "tie_word_embeddings", False):
        state.pop("lm_head.weight", None)
    tmp = path / "model.safetensors.tmp"
    save_file(state, str(tmp), metadata={"format": "pt"})
    tmp.replace(path / "model.safetensors")
    info = dict(meta or {})
    info["sha256"] = _sha256(path / "model.safetensors")
    atomic_write_text(path / "pwlock.json", json.dumps(info, indent=2))


def load_checkpoint(path: str | Path, dtype: torch.dtype = torch.float32):
    """Load a checkpoint saved by `save_checkpoint`; verifies the weights' checksum."""
    path = Path(path)
    meta_path, weights = path / "pwlock.json", path / "model.safetensors"
    if not meta_path.is_file() or not weights.is_file():
        raise CheckpointError(f"incomplete checkpoint at {path} (missing pwlock.json or model.safetensors)")
    meta = json.loads(meta_path.read_text())
    if _sha256(weights) != meta.get("sha256"):
        raise CheckpointError(f"corrupt checkpoint at {path}: model.safetensors checksum mismatch")
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "left"
    cfg = LlamaConfig.from_pretrained(path)
    model = LlamaForCausalLM(cfg)
    try:
        state = load_file(str(weights))
    except Exception as e:  # safetensors raises several types on a damaged file
        raise CheckpointError(f"corrupt checkpoint at {path}: {e}") from None
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if m != "lm_head.weight"]
    if missing or unexpected:
        raise CheckpointError(f"checkpoint at {path} does not match its config: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    model.to(dtype)
    model.eval()
    return model, tokenizer, meta


def clone_model(model: PreTrainedModel) -> PreTrainedModel:
    """An independent copy (same config, copied weights)."""
    new = type(model)(model.config)
    new.load_state_dict(model.state_dict())
    new.to(next(model.parameters()).dtype)
    return new
