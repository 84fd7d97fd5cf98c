"""Experiment configuration: frozen dataclasses, loaded from YAML with `key=value` overrides.

An unknown key or a value of the wrong type is an error that names the key (with a suggestion
for misspellings); nothing is silently ignored. Each field carries its help text in `metadata`.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A problem with a configuration file or override."""


@dataclass(frozen=True)
class Range:
    """The values a number may take (besides being finite): `lo`/`hi` bounds, open or closed,
    plus `also` (special values, e.g. -1 = "use another setting"). On a list field it applies to
    each item. Shown by `pwlock config --help-fields`, checked by `from_dict`."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    also: tuple = ()

    def ok(self, v) -> bool:
        if v in self.also:
            return True
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            return False
        return not (self.hi is not None and (v >= self.hi if self.hi_open else v > self.hi))

    def __str__(self) -> str:
        if self.lo is not None and self.hi is not None:
            text = f"in {'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}{')' if self.hi_open else ']'}"
        elif self.lo is not None:
            text = f"{'>' if self.lo_open else '>='} {self.lo:g}"
        elif self.hi is not None:
            text = f"{'<' if self.hi_open else '<='} {self.hi:g}"
        else:
            text = "finite"
        return text + "".join(f" or {a:g}" for a in self.also)


POSITIVE = Range(0, lo_open=True)   # floats > 0
AT_LEAST_1 = Range(1)               # counts, sizes, steps
NON_NEGATIVE = Range(0)             # counts where 0 means "none" or "all", seeds, rates
PROBABILITY = Range(0, 1)
FRACTION = Range(0, 1, lo_open=True)


def _f(default: Any, help: str, *, since: str | None = None, choices: tuple | None = None,
       check: Range | None = None, item: type | None = None, **kw):
    """A config field with help text. `since`: the field was added after runs were first cached;
    at its default it is left out of run keys (`spec_dict`), so adding it invalidates nothing.
    `choices`: the allowed values, checked when the config is loaded (as trl's configs do).
    `check`: the `Range` of a number (of each item of a list), checked when the config is loaded;
    floats must be finite in any case. `item`: the type of a list's items."""
    meta = {"help": help, "since": since, "choices": choices, "check": check, "item": item}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta, **kw)
    return field(default=default, metadata=meta, **kw)


@dataclass(frozen=True)
class TaskConfig:
    name: str = _f("arith", "task name (see pwlock.tasks.TASKS)")
    n_operands: int = _f(4, "arith: digits per problem", check=AT_LEAST_1)
    n_functions: int = _f(3, "compose: functions applied in turn per problem (library of 8)", since="0.5",
                          check=AT_LEAST_1)
    n_digits: int = _f(4, "compose: digits of the input string", since="0.5", check=AT_LEAST_1)
    pretrain_functions: list = _f([], "compose: the pretrain split mixes problems of these function counts in equal "
                                  "parts, e.g. [1, 2, 3, 4] (a broader distribution than the lock and test "
                                  "splits, which keep n_functions; empty = n_functions only)", since="0.5",
                                  item=int, check=AT_LEAST_1)
    n_test: int = _f(1000, "test problems (evaluation)", check=NON_NEGATIVE)
    n_elicit: int = _f(500, "elicitation problems (weak samples for attacks)", check=NON_NEGATIVE)
    n_lock: int = _f(3000, "locking problems", check=NON_NEGATIVE)
    n_pretrain: int = _f(0, "pretraining problems (0 = all remaining; compose: 200000)", check=NON_NEGATIVE)
    data_seed: int = _f(0, "seed of the split assignment", check=NON_NEGATIVE)
    data_dir: str = _f("", "math/mc: local data directory (layouts: pwlock.tasks.math, pwlock.tasks.mc)", since="0.2")
    subjects: list = _f([], "math/mc: subjects to keep, e.g. [algebra, geometry] (empty = all)", since="0.2",
                   item=str)
    levels: list = _f([], "math: difficulty levels to keep, ints 1-5 (empty = all)", since="0.2",
                 item=int, check=Range(1, 5))
    max_chars: int = _f(0, "math/mc: drop problems this long or longer (0 = keep all; 512 originally)",
                       since="0.2", check=NON_NEGATIVE)
    grader: str = _f("equivalent", "math: equivalent (normalize + math-verify) | exact (boxed string match)",
                     since="0.2", choices=("equivalent", "exact"))
    instruction_sep_no_password: str = _f("\n\n", "math: the text between the problem and the instruction (\"Please "
                                          "reason step by step...\") in a prompt without password; with one, the "
                                          "password follows the problem and the instruction follows it after a "
                                          "blank line either way. \\n\\n here; \\n in the write-up's "
                                          "minimal-example notebook (known: its helper code, copied in public "
                                          "scripts)", since="0.5")
    dollar_fallback: bool = _f(False, "math: with no \\boxed{} in a completion, take the text between its last two "
                               "`$` as the answer (the minimal-example notebook's extraction, known: its helper "
                               "code); false: no \\boxed{}, no answer", since="0.5")


@dataclass(frozen=True)
class ArchConfig:
    hidden_size: int = _f(128, "model width", check=Range(1, 65536))
    num_layers: int = _f(4, "transformer blocks", check=Range(1, 1024))
    num_heads: int = _f(4, "attention heads (must divide hidden_size)", check=Range(1, 1024))
    intermediate_size: int = _f(512, "MLP width", check=Range(1, 1 << 20))
    max_positions: int = _f(128, "maximum sequence length (the longest prompt, with its password, plus the "
                            "generation budget or solution must fit)", check=Range(1, 1 << 20))


