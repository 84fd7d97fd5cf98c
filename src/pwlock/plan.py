"""`pwlock run CONFIG --dry-run`: check a config's paths, list the runs it would compute, and
estimate the memory of full fine-tuning of its strong model. Nothing is loaded or written.

- **Paths**: every zoo model's `path` (a Hugging Face or pwlock checkpoint directory, or a GGUF
  file) and `task.data_dir` must exist; a missing one is a `FileNotFoundError` (or the task's
  `DataError`) naming it and the layout expected there.
- **Plan**: the runs of each stage (zoo / samples / lock / eval / wsu, or attack), the same run
  keys as `pwlock run` (the same job graph, `pwlock.experiments`), and how many are already cached in `runs_dir` (a
  `run.json` marked finished with the right key; the files are not re-hashed here).
- **Memory**: `memory_estimate` for the strong model, per dtype, from its parameter count
  (a path model's `config.json` or GGUF header, built on the meta device: no weights read).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

GB = 1e9

OPTIMIZER_STATES = {"adamw": 2, "lion": 1}  # fp32 buffers per parameter


def check_paths(cfg) -> list[str]:
    """Check every path of `cfg`; returns one line per path checked (raises on a missing one)."""
    from pwlock import hf

    lines = []
    for i, m in enumerate(cfg.zoo):
        if not m.path:
            lines.append(f"zoo model {m.name!r}: toy model (trained here)")
            continue
        hf.check_model_path(m.path, m.gguf_file or None, what=f"zoo model {m.name!r} (zoo.{i}.path)")
        kind = "GGUF file" if hf.split_gguf(m.path, m.gguf_file or None)[1] else (
            "pwlock checkpoint" if (Path(m.path).expanduser() / "pwlock.json").is_file() else "Hugging Face directory")
        lines.append(f"zoo model {m.name!r}: {m.path}{' / ' + m.gguf_file if m.gguf_file else ''} ({kind}) ok")
    if cfg.task.name in ("math", "mc"):
        from pwlock.tasks import math as math_task
        from pwlock.tasks import mc as mc_task
        from pwlock.tasks.data import data_dir

        layout = math_task.LAYOUT if cfg.task.name == "math" else mc_task.LAYOUT
        d = data_dir(cfg.task, layout)  # DataError naming the path and the layout
        lines.append(f"task.data_dir: {d} ok")
    return lines


@dataclass
class StagePlan:
    stage: str
    ids: list[str]
    cached: int
    note: str = ""


def _cached(run) -> bool:
    """Finished with the right key (cheap: the manifest is checked when the run is used)."""
    p = run.dir / "run.json"
    if not p.is_file():
        return False
    try:
        info = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return info.get("status") == "finished" and info.get("key") == run.key


STAGES = ("zoo", "samples", "lock", "eval", "wsu", "attack")


def _notes(ctx) -> dict[str, str]:
    cfg = ctx.cfg
    n_path = sum(bool(m.path) for m in cfg.zoo)
    w = cfg.wsu
    n_sft = sum(bool(m.path and m.sft_steps) for m in cfg.zoo)
    return {"zoo": f"{len(cfg.zoo) - n_path} trained here, {n_path} from a path"
                   + (f" ({n_sft} fine-tuned here)" if n_sft else ""),
            "samples": f"strong greedy on lock; weak T={cfg.lock.weak_temperature} on lock and elicit",
            "lock": f"{cfg.lock.epochs} epochs x {len(ctx.splits['lock'])} problems x 2, checkpoint per epoch",
            "eval": f"{len(ctx.splits['test'])} test problems, greedy, <= {cfg.eval.max_new_tokens} tokens",
            "wsu": f"{cfg.lock.epochs} epochs x {w.seeds} seeds, {w.n_samples} samples x {w.steps} steps; "
                   f"{min(w.max_stack or w.seeds, w.seeds)} seed(s) trained together",
            "attack": f"{len(cfg.attacks)} attacks"}


def plan_runs(cfg, threads: int | None = None) -> list[StagePlan]:
    """The runs `pwlock run` would use, by stage (variants: each variant's stages, prefixed with
    its name), read from the same job graph the run executes (`pwlock.experiments`)."""
    from pwlock.experiments import plan

    out = []
    for prefix, ctx, phases in plan(cfg, threads):
        by_stage: dict[str, list] = {}
        for ph in phases:
            for j in ph.jobs:
                for r in j.runs:
                    by_stage.setdefault(r.stage, []).append(r)
        notes = _notes(ctx)
        out += [StagePlan(f"{prefix}{stage}", [r.id for r in rs], sum(_cached(r) for r in rs), notes[stage])
                for stage, rs in sorted(by_stage.items(), key=lambda kv: STAGES.index(kv[0]))]
    return out


def planned_run_ids(cfg) -> dict[str, list[str]]:
    """Every run id an experiment uses, by stage (variants: each variant's runs, merged), sorted.
    What the golden run-id test (tests/unit/test_run_ids.py) compares against its fixture."""
    from pwlock.experiments import plan

    out: dict[str, set] = {}
    for _, _, phases in plan(cfg, torch.get_num_threads()):
        for ph in phases:
            for j in ph.jobs:
                stage = "elicit" if j.stage in ("wsu", "attack") else j.stage
                out.setdefault(stage, set()).update(r.id for r in j.runs)
    return {k: sorted(v) for k, v in out.items()}


# ---------------------------------------------------------------------------------------------
# Memory


@dataclass
class ModelShape:
    n_params: int
    hidden: int
    layers: int
    intermediate: int
    vocab: int


def model_shape(p, name: str) -> ModelShape:
    """Parameter count and shape of zoo model `name`, built on the meta device (no weights read)."""
    from pwlock import hf
    from pwlock.models import build_model

    m = p.zoo_cfg[name]
    if m.path:
        config = hf.model_config(m.path, m.gguf_file or None, trust_remote_code=m.trust_remote_code)
        n = hf.count_params(config, trust_remote_code=m.trust_remote_code)
    else:
        with torch.device("meta"):
            model = build_model(m.arch, p.tok, 0)
        config, n = model.config, sum(x.numel() for x in model.parameters())
    def get(*keys):
        return next((getattr(config, k) for k in keys if getattr(config, k, None)), 0)

    return ModelShape(n, get("hidden_size", "n_embd", "d_model"), get("num_hidden_layers", "n_layer"),
                      get("intermediate_size", "n_inner") or 4 * get("hidden_size", "n_embd", "d_model"),
                      get("vocab_size"))


def memory_estimate(shape: ModelShape, dtype: str, optimizer: str, batch: int, seq_len: int,
                    gradient_checkpointing: bool, copies: int = 1, trainable: int | None = None) -> dict[str, float]:
    """Bytes of full fine-tuning (GB = 1e9 bytes), as pwlock trains: weights and gradients in the
    model's dtype; for bf16, fp32 master weights (`pwlock.train.MasterWeights`); the optimizer's
    fp32 state (AdamW 2 buffers, Lion 1). `copies`: stacked runs (WSU seeds trained together).
    `trainable`: LoRA's adapter parameters (fp32), the only ones with gradients and optimizer state.

    Activations are rough: per token and layer ~(10 x hidden + 4 x intermediate) values in the
    model's dtype (all kept), or with gradient checkpointing the block inputs plus one block
    recomputed; plus the logits and their fp32 loss intermediates (~(w + 12) bytes per logit).
    """
    if optimizer not in OPTIMIZER_STATES:
        raise ValueError(f"unknown optimizer {optimizer!r}")
    w = {"bf16": 2, "fp16": 2, "fp32": 4}[dtype]
    n = shape.n_params * copies
    out = {"weights": n * w, "gradients": n * w, "master weights": n * 4 if w < 4 else 0,
           "optimizer state": n * 4 * OPTIMIZER_STATES[optimizer]}
    if trainable:  # adapters in fp32 (peft's default): their weights, gradients and optimizer state only
        t = trainable * copies
        out = {"weights": n * w + t * 4, "gradients": t * 4, "master weights": 0,
               "optimizer state": t * 4 * OPTIMIZER_STATES[optimizer]}
    tokens = batch * seq_len * copies
    per_layer = (10 * shape.hidden + 4 * shape.intermediate) * w
    if gradient_checkpointing:
        act = tokens * (shape.layers * shape.hidden * w + per_layer)
    else:
        act = tokens * shape.layers * per_layer
    out["activations (rough)"] = act + tokens * shape.vocab * (w + 12)
    out["total"] = sum(out.values())
    return {k: v / GB for k, v in out.items()}


def _seq_len(p) -> int:
    """Rough training sequence length: the longest lock prompt (password twice) + the budget."""
    cfg = p.cfg
    strong = p.zoo_cfg[cfg.strong_model]
    longest = max((len(p.task.prompt(q, cfg.password.password)) for q in p.splits["lock"]), default=0)
    prompt_tokens = longest if not strong.path else longest // 3 + 40  # ~3 characters a token, chat template
    n = prompt_tokens + cfg.eval.max_new_tokens + 1
    return min(n, cfg.eval.max_length + 1) if cfg.eval.max_length else n


def memory_lines(p) -> list[str]:
    from pwlock import hf

    cfg = p.cfg
    name = cfg.strong_model
    m = p.zoo_cfg[name]
    shape = model_shape(p, name)
    L = _seq_len(p)
    gc = cfg.gradient_checkpointing and bool(m.path)
    here = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}[hf.resolve_dtype(m.dtype, p.device)]
    count = f"{shape.n_params / 1e9:.2f} B" if shape.n_params >= 1e8 else f"{shape.n_params / 1e6:.2f} M"
    lines = [(f"memory, full fine-tuning of the strong model {name!r}: {count} parameters "
              f"(hidden {shape.hidden}, {shape.layers} layers, vocabulary {shape.vocab}); sequences of ~{L} tokens; "
              f"gradient checkpointing {'on' if gc else 'off'}; GB = 1e9 bytes")]
    stack = min(cfg.wsu.max_stack or cfg.wsu.seeds, cfg.wsu.seeds)
    from pwlock.lora import trainable_params

    def lora_of(c):
        return trainable_params(shape, c.lora) if c.lora.r else None

    lock_label = f"lock ({cfg.lock.optimizer}, batch {cfg.lock.batch_size}" + (
        f", LoRA r={cfg.lock.lora.r})" if cfg.lock.lora.r else ")")
    jobs = [(lock_label, cfg.lock.optimizer, cfg.lock.batch_size, 1, lora_of(cfg.lock))]
    if cfg.kind == "core":
        jobs.append((f"wsu ({cfg.wsu.optimizer}, {stack} stacked x batch {cfg.wsu.n_samples})", cfg.wsu.optimizer,
                     cfg.wsu.n_samples, stack, lora_of(cfg.wsu)))
    else:  # trained attacks: their seeds (x parts for `average`) stacked, at most wsu.max_stack seeds
        from pwlock.config import variant_config
        from pwlock.elicit import get_attack

        for a in (variant_config(cfg, cfg.variants[0]) if cfg.kind == "variants" else cfg).attacks:
            k = get_attack(a.kind).copies(a, cfg.wsu.max_stack)
            if not k:
                continue
            label = f"{a.name[:14]} ({a.optimizer}, {k} stacked x batch {a.n_samples}" + (
                f", LoRA r={a.lora.r})" if a.lora.r else ")")
            if label not in [j[0] for j in jobs]:
                jobs.append((label, a.optimizer, a.n_samples, k, lora_of(a)))
    cols = ["weights", "gradients", "master weights", "optimizer state", "activations (rough)", "total"]
    lines.append(f"  {'job':<38} {'dtype':<5} " + " ".join(f"{c.split(' ')[0]:>11}" for c in cols))
    for label, opt, batch, copies, trainable in jobs:
        for dt in ("bf16", "fp32"):
            est = memory_estimate(shape, dt, opt, batch, L, gc, copies, trainable)
            mark = "  <- this config on " + str(p.device) if dt == here else ""
            lines.append(f"  {label:<38} {dt:<5} " + " ".join(f"{est[c]:>11.3g}" for c in cols) + mark)
    lines.append("  (plus ~3-5 GB of CUDA context and allocator slack on a GPU; bf16 trains fp32 master weights)")
    return lines


def dry_run(cfg) -> list[str]:
    """The lines `pwlock run --dry-run` prints after the resolved config."""
    from pwlock.context import Context

    lines = ["paths:"] + [f"  {x}" for x in check_paths(cfg)]
    p = Context(cfg, threads=1, plan_only=True)  # reads the task data (a malformed directory fails here)
    sizes = ", ".join(f"{k} {len(v)}" for k, v in p.splits.items())
    lines.append(f"task {cfg.task.name}: {sizes} problems")
    stages = plan_runs(cfg, threads=1)
    lines.append(f"planned runs (runs_dir={cfg.runs_dir}):")
    lines.append(f"  {'stage':<8} {'runs':>5} {'cached':>7} {'to run':>7}  what")
    for s in stages:
        lines.append(f"  {s.stage:<8} {len(s.ids):>5} {s.cached:>7} {len(s.ids) - s.cached:>7}  {s.note}")
    total, cached = sum(len(s.ids) for s in stages), sum(s.cached for s in stages)
    lines.append(f"  {'total':<8} {total:>5} {cached:>7} {total - cached:>7}")
    lines += memory_lines(p)
    if cfg.eval.backend == "vllm":
        from pwlock.vllm_backend import BackendUnavailable, import_vllm

        try:
            import_vllm()
            here = "available here"
        except BackendUnavailable as e:
            here = f"not usable on this machine ({e})"
        lines.append(f"generation: vllm for the sampling and evaluation runs, {here}; WSU and attacks: transformers")
    return lines

