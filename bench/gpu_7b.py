"""Benchmark (GPU): full fine-tuning of a 7B-shaped model, bf16, Lion, sequence length 1024.

    python bench/gpu_7b.py [--batch 8] [--steps 6] [--layers 30] [--peak-tflops 989]

The model is DeepSeek-Math-7B-shaped (Llama architecture: d=4096, 30 layers, MLP 11008,
vocabulary 102400) built from its config with random weights (no download), in bf16 with
gradient checkpointing, trained with pwlock's Lion on random tokens. Prints tokens/s, the
model FLOPs utilisation (6 x parameters + attention, per token, over the GPU's dense bf16 peak:
989 TFLOP/s for H100/H200 SXM) and the peak memory. Note: pure-bf16 Lion at the write-up's lr
(1.5e-6) loses most updates to rounding (docs/real-models.md); this measures speed only.
"""

from __future__ import annotations

import argparse
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from pwlock.train import Lion


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--layers", type=int, default=30)
    ap.add_argument("--peak-tflops", type=float, default=989.0)
    a = ap.parse_args()
    assert torch.cuda.is_available(), "needs a CUDA GPU"
    cfg = LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=a.layers, num_attention_heads=32,
                      num_key_value_heads=32, vocab_size=102400, max_position_embeddings=4096,
                      tie_word_embeddings=False, attn_implementation="sdpa", torch_dtype=torch.bfloat16)
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = LlamaForCausalLM(cfg).to(torch.bfloat16)
    model.gradient_checkpointing_enable()
    model.config.use_cache = False
    model.train()
    n = sum(p.numel() for p in model.parameters())
    opt = Lion(model.parameters(), lr=1.5e-6)
    ids = torch.randint(0, cfg.vocab_size, (a.batch, a.seq), device="cuda")

    def step():
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(2):
        step()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(a.steps):
        step()
    torch.cuda.synchronize()
    dt = (time.perf_counter() - t) / a.steps
    tok_s = a.batch * a.seq / dt
    flops_per_token = 6 * n + 12 * a.layers * cfg.hidden_size * a.seq  # model FLOPs (recompute not counted)
    mfu = tok_s * flops_per_token / (a.peak_tflops * 1e12)
    print(f"{torch.cuda.get_device_name()}: {n / 1e9:.2f} B parameters, batch {a.batch} x {a.seq}, bf16, Lion, "
          f"gradient checkpointing")
    print(f"| step s | tokens/s | MFU | peak memory GiB |\n|---|---|---|---|\n"
          f"| {dt:.2f} | {tok_s:,.0f} | {mfu:.1%} | {torch.cuda.max_memory_allocated() / 2**30:.1f} |")


if __name__ == "__main__":
    main()