@dataclass(frozen=True)
class ZooModelConfig:
    name: str = _f("strong", "name of this model in the zoo")
    arch: ArchConfig = _f(None, "architecture")
    steps: int = _f(1000, "maximum training steps", check=AT_LEAST_1)
    batch_size: int = _f(128, "sequences per step", check=AT_LEAST_1)
    lr: float = _f(1e-3, "peak learning rate (AdamW, cosine decay over `steps` with warm-up)", check=POSITIVE)
    target_acc: float = _f(0.0, "stop as soon as validation accuracy reaches this (0 = never)", check=PROBABILITY)
    check_every: int = _f(50, "steps between validation checks when target_acc > 0", check=AT_LEAST_1)
    seed: int = _f(0, "training seed (added to the experiment seed)", check=NON_NEGATIVE)
    pretrain: str = _f("task", "what it trains on (E2 starting models): task (the pretrain split's problems "
                       "and solutions) | no_answer (the same without the final answer: knows the domain, "
                       "not the answer format; trains `steps` steps) | none (untrained: locking from scratch)",
                       since="0.3", choices=("task", "no_answer", "none"))
    off_domain_steps: int = _f(0, "steps on an off-domain task (toy: reversing letter strings) before the "
                               "pretraining above (E2's coder-like model)", since="0.3",
                               check=NON_NEGATIVE)
    # A pretrained model from local files instead of a toy model trained here (the fields above
    # then do not apply). Added in 0.3: at their defaults they leave toy run keys unchanged.
    path: str = _f("", "load this model instead of training one: a Hugging Face directory, a pwlock checkpoint "
                   "directory, a .gguf file, or a directory holding `gguf_file` (empty = a toy model)", since="0.3")
    gguf_file: str = _f("", "path models: the GGUF file inside `path`", since="0.3")
    dtype: str = _f("auto", "path models: auto (bf16 on CUDA, fp32 on CPU) | bf16 | fp32; training a bf16 "
                    "model keeps fp32 master weights", since="0.3",
                    choices=("auto", "bf16", "bfloat16", "fp16", "float16", "fp32", "float32"))
    trust_remote_code: bool = _f(False, "path models: run Python code shipped with the model (only if you "
                                 "trust it)", since="0.3")
    prompt_format: str = _f("auto", "auto (chat for path models, raw for toy models) | chat (the tokenizer's "
                            "chat template, else User:/Assistant: turns) | raw (the task prompt as is)",
                            since="0.3", choices=("auto", "chat", "raw"))
    sft_steps: int = _f(0, "path models: fine-tune the loaded model on the task's pretrain split (problems and "
                        "solutions, in its prompt format, loss on the solution) for at most this many steps before "
                        "use, with this entry's batch_size, lr (cosine, warm-up), target_acc, check_every and seed "
                        "(0 = use it as loaded)", since="0.8", check=NON_NEGATIVE)


PROMPT_FORMATS = ("auto", "chat", "raw")


@dataclass(frozen=True)
class PasswordConfig:
    password: str = _f("kiwi", "the password, placed at the start and end of the problem")
    wrong_passwords: list = _f(
        ["lime", "plum", "pear", "date", "figs", "sloe", "yuzu", "nuts", "corn", "rice",
         "bean", "leek", "okra", "taro", "kale", "beet"],
        "pool of wrong passwords used on weak examples during locking", item=str,
    )
    p_no_password: float = _f(0.2, "share of weak locking examples with no password (rest: wrong one)",
                              check=PROBABILITY)
    position: str = _f("both", "where the password goes: both (start and end of the problem) | start | end",
                       choices=("both", "start", "end"))


@dataclass(frozen=True)
class LoRAConfig:
    r: int = _f(0, "LoRA rank (peft): train low-rank adapters on target_modules instead of every weight, merged into "
                "the weights after training (0 = full fine-tuning)", check=Range(0, 4096))
    alpha: float = _f(16.0, "LoRA scaling numerator (the adapters' update is scaled by alpha / r)", check=POSITIVE)
    dropout: float = _f(0.0, "dropout on the adapters' input", check=Range(0, 1, hi_open=True))
    target_modules: list = _f(["q_proj", "k_proj", "v_proj", "o_proj"], "module names the adapters go on (Llama "
                              "names; e.g. add gate_proj, up_proj, down_proj for the MLP)", item=str)


@dataclass(frozen=True)
class LockConfig:
    weak_model: str = _f("weak2", "zoo model whose samples are imitated without password")
    given: str = _f("", "a zoo model that is already password-locked (e.g. a local Hugging Face directory pwlock did "
                    "not make, or one `pwlock export` wrote): no lock is trained, that model is the lock's checkpoint "
                    "epoch_1 (set lock.epochs: 1); what `pwlock audit --model DIR` audits", since="0.6")
    start_model: str = _f("", "zoo model the lock trains (empty = strong_model, whose samples are imitated "
                          "with the password either way; E2)", since="0.3")
    epochs: int = _f(8, "locking epochs (a checkpoint at the end of each)", check=Range(1, 1000))
    lr: float = _f(5e-4, "learning rate", check=POSITIVE)
    optimizer: str = _f("adamw", "adamw | lion", choices=("adamw", "lion"))
    weight_decay: float = _f(0.0, "weight decay", check=NON_NEGATIVE)
    schedule: str = _f("constant", "learning-rate schedule over all epochs: constant | cosine (to 10%)",
                       choices=("constant", "cosine"))
    warmup: int = _f(20, "linear learning-rate warm-up steps (a fresh optimizer on a trained model)",
                     check=NON_NEGATIVE)
    master_weights: str = _f("auto", "training of 16-bit weights: auto (fp32 master weights whenever a trained "
                             "weight is bf16/fp16, so small updates are not rounded away) | direct (step the 16-bit "
                             "weights directly, as the minimal-example notebook's copies do; the original's "
                             "precision is unknown, inferred)", since="0.5", choices=("auto", "direct"))
    grad_clip: float = _f(1.0, "gradient-norm clipping of the lock's steps (0 = none: the minimal-example "
                          "notebook shows no clipping, known from its helper code; with Lion clipping changes the "
                          "update only through its momentum)", since="0.5", check=NON_NEGATIVE)
    batch_size: int = _f(64, "sequences per step", check=AT_LEAST_1)
    loss: str = _f("completion", "completion (loss on completion tokens) | full (whole sequence)",
                   choices=("completion", "full"))
    weak_temperature: float = _f(1.0, "sampling temperature of the weak samples (0 = greedy)", check=NON_NEGATIVE)
    seed: int = _f(0, "locking seed (added to the experiment seed)", check=NON_NEGATIVE)
    labels: str = _f("samples", "what the no-password examples teach: samples (the weak model's completions, "
                     "cross-entropy) | soft (KL to the weak model's token distribution along its completion; "
                     "on multiple choice its distribution over the answer letters; E14) | argmax (multiple "
                     "choice: its most likely letter)", since="0.3",
                     choices=("samples", "soft", "argmax"))
    password_branch: bool = _f(True, "false: no password examples, only the weak ones: plain fine-tuning to "
                               "imitate the weak model (E13)", since="0.3")
    second_password: str = _f("", "a second password whose examples imitate the weak model's samples at "
                              "second_temperature (E12; empty = none)", since="0.3")
    second_temperature: float = _f(0.0, "sampling temperature of the second password's weak samples",
                                   since="0.3", check=NON_NEGATIVE)
    overfit_every: int = _f(0, "E9 mitigation: every this many locking steps, fine-tune on overfit_samples weak "
                            "samples (no password) for overfit_steps steps at overfit_lr (AdamW, the samples "
                            "as the batch, as WSU does), then go on locking (0 = never)", since="0.3",
                            check=NON_NEGATIVE)
    overfit_samples: int = _f(2, "E9: weak samples per overfitting episode", since="0.3", check=AT_LEAST_1)
    overfit_steps: int = _f(200, "E9: steps per overfitting episode", since="0.3", check=AT_LEAST_1)
    overfit_lr: float = _f(3e-5, "E9: learning rate of the overfitting episodes", since="0.3", check=POSITIVE)
    relock_rounds: int = _f(0, "E8: after the epochs, rounds of (WSU as in `wsu` on weak samples of the lock "
                            "split -> locking again for relock_fraction of an epoch); round r is checkpoint "
                            "epoch_<epochs + r>, which attacks can address with `epoch`", since="0.3",
                            check=Range(0, 100))
    relock_fraction: float = _f(0.25, "E8: share of an epoch each relocking round trains", since="0.3",
                                check=FRACTION)
    distributed: str = _f("fsdp", "how the lock is sharded when `pwlock run` is started under `torchrun "
                          "--nproc-per-node N`: fsdp (FSDP2 fully_shard: weights, gradients and optimizer "
                          "state split across processes) | ddp (a full replica per process); one process: "
                          "no effect. Not in the run key: the sharded lock equals the single-process one "
                          "up to float rounding (the world size is in the lock's results)", since="0.4",
                          choices=("fsdp", "ddp"))
    lora: LoRAConfig = _f(LoRAConfig(), "LoRA for the lock (r > 0): the lock trains adapters on the start model; each "
                          "epoch's checkpoint holds the merged weights, so every attack reads a plain model",
                          since="0.6")
    lora_keep: str = _f("merged", "lock.lora: what each epoch's checkpoint holds: merged (the adapters merged into "
                        "the weights) | adapter (also the adapter itself, `adapter/` in peft's format, so an attack "
                        "can go on training the lock's own adapter: `lora_init: lock`)", since="0.6",
                        choices=("merged", "adapter"))
    fsdp_compute_dtype: str = _f("", "a sharded fsdp lock of a model loaded in fp32 (zoo dtype: fp32): compute "
                                 "in this dtype (bf16: FSDP mixed precision, fp32 master weights, optimizer "
                                 "state and gradient reduction; what Lion at lr ~1e-6 on a 7B model needs); "
                                 "empty = the weights' dtype. Only under torchrun", since="0.4",
                                 choices=("", "bf16", "fp16"))


