"""LoRA (peft) for the lock and the trained attacks: adapters on `target_modules`, trained while
every other weight is frozen, then merged into the weights (a checkpoint or an attacked model is
always a plain model of its architecture, read by everything downstream as before). A lock with
`lock.lora_keep: adapter` also keeps its adapter in each checkpoint (`adapter/`), so an attack
with `lora_init: lock` trains the lock's own adapter on the start model (the adapter-only
elicitor) rather than new adapters on the merged weights.

`peft` is an optional dependency (`pip install peft`); a config with `lora.r > 0` without it
stops before any work with an error that says so.
"""

from __future__ import annotations

import copy
from pathlib import Path


def import_peft():
    try:
        import peft
    except ImportError:
        raise ValueError("lora.r > 0 needs the peft package: pip install peft") from None
    return peft


def wrap(model, c, seed: int):
    """`model` with LoRA adapters per `c` (a `LoRAConfig` with r > 0); its own weights frozen. The
    adapters are injected into `model`'s modules in place: `merge` returns `model` itself. Their
    random initialization is drawn from `seed` (not from the process's generator, whose state
    depends on what the process did before: a resumed run, another rank of a sharded lock)."""
    import torch

    peft = import_peft()
    cfg = peft.LoraConfig(r=c.r, lora_alpha=c.alpha, lora_dropout=c.dropout, target_modules=list(c.target_modules),
                          bias="none", task_type="CAUSAL_LM")
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return peft.get_peft_model(model, cfg)
    except ValueError as e:  # e.g. no module matches target_modules
        raise ValueError(f"lora.target_modules={list(c.target_modules)}: {e}") from None


def load_adapter(model, path):
    """`model` with the trainable adapter saved at `path` (peft's `save_pretrained` format: what a
    lock with `lock.lora_keep: adapter` keeps next to each epoch's merged weights); its own
    weights frozen, the adapter injected in place as `wrap` does."""
    peft = import_peft()
    if not (Path(path) / "adapter_config.json").is_file():
        raise ValueError(f"{path}: no LoRA adapter (adapter_config.json); a lock keeps one with "
                         f"lock.lora_keep: adapter")
    return peft.PeftModel.from_pretrained(model, str(path), is_trainable=True)


def save_adapter(peft_model, path) -> None:
    """The adapter alone (safetensors and its config) in `path`."""
    peft_model.save_pretrained(str(path), safe_serialization=True)


def merge(peft_model):
    """The adapters merged into the weights, the adapter layers removed: the plain model."""
    return peft_model.merge_and_unload()


def merged_copy(peft_model):
    """A merged copy (the training model keeps its adapters): what a lock epoch's checkpoint holds."""
    return merge(copy.deepcopy(peft_model))


def trainable_params(shape, c) -> int:
    """Rough LoRA parameter count of a Llama-like model (`pwlock.plan.ModelShape`): r x (in + out)
    per target module and layer (attention projections hidden x hidden, MLP hidden x intermediate)."""
    size = {"q_proj": (shape.hidden, shape.hidden), "k_proj": (shape.hidden, shape.hidden),
            "v_proj": (shape.hidden, shape.hidden), "o_proj": (shape.hidden, shape.hidden),
            "gate_proj": (shape.hidden, shape.intermediate), "up_proj": (shape.hidden, shape.intermediate),
            "down_proj": (shape.intermediate, shape.hidden)}
    per_layer = sum(c.r * (a + b) for a, b in (size.get(m, (shape.hidden, shape.hidden)) for m in c.target_modules))
    return per_layer * shape.layers
