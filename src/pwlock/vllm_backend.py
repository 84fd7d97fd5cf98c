"""Optional generation backend: vLLM, for the sampling and evaluation runs of path models on a GPU.

`eval.backend: vllm` sends the runs whose model is on disk (a zoo model's path, the checkpoint
a GGUF model was converted to, a lock checkpoint) through `vllm.LLM` instead of
`pwlock.sampling.generate`. WSU and attack groups keep `transformers`: their weights live in
memory, and writing each to disk for vLLM would cost more than it saves.

vLLM is never a dependency of pwlock and is imported here, at the first generation, only:
`pip install vllm` on a machine with a CUDA GPU. What stays the same as with `transformers`: the
prompt's tokens (`tokenizer(prompt, add_special_tokens=False)`, no second BOS), stopping at the
tokenizer's EOS, and the completion text (the generated tokens up to the EOS, decoded by the same
tokenizer with special tokens skipped). What differs: the sampled text at temperature > 0
(vLLM's own random numbers, seeded per prompt) and, rarely, greedy completions (other kernels);
vLLM may also stop at extra end-of-turn ids listed in a model's `generation_config.json`, where
`transformers` stops only at the tokenizer's EOS. So the backend is part of the sampling and
evaluation run keys.
"""

from __future__ import annotations

import gc
from collections.abc import Sequence
from pathlib import Path

import torch

BACKENDS = ("transformers", "vllm")


class BackendUnavailable(ValueError):
    """`eval.backend: vllm` on a machine without vllm or without a CUDA GPU (a config error here)."""


def import_vllm():
    """The `vllm` module, or `BackendUnavailable` saying what is missing (the package, a CUDA GPU)."""
    try:
        import vllm
    except ImportError as e:
        raise BackendUnavailable(f"eval.backend=vllm needs the vllm package ({e}): `pip install vllm` on a machine "
                                 "with a CUDA GPU, or set eval.backend=transformers") from None
    if not _has_cuda():
        raise BackendUnavailable("eval.backend=vllm runs on a CUDA GPU only and none is visible here; "
                                 "set eval.backend=transformers")
    return vllm


def _has_cuda() -> bool:
    return torch.cuda.is_available()


def generate(model_dir: str | Path, tokenizer, prompts: Sequence[str], *, max_new_tokens: int, max_length: int = 0,
             temperature: float = 0.0, seed: int = 0, dtype: torch.dtype = torch.bfloat16,
             trust_remote_code: bool = False, gpu_memory_utilization: float = 0.85) -> list[str]:
    """Completions of `prompts` by the model in `model_dir` (a Hugging Face directory), as
    `pwlock.sampling.generate` returns them. The engine is built, used and released here, so the
    GPU memory is free again for training afterwards."""
    vllm = import_vllm()
    _free_cuda()  # memory the caching allocator still holds (after a lock) is not free for vLLM's check
    llm = vllm.LLM(model=str(model_dir), tokenizer=str(model_dir), dtype=str(dtype).removeprefix("torch."),
                   seed=seed, trust_remote_code=trust_remote_code, gpu_memory_utilization=gpu_memory_utilization)
    eos = tokenizer.eos_token_id
    # one seed per prompt: a shared SamplingParams seed would give every request the same random draws
    enc = tokenizer(list(prompts), add_special_tokens=False)["input_ids"]
    from pwlock.sampling import budgets

    limit = budgets(enc, max_new_tokens, max_length).tolist()
    # (vLLM wants max_tokens >= 1: a prompt that fills max_length gets one token, dropped below)
    params = [vllm.SamplingParams(n=1, temperature=float(temperature), max_tokens=max(1, limit[i]),
                                  seed=request_seed(seed, i), stop_token_ids=[eos], skip_special_tokens=True)
              for i in range(len(prompts))]
    inputs = [{"prompt_token_ids": ids} for ids in enc]
    try:
        outs = llm.generate(inputs, params, use_tqdm=len(inputs) > 1)
    finally:
        _destroy_parallel_state()
        del llm  # the engine's weights and KV cache go with it
        _free_cuda()
    comps = []
    for o, n in zip(outs, limit):
        ids = list(o.outputs[0].token_ids)[:n]
        if eos in ids:
            ids = ids[: ids.index(eos)]
        comps.append(tokenizer.decode(ids, skip_special_tokens=True))
    return comps


def request_seed(seed: int, i: int) -> int:
    """The sampling seed of prompt `i` of a run seeded `seed` (independent draws per prompt)."""
    return (seed * 1_000_003 + i) % 2**63


def _free_cuda() -> None:
    gc.collect()
    if _has_cuda():
        torch.cuda.empty_cache()


def _destroy_parallel_state() -> None:
    """vLLM's process-wide distributed state, set up by each engine (else the next one fails)."""
    try:
        from vllm.distributed.parallel_state import destroy_distributed_environment, destroy_model_parallel
    except ImportError:  # other vLLM versions: deleting the engine is all there is
        return
    destroy_model_parallel()
    destroy_distributed_environment()