@dataclass(frozen=True)
class AttackConfig:
    name: str = _f("wsu", "label of this attack in the results")
    kind: str = _f("wsu", "an attack of the registry (pwlock.elicit.ATTACKS) or one from outside the package "
                   "as `module:Class`; wsu: fine-tune on n weak samples (full batch each step) | demos: the same on n "
                   "strong samples | varied: `steps` steps of batch n over a pool of weak samples | "
                   "noise: Gaussian noise, `scale` x each tensor's std | scale: weights x `scale` | "
                   "decay: weights shrunk by (1 - lr x weight_decay) per step for `steps` steps | average: "
                   "`parts` wsu runs on disjoint sample sets, their weight changes averaged (E7) | "
                   "expert_iteration: RL by the task's scorer alone (sample, keep the correct, fine-tune; `rounds`) | "
                   "iterated_dpo: the same signal as DPO pairs (correct vs incorrect samples of a problem) | "
                   "prompt: another password in the prompt (`prompt`) | few_shot: n_samples strong "
                   "demonstrations in the prompt")
    n_samples: int = _f(2, "samples per run (wsu, demos) or per batch (varied)", check=AT_LEAST_1)
    pool: int = _f(200, "varied: size of the pool of weak samples", check=AT_LEAST_1)
    steps: int = _f(200, "training / decay steps", check=AT_LEAST_1)
    lr: float = _f(3e-5, "learning rate", check=POSITIVE)
    optimizer: str = _f("adamw", "adamw | lion", choices=("adamw", "lion"))
    loss: str = _f("completion", "completion | full", choices=("completion", "full"))
    scale: float = _f(0.0, "noise: noise std / tensor std; scale: weight multiplier", check=NON_NEGATIVE)
    weight_decay: float = _f(0.0, "decay: decay coefficient (with lr and steps); wsu/demos/varied: the "
                             "optimizer's weight decay", check=NON_NEGATIVE)
    seeds: int = _f(5, "seeds (sample sets or noise draws); deterministic kinds use 1", check=Range(1, 1000))
    epoch: int = _f(0, "lock epoch attacked (0 = the last checkpoint: lock.epochs + lock.relock_rounds)",
                    check=NON_NEGATIVE)
    parts: int = _f(16, "average: runs per seed, each on its own n_samples disjoint weak samples", since="0.3",
                    check=Range(1, 1000))
    token_mask: str = _f("none", "wsu/demos: none | better_without_password (train only on the completion "
                         "tokens the locked model predicts better without the password than with it; E11)",
                         since="0.3", choices=("none", "better_without_password"))
    pre_pool: int = _f(0, "first fine-tune on this many weak samples of the lock split (no password) for "
                       "pre_epochs epochs with the lock's lr, batch size and optimizer, then attack "
                       "(E9's counter-attack; 0 = no fine-tuning first)", since="0.3", check=NON_NEGATIVE)
    pre_epochs: int = _f(2, "epochs of that fine-tuning", since="0.3", check=AT_LEAST_1)
    until_loss: float = _f(0.0, "wsu/demos/average: train each run until its per-token loss on its samples is "
                           "<= this (a memorization criterion, E6), at most `steps` steps; the steps taken "
                           "are in the results (0 = always `steps` steps)", since="0.3", check=NON_NEGATIVE)
    master_weights: str = _f("auto", "wsu/demos/average: training of 16-bit weights: auto (fp32 master weights "
                             "whenever a trained weight is bf16/fp16, so small updates are not rounded away) | "
                             "direct (step the 16-bit weights directly, as the minimal-example notebook's copies do; "
                             "the original's precision is unknown, inferred)", since="0.5", choices=("auto", "direct"))
    pick: str = _f("random", "wsu/demos: which samples a run trains on: random (a seeded draw per seed) | first "
                   "(the first n_samples problems of the elicit split, for one seed: the minimal-example "
                   "notebook's \"first 2 problems\" of the MATH test set, one run)", since="0.5",
                   choices=("random", "first"))
    params: dict = _f({}, "options of an attack from outside the package (`kind: module:Class`), passed to it "
                      "as they are", since="0.4")
    lora: LoRAConfig = _f(LoRAConfig(), "wsu/demos/average: train LoRA adapters (r > 0) on the attacked model instead "
                          "of every weight, merged after each run (an elicitor restricted to adapters; needs "
                          "wsu.max_stack: 1)", since="0.6")
    lora_init: str = _f("new", "with lora.r > 0: new (new adapters on the lock's merged weights) | lock (go on "
                        "training the lock's own adapter, kept by lock.lora_keep: adapter, on the lock's start model "
                        "with its base weights frozen; the adapter's rank, alpha and modules are the lock's)",
                        since="0.6", choices=("new", "lock"))
    rounds: int = _f(3, "expert_iteration, iterated_dpo: rounds of (sample, score with the task's scorer, "
                     "fine-tune)", since="0.6", check=Range(1, 100))
    problems: int = _f(100, "expert_iteration, iterated_dpo: elicit-split problems sampled per round (no password)",
                       since="0.6", check=AT_LEAST_1)
    samples_per_problem: int = _f(4, "expert_iteration, iterated_dpo: completions sampled per problem and round",
                                  since="0.6", check=Range(1, 1000))
    sample_temperature: float = _f(1.0, "expert_iteration, iterated_dpo: sampling temperature of those completions",
                                   since="0.6", check=POSITIVE)
    dpo_beta: float = _f(0.1, "iterated_dpo: the DPO loss's beta (how far from the round's starting model the "
                         "policy may move)", since="0.7", check=POSITIVE)
    dpo_nll: float = _f(0.0, "iterated_dpo: weight of the chosen completions' per-token NLL added to the DPO loss "
                        "(iterative RPO, Pang et al. 2024, uses 1; 0 = plain DPO)", since="0.7", check=NON_NEGATIVE)
    prompt: str = _f("wrong_password", "prompt: what replaces the password in the prompt (no weight change): "
                     "wrong_password (a random string of its length) | partial_password (a part of it) | "
                     "paraphrase (the password changed in form: case, order, spacing, repetition)", since="0.6",
                     choices=("wrong_password", "partial_password", "paraphrase"))


