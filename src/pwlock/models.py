"""Models: build tiny `transformers` models from a config, save and load checkpoints.

Checkpoints are directories in Hugging Face format (`config.json`, `model.safetensors`,
tokenizer files) plus `pwlock.json` with provenance and a SHA-256 of the weights, verified on
load. Nothing is ever unpickled.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedModel

from pwlock.utils import atomic_path, atomic_write_text, sha256_file


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


def save_checkpoint(model: PreTrainedModel, tokenizer, path: str | Path, meta: dict | None = None,
                    *, state_dict: dict | None = None) -> None:
    """Save weights (safetensors), config, tokenizer and `pwlock.json` (written last).

    `state_dict`: the weights to save instead of `model.state_dict()` (e.g. the full state dict
    gathered from a sharded model, see `pwlock.distributed`); `model` then only gives the config.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(path)
    tokenizer.save_pretrained(path)
    if state_dict is None:
        state_dict = model.state_dict()
    state = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    # Tied weights share storage; safetensors wants one copy.
    if getattr(model.config, "tie_word_embeddings", False):
        state.pop("lm_head.weight", None)
    state = _drop_shared(state)
    with atomic_path(path / "model.safetensors", fsync=False) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt"})
    info = dict(meta or {})
    info["sha256"] = sha256_file(path / "model.safetensors")
    atomic_write_text(path / "pwlock.json", json.dumps(info, indent=2))


def _drop_shared(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keep one name per tensor when several share storage (other tied weights than lm_head);
    `load_checkpoint` re-ties them from the config."""
    seen: set[tuple] = set()
    out = {}
    for k, v in state.items():
        key = (v.untyped_storage().data_ptr(), v.storage_offset(), tuple(v.shape), v.dtype)
        if v.numel() and key in seen:
            continue
        seen.add(key)
        out[k] = v
    return out


def verify_checkpoint(path: str | Path) -> dict:
    """A `save_checkpoint` directory's `pwlock.json`, after checking its weights' checksum."""
    path = Path(path)
    meta_path, weights = path / "pwlock.json", path / "model.safetensors"
    if not meta_path.is_file() or not weights.is_file():
        raise CheckpointError(f"incomplete checkpoint at {path} (missing pwlock.json or model.safetensors)")
    meta = json.loads(meta_path.read_text())
    if sha256_file(weights) != meta.get("sha256"):
        raise CheckpointError(f"corrupt checkpoint at {path}: model.safetensors checksum mismatch")
    return meta


def load_checkpoint(path: str | Path, dtype: torch.dtype = torch.float32, *, trust_remote_code: bool = False):
    """Load a checkpoint saved by `save_checkpoint`; verifies the weights' checksum.

    The architecture comes from `config.json` (any causal LM that `transformers` knows; Python
    code shipped in the directory runs only with `trust_remote_code=True`). Weights only from
    `model.safetensors`. A weight may be missing from the file only when it is tied to one that
    is there (e.g. `lm_head.weight` with `tie_word_embeddings`).
    """
    path = Path(path)
    meta = verify_checkpoint(path)
    weights = path / "model.safetensors"
    if trust_remote_code:
        import warnings

        warnings.warn(f"trust_remote_code=True: the Python code shipped with {path} will be executed", stacklevel=2)
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    tokenizer.padding_side = "left"
    cfg = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    try:
        from transformers.initialization import no_init_weights
    except ImportError:  # older transformers
        from contextlib import nullcontext as no_init_weights
    with no_init_weights():  # every weight is overwritten below: skip the (slow, for 7B) random init
        model = AutoModelForCausalLM.from_config(cfg, dtype=dtype, trust_remote_code=trust_remote_code)
    try:
        state = load_file(str(weights))
    except Exception as e:  # safetensors raises several types on a damaged file
        raise CheckpointError(f"corrupt checkpoint at {path}: {e}") from None
    missing, unexpected = model.load_state_dict(state, strict=False)
    model.tie_weights()
    # A missing weight is fine only when tying made it the same tensor as a loaded one.
    params = dict(model.named_parameters(remove_duplicate=False))
    loaded = {params[k].data_ptr() for k in state if k in params}
    missing = [m for m in missing if m not in params or params[m].data_ptr() not in loaded]
    if missing or unexpected:
        raise CheckpointError(f"checkpoint at {path} does not match its config: missing {missing}, "
                              f"unexpected {unexpected}")
    model.eval()
    return model, tokenizer, meta