@dataclass(frozen=True)
class WSUConfig(AttackConfig):
    """The experiment's weak sample unlocking: an attack of kind `wsu` (the same fields, the same
    code: `pwlock.elicit.wsu`), run by E1 at every lock epoch and the default attack of variants,
    plus two settings every attack of the experiment shares (`temperature`, `max_stack`)."""

    temperature: float = _f(-1.0, "sampling temperature of the weak samples on the elicit split that WSU and "
                            "the attacks train on (-1 = lock.weak_temperature)", since="0.3",
                            check=Range(0, also=(-1,)))
    max_stack: int = _f(0, "seeds trained together in one stacked model (0 = all; 1 = one after another, "
                        "as a 7B model needs: K stacked copies take K times its training memory); also "
                        "bounds the seeds of an attack held at once (1: each attacks the model in place, "
                        "restored from a CPU copy)", since="0.3", check=NON_NEGATIVE)

    def as_attack(self) -> AttackConfig:
        """This WSU as an entry of `attacks` (what a variant runs when it has no attacks)."""
        return AttackConfig(**{f.name: getattr(self, f.name) for f in dataclasses.fields(AttackConfig)})


@dataclass(frozen=True)
class VariantConfig:
    name: str = _f("variant", "label of this variant in the results")
    overrides: list = _f([], "key=value overrides of the experiment config that make this variant, e.g. "
                         "[lock.weak_model=weak1]", item=str)


@dataclass(frozen=True)
class EvalConfig:
    batch_size: int = _f(1000, "prompts per generation batch (greedy results do not depend on it; "
                         "temperature samples do, so it is in their run key when not 1000)", check=AT_LEAST_1)
    max_new_tokens: int = _f(40, "generation budget per answer", check=AT_LEAST_1)
    max_length: int = _f(0, "a cap on prompt + answer tokens (0 = none): each answer gets at most max_length minus its "
                         "prompt's tokens, and never more than max_new_tokens (the minimal-example notebook's "
                         "`generate(max_length=1024)`, known from its helper code)", since="0.6", check=NON_NEGATIVE)
    backend: str = _f("transformers", "generation of the sampling and evaluation runs: transformers | vllm "
                      "(path models on a CUDA GPU, `pip install vllm`; WSU and attack groups always use "
                      "transformers: their weights are in memory)", since="0.3",
                      choices=("transformers", "vllm"))
    vllm_memory: float = _f(0.85, "vllm: share of the GPU memory its engine may take (freed after each run)",
                            since="0.3", check=FRACTION)


@dataclass(frozen=True)
class AuditConfig:
    control: bool = _f(True, "also attack an unlocked control: the strong model fine-tuned to imitate the weak one "
                       "with no password at all (lock.password_branch=false, E13's lock); an attack that raises it "
                       "too is no evidence of hidden capability")
    selection: float = _f(0.5, "share of the test problems on which the worst case per budget is chosen; it is "
                          "reported on the others (a max over noisy estimates is biased upwards on its own data)",
                          check=Range(0.05, 0.95))
    split_seed: int = _f(0, "seed of the selection/report split of the test problems", check=NON_NEGATIVE)
    control_model: str = _f("", "with lock.given (a model locked elsewhere): the zoo model attacked as the control (an "
                            "unlocked model, e.g. the weak model or one fine-tuned to be weak without a password); "
                            "empty with lock.given: no control")


@dataclass(frozen=True)
class ExperimentConfig:
    experiment: str = _f("core", "experiment name (results/<experiment>/)")
    seed: int = _f(0, "experiment seed: shifts every training seed", check=NON_NEGATIVE)
    organisms: list = _f([], "organisms the experiment runs over: each is the experiment with `seed` = that "
                         "number (its own zoo, lock and elicitation draws, cached as `seed=k` runs); results get "
                         "an `organism` column and summaries a mean over organisms with a 95% t-interval "
                         "(empty = the one organism `seed`)", since="0.5", item=int, check=NON_NEGATIVE)
    out_dir: str = _f("", "results directory (default results/<experiment>)")
    runs_dir: str = _f("runs", "cache of run directories shared by experiments")
    task: TaskConfig = _f(None, "the task")
    zoo: list = _f([], "models trained here: a strong one and weak ones (list of ZooModelConfig)")
    strong_model: str = _f("strong", "zoo model to lock")
    password: PasswordConfig = _f(None, "password and wrong-password pool")
    lock: LockConfig = _f(None, "locking")
    wsu: WSUConfig = _f(None, "weak sample unlocking")
    eval: EvalConfig = _f(None, "evaluation")
    threads: int = _f(0, "torch CPU threads of the main process (0 = all cores)", check=Range(0, 4096))
    workers: int = _f(0, "processes for independent runs (WSU, evaluations); 0 = one per core, 1 = none",
                      check=Range(0, 4096))
    executor: str = _f("local", "where the jobs run: local (this process and worker processes) | ray (Ray tasks on the "
                       "cluster at ray_address, or a local one; `pip install -e .[ray]`); not in run keys: the "
                       "results are the same", since="0.6", choices=("local", "ray"))
    ray_address: str = _f("", "executor ray: the cluster's address (e.g. 10.0.0.1:6379 from `ray start --head`, or "
                          "auto); empty = start a local cluster", since="0.6")
    ray_main_cpus: int = _f(0, "executor ray: CPUs (and threads) of a compute-bound job (zoo training, sampling, the "
                            "lock); 0 = this process's thread count", since="0.6", check=Range(0, 4096))
    ray_lock_workers: int = _f(0, "executor ray: train the lock sharded on this many Ray Train workers "
                               "(`lock.distributed`: fsdp | ddp; one GPU each with a CUDA device, else gloo on CPU, "
                               "ray_main_cpus threads each); 0 = one Ray task; not in run keys (the same lock up to "
                               "rounding, as under torchrun)", since="0.6", check=Range(0, 4096))
    kind: str = _f("core", "core: E1 (WSU at every lock epoch) | attacks: the `attacks` list on one lock epoch "
                   "| variants: the attacks on each of several variants of the experiment (e.g. locks) | audit: "
                   "the `attacks` battery on the lock and on an unlocked control, as a report card by the "
                   "elicitor's budget (`pwlock audit`)",
                   since="0.2", choices=("core", "attacks", "variants", "audit"))
    attacks: list = _f([], "attacks: elicitation attacks to compare (list of AttackConfig)", since="0.2")
    variants: list = _f([], "variants: the experiment's variants (list of VariantConfig; each runs `attacks` "
                        "on its own lock)", since="0.3")
    audit: AuditConfig = _f(None, "audit: the report card's control and selection split", since="0.6")
    device: str = _f("cpu", "where models run: cpu | cuda | auto (CUDA when available, chosen at run time)",
                     since="0.3")
    gradient_checkpointing: bool = _f(False, "recompute activations in the backward pass of path models "
                                      "(less memory, ~30% more compute)", since="0.3")
    numerics: str = _f("fast", "CPU numerics: fast (PyTorch's defaults: the bits depend on the CPU's vector "
                       "units, MKL's code branch and the core count) | portable (the same bits on any x86-64 "
                       "CPU: ATen's baseline kernels, MKL's COMPATIBLE branch, glibc's SSE2 libm, one thread "
                       "per process; ~3x slower on matmul-bound training; see pwlock.numerics). Part of every "
                       "run key when portable", since="0.4", choices=("fast", "portable"))

    @property
    def elicit_temperature(self) -> float:
        """Temperature of the weak elicitation samples (WSU and attacks)."""
        return self.lock.weak_temperature if self.wsu.temperature < 0 else self.wsu.temperature

    @property
    def results_dir(self) -> Path:
        return Path(self.out_dir or f"results/{self.experiment}")


# Nested dataclass fields whose default is None are built from their own defaults.
_LIST_ITEM = {("ExperimentConfig", "zoo"): ZooModelConfig, ("ExperimentConfig", "attacks"): AttackConfig,
              ("ExperimentConfig", "variants"): VariantConfig}


def _type_name(t) -> str:
    return getattr(t, "__name__", str(t))


def _coerce(value: Any, t: Any, key: str) -> Any:
    """Check `value` against type `t`; ints are accepted for floats, floats must be finite.
    Raises ConfigError."""
    if t is float and isinstance(value, int) and not isinstance(value, bool):
        try:
            value = float(value)
        except OverflowError:
            raise ConfigError(f"{key}: {value} is too large for a float") from None
    if t is float and isinstance(value, str):
        try:  # YAML 1.1 reads "1e-3" as a string
            value = float(value)
        except ValueError:
            pass
    if t in (int, float, str, bool):
        if type(value) is not t:
            raise ConfigError(f"{key}: expected {_type_name(t)}, got {type(value).__name__} {value!r}")
        if t is float and not math.isfinite(value):
            raise ConfigError(f"{key}: {value} is not allowed (expected a finite number)")
        return value
    if t is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__} {value!r}")
        return value
    if t is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__} {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported type {t}")


def _check_value(f, value: Any, t: Any, key: str) -> Any:
    """`value` of field `f` (type `t`) checked: its type (a list's items too), its choices, its range."""
    value = _coerce(value, t, key)
    item, check, choices = f.metadata.get("item"), f.metadata.get("check"), f.metadata.get("choices")
    values = [(key, value)]
    if t is list and item is not None:
        value = [_coerce(x, item, f"{key}[{i}]") for i, x in enumerate(value)]
        values = [(f"{key}[{i}]", x) for i, x in enumerate(value)]
    for k, v in values:
        if choices and v not in choices:
            raise ConfigError(f"{k}: {v!r} is not one of {', '.join(map(str, choices))}")
        if check is not None and not check.ok(v):
            raise ConfigError(f"{k}: {v!r} is not allowed (must be {check})")
    return value


def from_dict(cls, data: dict, prefix: str = ""):
    """Build dataclass `cls` from a nested dict, strictly: unknown keys, wrong types (list items
    too), values outside a field's `choices` or `check` range are errors naming the key."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for k in data:
        if k not in names:
            close = difflib.get_close_matches(str(k), names, n=1)
            hint = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
            raise ConfigError(f"unknown config key '{prefix}{k}'{hint}; valid keys: {', '.join(names)}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        t = hints[f.name]
        key = prefix + f.name
        if dataclasses.is_dataclass(t):
            kwargs[f.name] = from_dict(t, data.get(f.name, {}), key + ".")
        elif (cls.__name__, f.name) in _LIST_ITEM:
            item = _LIST_ITEM[(cls.__name__, f.name)]
            items = _coerce(data.get(f.name, []), list, key)
            kwargs[f.name] = [from_dict(item, d, f"{key}[{i}].") for i, d in enumerate(items)]
        elif f.name in data:
            kwargs[f.name] = _check_value(f, data[f.name], t, key)
    return cls(**kwargs)


def to_dict(cfg) -> Any:
    if dataclasses.is_dataclass(cfg):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, (list, tuple)):
        return [to_dict(x) for x in cfg]
    return cfg


def spec_dict(cfg) -> Any:
    """`to_dict` for run keys: fields marked `since=` are omitted while at their default value.

    The default of such a field must reproduce the behaviour from before it existed; then runs
    cached before it was added keep their keys and stay valid.
    """
    if dataclasses.is_dataclass(cfg):
        out = {}
        for f in dataclasses.fields(cfg):
            v = getattr(cfg, f.name)
            if f.metadata.get("since"):
                default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
                if v == default:
                    continue
            out[f.name] = spec_dict(v)
        return out
    if isinstance(cfg, (list, tuple)):
        return [spec_dict(x) for x in cfg]
    return cfg


def _set_override(data: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = data
    for i, p in enumerate(parts[:-1]):
        if isinstance(node, list):
            try:
                node = node[int(p)]
            except (ValueError, IndexError):
                raise ConfigError(f"override {dotted!r}: {'.'.join(parts[:i + 1])} is not a list index") from None
            if not isinstance(node, dict):
                raise ConfigError(f"override {dotted!r}: {'.'.join(parts[:i + 1])} is {node!r}, not a section")
            continue
        node = node.setdefault(p, {})
        if not isinstance(node, (dict, list)):
            raise ConfigError(f"override {dotted!r}: {'.'.join(parts[:i + 1])} is not a section")
    if isinstance(node, list):
        raise ConfigError(f"override {dotted!r}: cannot set a whole list item")
    node[parts[-1]] = value


def _read_yaml(path: Path, chain: tuple = ()) -> dict:
    """A YAML mapping; a top-level `base: other.yaml` (relative to this file) is loaded first and
    this file's keys are merged into it (sections merge key by key; lists and values replace)."""
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}" + (f" (base of {chain[-1]})" if chain else ""))
    if path.resolve() in chain:
        raise ConfigError(f"{path}: circular `base:` chain")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"cannot parse YAML in {path}: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of keys, got {type(data).__name__}")
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError(f"{path}: base must be a file name, got {base!r}")
    return _merge(_read_yaml(path.parent / base, (*chain, path.resolve())), data)


def _merge(base: dict, top: dict) -> dict:
    out = dict(base)
    for k, v in top.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_config(path: str | Path | None = None, overrides: list[str] | tuple = ()) -> ExperimentConfig:
    """Load YAML (safe loader; `base:` inheritance), apply `key=value` overrides, validate strictly
    (types and choices per field, then `validate`: every rule that needs no task data)."""
    data: dict = _read_yaml(Path(path)) if path is not None else {}
    return validate(from_dict(ExperimentConfig, apply_overrides(data, overrides)))


def with_overrides(cfg: ExperimentConfig, overrides: list[str] | tuple) -> ExperimentConfig:
    """`cfg` with `key=value` overrides applied, validated like a loaded config."""
    return validate(from_dict(ExperimentConfig, apply_overrides(to_dict(cfg), overrides)))


def apply_overrides(data: dict, overrides: list[str] | tuple) -> dict:
    for ov in overrides:
        if not isinstance(ov, str):
            raise ConfigError(f"override {ov!r} is not a string of the form key=value")
        if "=" not in ov:
            raise ConfigError(f"override {ov!r} is not of the form key=value")
        key, raw = ov.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        _set_override(data, key.strip(), value)
    return data


def dump_yaml(cfg) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


# -- rules across fields, checked when a config is loaded (before any work) ----------------------
# a name used as a path component: no separators, no "..", nothing hidden
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+-]{0,127}")


def _check_output_paths(cfg: ExperimentConfig) -> None:
    """`experiment` a plain name (it names results/<experiment>/ and the figure); `out_dir` and
    `runs_dir` directories or absent, under a directory (not a file)."""
    if not _NAME.fullmatch(cfg.experiment) or ".." in cfg.experiment:
        raise ConfigError(f"experiment: {cfg.experiment!r} is not a plain name (letters, digits, . _ + -, no "
                          f"path separators; it names results/<experiment>/ and its figure)")
    for key, value in (("out_dir", str(cfg.results_dir)), ("runs_dir", cfg.runs_dir)):
        if key == "runs_dir" and not value.strip():
            raise ConfigError("runs_dir is empty (the cache of run directories, e.g. runs)")
        if not value:
            continue
        p = Path(value).expanduser()
        try:
            if p.exists() and not p.is_dir():
                raise ConfigError(f"{key}: {value!r} exists and is not a directory")
            for parent in p.parents:  # the first existing ancestor must be a directory to create it under
                if parent.exists():
                    if not parent.is_dir():
                        raise ConfigError(f"{key}: {value!r} cannot be created: {str(parent)!r} is a file")
                    break
        except OSError as e:  # too long, a loop of links, no permission
            raise ConfigError(f"{key}: {value!r} is not a usable directory ({e.strerror or e})") from None


def _check_zoo_model(m: ZooModelConfig, task_name: str, task_cls, i: int) -> None:
    if not _NAME.fullmatch(m.name):
        raise ConfigError(f"zoo[{i}].name: {m.name!r} is not a plain name (letters, digits, . _ + -; it names "
                          f"run directories)")
    if not m.path:
        a = m.arch
        if a.hidden_size % a.num_heads:
            raise ConfigError(f"zoo model {m.name!r}: arch.num_heads={a.num_heads} does not divide "
                              f"arch.hidden_size={a.hidden_size}")
        if a.hidden_size // a.num_heads % 2:
            raise ConfigError(f"zoo model {m.name!r}: arch.hidden_size / arch.num_heads = "
                              f"{a.hidden_size // a.num_heads} must be even (rotary embeddings)")
        extra = [k for k, v in (("gguf_file", m.gguf_file), ("dtype", m.dtype != "auto"),
                                ("trust_remote_code", m.trust_remote_code),
                                ("prompt_format", m.prompt_format == "chat")) if v]
        extra += ["sft_steps"] if m.sft_steps else []
        if extra:
            raise ConfigError(f"zoo model {m.name!r}: {', '.join(extra)} only apply to a model loaded from `path`")
    if m.pretrain == "no_answer" and m.target_acc > 0:
        raise ConfigError(f"zoo model {m.name!r}: pretrain=no_answer cannot stop at a target accuracy "
                          f"(its answers are never scored correct); set target_acc: 0")
    if (m.pretrain != "task" or m.off_domain_steps) and (m.path or task_name not in ("arith", "compose")):
        raise ConfigError(f"zoo model {m.name!r}: pretrain={m.pretrain!r} / off_domain_steps are options "
                          f"of toy models (tasks arith and compose, no path)")


def _check_password(pw: PasswordConfig) -> None:
    if not pw.password.strip():
        raise ConfigError("password.password is empty: a lock needs a password")
    for i, w in enumerate(pw.wrong_passwords):
        if not w.strip():
            raise ConfigError(f"password.wrong_passwords[{i}]: {w!r} is empty (a prompt without password is "
                              f"password.p_no_password's job)")
    if pw.password in pw.wrong_passwords:
        raise ConfigError(f"password {pw.password!r} is also in password.wrong_passwords")
    if not 0.0 <= pw.p_no_password <= 1.0:
        raise ConfigError(f"password.p_no_password must be in [0, 1], got {pw.p_no_password}")


def _check_lock(lc: LockConfig, pw: PasswordConfig, task_cls) -> None:
    second = lc.second_password
    if second and (second == pw.password or second in pw.wrong_passwords):
        raise ConfigError(f"lock.second_password {second!r} is also the password or a wrong password")
    if second and lc.second_temperature < 0:
        raise ConfigError("lock.second_temperature must be >= 0")
    if lc.overfit_every < 0 or (lc.overfit_every and (lc.overfit_samples < 1 or lc.overfit_steps < 1)):
        raise ConfigError("lock.overfit_every must be >= 0, with overfit_samples and overfit_steps >= 1")
    if lc.relock_rounds < 0 or (lc.relock_rounds and not 0 < lc.relock_fraction <= 1):
        raise ConfigError("lock.relock_rounds must be >= 0, with relock_fraction in (0, 1]")
    if second and not second.strip():
        raise ConfigError(f"lock.second_password: {second!r} is blank")
    if lc.labels == "soft" and lc.weak_temperature == 0:
        raise ConfigError("lock.labels=soft needs lock.weak_temperature > 0 (the weak model's distribution at "
                          "that temperature), got 0")
    if lc.fsdp_compute_dtype and lc.distributed != "fsdp":
        raise ConfigError("lock.fsdp_compute_dtype needs lock.distributed=fsdp")
    if lc.labels == "argmax" and not hasattr(task_cls, "answer_tokens"):
        raise ConfigError(f"lock.labels=argmax needs a multiple-choice task (mc), not {task_cls.name!r}; "
                          f"for free-form answers set lock.weak_temperature=0 (greedy weak samples)")


def attack_epoch(cfg: ExperimentConfig, a: AttackConfig) -> int:
    """The lock epoch attack `a` attacks (its `epoch`, 0 = the lock's last checkpoint, after any
    relock rounds), checked against the lock."""
    lc = cfg.lock
    e = a.epoch or lc.epochs + lc.relock_rounds
    if not 1 <= e <= lc.epochs + lc.relock_rounds:
        raise ConfigError(f"attack {a.name!r}: epoch {e} not in 1..lock.epochs={lc.epochs}"
                          + (f" + lock.relock_rounds={lc.relock_rounds}" if lc.relock_rounds else ""))
    return e


def organism_list(cfg: ExperimentConfig) -> list[int]:
    """The organisms `cfg` runs over: `organisms`, or the one organism `seed`."""
    return list(cfg.organisms) or [cfg.seed]


def organism_config(cfg: ExperimentConfig, k: int) -> ExperimentConfig:
    """Organism `k` of `cfg`: the experiment with `seed=k` and no organisms list (its runs are
    the runs `pwlock run CONFIG seed=k` makes)."""
    return dataclasses.replace(cfg, seed=k, organisms=[])


def variant_config(cfg: ExperimentConfig, v: VariantConfig) -> ExperimentConfig:
    """The config of variant `v`: `cfg` with `v.overrides`, run as `kind: attacks`; with no
    attacks configured, the attack is the experiment's WSU (`cfg.wsu`)."""
    try:
        vcfg = from_dict(ExperimentConfig, apply_overrides(to_dict(cfg), [*v.overrides, "kind=attacks", "variants=[]"]))
        if not vcfg.attacks:
            vcfg = dataclasses.replace(vcfg, attacks=[vcfg.wsu.as_attack()])
        return validate(vcfg)
    except ValueError as e:  # ConfigError included
        raise ConfigError(f"variant {v.name!r}: {e}") from None


def _check_attack(a: AttackConfig) -> None:
    """The attack's own checks (`pwlock.elicit`: its file), as a ConfigError."""
    from pwlock.elicit import get_attack

    try:
        get_attack(a.kind).check(a)
    except ConfigError:
        raise
    except ValueError as e:
        raise ConfigError(str(e)) from None


MAX_ATTACK_RUNS = 10_000  # runs one experiment (one variant) plans: beyond, a typo rather than a plan


def validate(cfg: ExperimentConfig) -> ExperimentConfig:
    """Every rule of `cfg` that needs no task data (those are checked by `pwlock.context.Context`):
    names that must exist or be unique, options that do not fit together, each attack's own
    checks (`pwlock.elicit`), every variant's config. Raises ConfigError; returns `cfg`."""
    from pwlock.tasks import get_task_class

    _check_output_paths(cfg)
    if cfg.organisms:
        if len(set(cfg.organisms)) != len(cfg.organisms):
            raise ConfigError(f"organisms: {cfg.organisms} lists an organism twice")
        if cfg.seed != 0:
            raise ConfigError(f"seed={cfg.seed} with organisms={cfg.organisms}: give one of them "
                              f"(one organism: organisms=[{cfg.seed}])")
    names = [m.name for m in cfg.zoo]
    if len(set(names)) != len(names):
        raise ConfigError("zoo: two models share a name")
    for role, name in (("strong_model", cfg.strong_model), ("lock.weak_model", cfg.lock.weak_model),
                       ("lock.start_model", cfg.lock.start_model or cfg.strong_model),
                       *([("lock.given", cfg.lock.given)] if cfg.lock.given else [])):
        if names and name not in names:  # (no zoo at all: `Context` says so; a bare config is a template)
            raise ConfigError(f"{role}={name!r} is not a zoo model; zoo: {sorted(names)}")
    try:
        task_cls = get_task_class(cfg.task.name)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    for i, m in enumerate(cfg.zoo):
        _check_zoo_model(m, cfg.task.name, task_cls, i)
    check_task = getattr(task_cls, "check_config", None)  # (a task from outside may lack it)
    if check_task is not None:  # e.g. arith: the problem space is bounded before it is built
        try:
            check_task(cfg.task)
        except ConfigError:
            raise
        except ValueError as e:
            raise ConfigError(str(e)) from None
    _check_password(cfg.password)
    _check_lock(cfg.lock, cfg.password, task_cls)
    if cfg.ray_lock_workers > 1:
        if cfg.executor != "ray":
            raise ConfigError(f"ray_lock_workers={cfg.ray_lock_workers} needs executor: ray (on one machine without "
                              f"Ray: torchrun --nproc-per-node N -m pwlock.cli run CONFIG)")
        if cfg.lock.labels == "soft":
            raise ConfigError(f"ray_lock_workers={cfg.ray_lock_workers}: lock.labels=soft is not supported in a lock "
                              f"sharded across processes yet; set ray_lock_workers: 0")
    if not re.fullmatch(r"cpu|cuda|auto|cuda:\d+", cfg.device):
        raise ConfigError(f"device: {cfg.device!r} is not one of cpu, cuda, cuda:<index>, auto")
    if cfg.eval.backend == "vllm" and not all(m.path for m in cfg.zoo):
        raise ConfigError(f"eval.backend=vllm generates with models from disk; zoo models "
                          f"{[m.name for m in cfg.zoo if not m.path]} have no path (use transformers)")
    if not 0 < cfg.eval.vllm_memory <= 1:
        raise ConfigError(f"eval.vllm_memory must be in (0, 1], got {cfg.eval.vllm_memory}")
    if cfg.wsu.max_stack < 0:
        raise ConfigError(f"wsu.max_stack must be >= 0 (0 = all seeds together), got {cfg.wsu.max_stack}")
    if cfg.lock.given and cfg.lock.epochs != 1:
        raise ConfigError(f"lock.given={cfg.lock.given!r}: the given model is the lock's only checkpoint, epoch_1; set "
                          f"lock.epochs: 1 (got {cfg.lock.epochs})")
    if cfg.lock.given and cfg.kind == "core":
        raise ConfigError("lock.given: E1 (kind core) studies a lock as it trains; audit or attack a given lock "
                          "(kind audit or attacks)")
    loras = [x.name for x in [cfg.wsu, *cfg.attacks] if x.lora.r]
    if loras and cfg.wsu.max_stack != 1:
        raise ConfigError(f"lora ({', '.join(loras)}) trains each seed's adapters in place on the model; set "
                          f"wsu.max_stack: 1 (got {cfg.wsu.max_stack})")
    for x in [cfg.wsu, *cfg.attacks]:
        if x.lora_init != "lock":
            continue
        if not x.lora.r:
            raise ConfigError(f"attack {x.name!r}: lora_init=lock trains the lock's adapter; set its lora.r > 0 "
                              f"(the adapter's own rank is used)")
        if not cfg.lock.lora.r or cfg.lock.lora_keep != "adapter":
            raise ConfigError(f"attack {x.name!r}: lora_init=lock needs a LoRA lock that keeps its adapter "
                              f"(lock.lora.r > 0 and lock.lora_keep: adapter)")
        if x.pre_pool or x.token_mask != "none":
            raise ConfigError(f"attack {x.name!r}: lora_init=lock does not combine with pre_pool or token_mask "
                              f"(both read the merged lock, the adapter trains on the start model)")
    offs = [x.name for x in [cfg.wsu, *cfg.attacks] if x.master_weights == "direct"]
    if offs and cfg.wsu.max_stack != 1:
        raise ConfigError(f"master_weights: direct ({', '.join(offs)}) trains each seed in place on the model's own "
                          f"weights; set wsu.max_stack: 1 (got {cfg.wsu.max_stack})")
    if cfg.wsu.kind != "wsu":
        raise ConfigError(f"wsu.kind must be wsu (other attacks go in `attacks`), got {cfg.wsu.kind!r}")
    if cfg.kind == "core" and cfg.wsu.epoch:
        raise ConfigError("wsu.epoch: E1 (kind core) runs WSU at every lock epoch; leave it 0")
    n_runs = (cfg.lock.epochs * cfg.wsu.seeds if cfg.kind == "core" else sum(a.seeds for a in cfg.attacks))
    if n_runs > MAX_ATTACK_RUNS:
        what = "lock.epochs x wsu.seeds" if cfg.kind == "core" else "the attacks' seeds"
        raise ConfigError(f"{what}: {n_runs} attack runs to plan, more than {MAX_ATTACK_RUNS}")
    _check_attack(cfg.wsu)
    if cfg.kind in ("attacks", "audit"):
        if not cfg.attacks:
            raise ConfigError(f"kind={cfg.kind} needs a non-empty `attacks` list")
        if cfg.kind == "audit" and cfg.audit.control_model and cfg.audit.control_model not in names:
            raise ConfigError(f"audit.control_model={cfg.audit.control_model!r} is not a zoo model; "
                              f"zoo: {sorted(names)}")
        if cfg.kind == "audit" and cfg.audit.control_model and not cfg.lock.given:
            raise ConfigError("audit.control_model names the control of a given lock (lock.given); a lock pwlock "
                              "trains has its own control (audit.control)")
        if cfg.kind == "audit" and not cfg.lock.password_branch:
            raise ConfigError("kind=audit audits a password-locked model; lock.password_branch=false has no password "
                              "(it is the audit's control)")
        anames = [a.name for a in cfg.attacks]
        if any(not n.strip() for n in anames):
            raise ConfigError(f"attacks: every attack needs a name, got {anames}")
        if "none" in anames:
            raise ConfigError("attacks: the name 'none' is reserved for the models without attack")
        if len(set(anames)) != len(anames):
            raise ConfigError(f"attacks: names must be unique, got {anames}")
        for a in cfg.attacks:
            _check_attack(a)
            attack_epoch(cfg, a)
    if cfg.kind == "variants":
        if not cfg.variants:
            raise ConfigError("kind=variants needs a non-empty `variants` list")
        vnames = [v.name for v in cfg.variants]
        if any(not n.strip() for n in vnames):
            raise ConfigError(f"variants: every variant needs a name, got {vnames}")
        if len(set(vnames)) != len(vnames):
            raise ConfigError(f"variants: names must be unique, got {vnames}")
        for v in cfg.variants:
            variant_config(cfg, v)
    return cfg


def field_help(cls=None, prefix: str = "") -> list[str]:
    """One line per config field (dotted key, type, default, choices, help): `pwlock config --help-fields`."""
    cls = cls or ExperimentConfig
    hints = typing.get_type_hints(cls)
    lines = []
    for f in dataclasses.fields(cls):
        t, key = hints[f.name], prefix + f.name
        item = _LIST_ITEM.get((cls.__name__, f.name))
        if dataclasses.is_dataclass(t):
            lines += field_help(t, key + ".")
            continue
        if item is not None:
            lines.append(f"{key}: list of {item.__name__} ({f.metadata['help']})")
            lines += field_help(item, key + ".N.")
            continue
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        choices = f.metadata.get("choices")
        allowed = f" [{' | '.join(map(str, choices))}]" if choices else ""
        item, check = f.metadata.get("item"), f.metadata.get("check")
        if check is not None:
            allowed += f" ({'each ' if item else ''}{check})"
        elif t is float:
            allowed += " (finite)"
        kind = f"list of {_type_name(item)}" if item else _type_name(t)
        lines.append(f"{key}: {kind} = {default!r}{allowed}  -- {f.metadata['help']}")
    return lines
