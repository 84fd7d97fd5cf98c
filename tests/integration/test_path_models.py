"""`pwlock run` with zoo models from local paths (a Hugging Face directory and a pwlock
checkpoint) on the MATH fixture: nothing is trained for the zoo, prompts go through the chat
template, lock checkpoints of the path model load back (fp32 and bf16), WSU runs stacked or one
seed at a time, and finished runs are reused. Tiny random models: seconds, not accuracy."""

import json
import string
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from tiny_llama import TEMPLATE, tiny
from transformers import LlamaForCausalLM

from pwlock.cli import main
from pwlock.models import save_checkpoint
from pwlock.tokenizer import char_tokenizer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    tok = char_tokenizer(string.printable)
    tok.chat_template = TEMPLATE
    tiny(tok, 0).save_pretrained(d / "strong-hf")
    tok.save_pretrained(d / "strong-hf")
    save_checkpoint(tiny(tok, 1), tok, d / "weak-ckpt", {"source": "test"})
    return d / "strong-hf", d / "weak-ckpt"


def args(tmp_path, models, *over):
    strong, weak = models
    cfg = tmp_path / "math.yaml"
    cfg.write_text(f"""
experiment: pathmicro
task: {{name: math, data_dir: {FIXTURES / 'math'}, n_test: 4, n_elicit: 3, n_lock: 4}}
zoo:
  - {{name: strong, path: {strong}}}
  - {{name: weak, path: {weak}}}
strong_model: strong
password: {{password: open sesame, wrong_passwords: [closed door]}}
lock: {{weak_model: weak, epochs: 2, optimizer: lion, lr: 1.0e-4, batch_size: 4, warmup: 0}}
wsu: {{n_samples: 2, steps: 3, lr: 1.0e-4, optimizer: lion, seeds: 2}}
eval: {{batch_size: 8, max_new_tokens: 8}}
""")
    return ["run", str(cfg), f"runs_dir={tmp_path / 'runs'}", f"out_dir={tmp_path / 'out'}", *over]


def infos(runs: Path, stage: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((runs / stage).glob("*/run.json"))]


def test_path_models_through_the_pipeline(tmp_path, models):
    runs = tmp_path / "runs"
    assert main(args(tmp_path, models)) == 0
    zoo = {i["name"]: i for i in infos(runs, "zoo")}
    assert set(zoo) == {"strong", "weak"}
    for name, info in zoo.items():  # recorded, not trained: no model copy in the run
        assert info["results"]["path"] == str(models[name == "weak"]) and info["results"]["n_params"] > 0
        fp = info["spec"]["fingerprint"]
        assert fp == info["results"]["fingerprint"] and "config.json" in fp
        assert info["spec"]["model"]["prompt_format"] == "chat" and info["spec"]["model"]["dtype"] == "fp32"
        assert not (runs / "zoo" / f"{name}-{info['key']}" / "model").exists()
    # prompts through the chat template, password at the start and end of the problem
    ev = next(i for i in infos(runs, "eval") if i["name"].endswith("epoch_2-pwd"))
    rec = [json.loads(x)
           for x in (runs / "eval" / f"{ev['name']}-{ev['key']}" / "records.jsonl").read_text().splitlines()]
    assert len(rec) == 4 and all(r["prompt"].startswith("<|user|>\nopen sesame\n\n") for r in rec)
    assert all(r["prompt"].endswith("open sesame\n\nPlease reason step by step, and put your final answer within "
                                    "\\boxed{}.\n<|assistant|>\n") for r in rec)
    samples = infos(runs, "samples")
    assert len(samples) == 3
    # the lock trained the strong model from its path; its checkpoints are pwlock checkpoints
    lock = infos(runs, "lock")[0]
    lock_dir = runs / "lock" / f"{lock['name']}-{lock['key']}"
    assert (lock_dir / "epoch_2" / "pwlock.json").is_file()
    start = LlamaForCausalLM.from_pretrained(models[0]).state_dict()
    with safe_open(str(lock_dir / "epoch_2" / "model.safetensors"), "pt") as f:
        w = f.get_tensor("model.layers.0.mlp.up_proj.weight")
    assert w.dtype == torch.float32 and not torch.equal(w, start["model.layers.0.mlp.up_proj.weight"])
    wsu = infos(runs, "wsu")
    assert len(wsu) == 4 and {i["results"]["group_size"] for i in wsu} == {2}
    assert (tmp_path / "out" / "results.csv").is_file()

    # everything is reused on a second run
    before = {p: p.stat().st_mtime for p in runs.rglob("run.json")}
    assert main(args(tmp_path, models)) == 0
    assert {p: p.stat().st_mtime for p in runs.rglob("run.json")} == before

    # one seed at a time: new WSU runs (trained with pwlock.train.train), nothing upstream redone
    assert main(args(tmp_path, models, "wsu.max_stack=1")) == 0
    assert len(infos(runs, "wsu")) == 8 and len(infos(runs, "lock")) == 1
    assert sorted(i["results"]["group_size"] for i in infos(runs, "wsu")) == [1] * 4 + [2] * 4


def test_bf16_path_model_and_changed_files(tmp_path, models):
    runs = tmp_path / "runs"
    assert main(args(tmp_path, models, "zoo.0.dtype=bf16", "lock.epochs=1", "wsu.seeds=1")) == 0
    zoo = {i["name"]: i for i in infos(runs, "zoo")}
    assert zoo["strong"]["spec"]["model"]["dtype"] == "bf16"
    lock = infos(runs, "lock")[0]
    with safe_open(str(runs / "lock" / f"{lock['name']}-{lock['key']}" / "epoch_1" / "model.safetensors"), "pt") as f:
        assert f.get_tensor("model.norm.weight").dtype == torch.bfloat16  # saved and reloaded as bf16
    # a changed model file makes a new zoo run (and everything downstream of it)
    cfg_json = models[1] / "config.json"
    old = cfg_json.read_text()
    try:
        cfg_json.write_text(old.replace("{", '{\n  "comment_for_test": 1,', 1))
        assert main(args(tmp_path, models, "zoo.0.dtype=bf16", "lock.epochs=1", "wsu.seeds=1")) == 0
        assert len(infos(runs, "zoo")) == 3 and len(infos(runs, "lock")) == 2
    finally:
        cfg_json.write_text(old)


def test_toy_only_options_on_a_toy_model_are_an_error(capsys, tmp_path):
    core = Path(__file__).resolve().parents[2] / "configs/toy/core.yaml"
    assert main(["run", str(core), "--dry-run", "zoo.1.dtype=bf16"]) == 2
    assert "zoo model 'weak1': dtype only apply to a model loaded from `path`" in capsys.readouterr().err
    assert main(["run", str(core), "--dry-run", "zoo.0.prompt_format=fancy"]) == 2
    assert "prompt_format: 'fancy' is not one of auto, chat, raw" in capsys.readouterr().err
    assert main(["run", str(core), "--dry-run", "zoo.1.sft_steps=10"]) == 2
    assert "zoo model 'weak1': sft_steps only apply to a model loaded from `path`" in capsys.readouterr().err


def test_path_model_fine_tuned_on_the_task_then_locked(tmp_path, models, capsys):
    """`sft_steps`: a path model is fine-tuned on the arith pretrain split in its chat format before
    use (the SmolLM2 E1's strong model), next to a toy weak model trained here; the lock starts from
    the fine-tuned checkpoint, and the key of a path model without sft_steps has no `sft`."""
    strong, _ = models
    cfg = tmp_path / "arith.yaml"
    cfg.write_text(f"""
experiment: sftmicro
numerics: fast
task: {{name: arith, n_operands: 3, n_test: 6, n_elicit: 4, n_lock: 6, n_pretrain: 340}}
zoo:
  - {{name: strong, path: {strong}, sft_steps: 6, batch_size: 8, lr: 3.0e-3, target_acc: 0.99, check_every: 3}}
  - {{name: weak, arch: {{hidden_size: 16, num_layers: 1, num_heads: 2, intermediate_size: 32}}, steps: 3,
      batch_size: 8}}
strong_model: strong
lock: {{weak_model: weak, epochs: 1, lr: 1.0e-4, batch_size: 4}}
wsu: {{n_samples: 2, steps: 2, lr: 1.0e-4, seeds: 1}}
eval: {{batch_size: 8, max_new_tokens: 8}}
""")
    base = ["run", str(cfg), f"runs_dir={tmp_path / 'runs'}", f"out_dir={tmp_path / 'out'}"]
    assert main([*base, "--dry-run"]) == 0
    assert "1 trained here, 1 from a path (1 fine-tuned here)" in capsys.readouterr().out
    assert main(base) == 0
    runs = tmp_path / "runs"
    zoo = {i["name"]: i for i in infos(runs, "zoo")}
    info = zoo["strong"]
    sft = info["spec"]["sft"]
    assert sft["steps"] == 6 and sft["lr"] == 3.0e-3 and sft["task"]["n_operands"] == 3
    res = info["results"]
    assert res["steps"] == 6 and [h["step"] for h in res["history"]] == [3, 6]  # never at 99%: all 6 steps
    tuned = runs / "zoo" / f"strong-{info['key']}" / "model"
    assert (tuned / "pwlock.json").is_file()
    source = LlamaForCausalLM.from_pretrained(strong).state_dict()
    with safe_open(str(tuned / "model.safetensors"), "pt") as f:
        changed = [n for n in f.keys() if not torch.equal(f.get_tensor(n), source[n])]
    assert changed  # fine-tuned, and saved as the run's checkpoint
    # the lock trained from the fine-tuned checkpoint: its input prompts are in the chat format
    ev = next(i for i in infos(runs, "eval") if i["name"].endswith("epoch_1-pwd"))
    rec = [json.loads(x)
           for x in (runs / "eval" / f"{ev['name']}-{ev['key']}" / "records.jsonl").read_text().splitlines()]
    assert all(r["prompt"].startswith("<|user|>\n") for r in rec)
    # a second run reuses the fine-tuned model; without sft_steps the path model's key has no `sft`
    before = {p: p.stat().st_mtime for p in runs.rglob("run.json")}
    assert main(base) == 0
    assert {p: p.stat().st_mtime for p in runs.rglob("run.json")} == before
    from pwlock.config import load_config
    from pwlock.context import Context
    from pwlock.stages import zoo as zoo_stage

    ctx = Context(load_config(cfg, [f"runs_dir={runs}"]))  # later stages load the fine-tuned weights
    loaded, _ = ctx.load(zoo_stage.run(ctx, "strong"))
    with safe_open(str(tuned / "model.safetensors"), "pt") as f:
        assert all(torch.equal(p, f.get_tensor(n)) for n, p in loaded.state_dict().items() if n in f.keys())
    assert not all(torch.equal(p, source[n]) for n, p in loaded.state_dict().items())
    ctx = Context(load_config(cfg, [f"runs_dir={runs}", "zoo.0.sft_steps=0"]))
    plain = zoo_stage.run(ctx, "strong")
    assert "sft" not in plain.spec and plain.id != f"zoo/strong-{info['key']}"


def test_minimal_example_config_end_to_end(tmp_path, models):
    """configs/math/minimal-example.yaml itself (the notebook's protocol) on the MATH fixture with
    tiny Llamas: runs end to end; whole-sequence loss, no-password prompts with a single newline,
    one WSU run on the first two elicit problems, and every answer within eval.max_length."""
    strong, weak = models
    root = Path(__file__).resolve().parents[2]
    argv = ["run", str(root / "configs/math/minimal-example.yaml"), f"zoo.0.path={strong}", f"zoo.1.path={weak}",
            f"task.data_dir={FIXTURES / 'math'}", "task.n_test=4", "task.n_elicit=3", "task.n_lock=4",
            "lock.epochs=1", "lock.batch_size=4", "wsu.steps=3", "eval.batch_size=8", "eval.max_new_tokens=64",
            "eval.max_length=260", "device=cpu", f"runs_dir={tmp_path / 'runs'}", f"out_dir={tmp_path / 'out'}"]
    assert main(argv) == 0
    runs = tmp_path / "runs"
    lock = infos(runs, "lock")[0]
    assert lock["spec"]["lock"]["loss"] == "full" and lock["spec"]["lock"]["grad_clip"] == 0.0
    wsu = infos(runs, "wsu")
    assert len(wsu) == 1 and wsu[0]["spec"]["wsu"]["pick"] == "first"
    first2 = [json.loads(x)["problem_id"] for x in
              (runs / "wsu" / f"{wsu[0]['name']}-{wsu[0]['key']}" / "train_samples.jsonl").read_text().splitlines()]
    weak_elicit = next((runs / "samples").glob("stablelm-zephyr-2b-elicit-*/samples.jsonl"))
    elicit = [json.loads(x)["problem_id"] for x in weak_elicit.read_text().splitlines()]
    assert first2 == elicit[:2]
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(strong)
    n_tokens = lambda text: len(tok(text, add_special_tokens=False)["input_ids"])  # noqa: E731
    at_cap = 0
    for ev in infos(runs, "eval"):
        assert ev["spec"]["max_length"] == 260
        for r in (runs / "eval" / f"{ev['name']}-{ev['key']}" / "records.jsonl").read_text().splitlines():
            r = json.loads(r)
            budget = max(0, 260 - n_tokens(r["prompt"]))  # a prompt beyond the cap gets an empty answer
            assert n_tokens(r["completion"]) <= min(64, budget)
            at_cap += 0 < budget < 64 and n_tokens(r["completion"]) == budget
            if ev["spec"]["password"] is None:
                assert "\nPlease reason" in r["prompt"] and "\n\nPlease reason" not in r["prompt"]
    assert at_cap > 0  # the cap binds (a random model rarely stops before it)


def test_lora_lock_and_lora_wsu_change_only_their_modules(tmp_path, models, capsys):
    """A LoRA lock (adapters on q_proj and v_proj, merged into each epoch's checkpoint) changes
    only those weights of the start model; WSU with LoRA adapters on o_proj (one seed at a time)
    changes only o_proj of the lock, and leaves no adapter layer behind; the dry run estimates
    LoRA's memory."""
    pytest.importorskip("peft")
    from pwlock.config import AttackConfig, LoRAConfig
    from pwlock.elicit.wsu import cpu_copy, train_in_place
    from pwlock.models import load_checkpoint
    from pwlock.train import Example

    lora = ["lock.lora.r=2", "lock.lora.target_modules=[q_proj, v_proj]", "lock.lr=1e-2", "wsu.lora.r=2",
            "wsu.lora.target_modules=[o_proj]", "wsu.max_stack=1", "lock.epochs=1", "wsu.seeds=1"]
    assert main([*args(tmp_path, models, *lora), "--dry-run"]) == 0
    assert "LoRA r=2" in capsys.readouterr().out
    runs = tmp_path / "runs"
    assert main(args(tmp_path, models, *lora)) == 0
    lock = infos(runs, "lock")[0]
    assert lock["spec"]["lock"]["lora"]["r"] == 2
    ckpt = runs / "lock" / f"{lock['name']}-{lock['key']}" / "epoch_1"
    start = LlamaForCausalLM.from_pretrained(models[0]).state_dict()
    locked, tok, meta = load_checkpoint(ckpt)
    assert meta["lora_r"] == 2
    got = locked.state_dict()
    assert set(got) == set(start)  # a plain model: the adapters merged, none left
    changed = {n for n in start if not torch.equal(start[n], got[n])}
    assert changed == {f"model.layers.{i}.self_attn.{m}.weight" for i in range(2) for m in ("q_proj", "v_proj")}
    assert len(infos(runs, "wsu")) == 1

    base = cpu_copy(locked)
    a = AttackConfig(steps=5, lr=1e-2, lora=LoRAConfig(r=2, target_modules=["o_proj"]))
    exs = [Example("What is 1+1?", "2"), Example("What is 2+2?", "4")]
    train_in_place(locked, tok, [exs], a, 0, base)
    after = dict(locked.named_parameters())
    assert set(after) == set(base)
    changed = {n for n in base if not torch.equal(base[n], after[n].detach())}
    assert changed == {f"model.layers.{i}.self_attn.o_proj.weight" for i in range(2)}


def test_lora_lock_keeps_its_adapter_and_wsu_trains_it(tmp_path, models):
    """`lock.lora_keep: adapter`: each checkpoint also holds the lock's adapter, which on the start
    model gives the merged checkpoint back; WSU with `lora_init: lock` trains that adapter on the
    start model (only the lock's modules change, none of the merged lock's others); a config that
    asks for the lock's adapter without keeping it stops with a one-line error."""
    pytest.importorskip("peft")
    from pwlock import lora as lora_mod
    from pwlock.config import AttackConfig, ConfigError, LoRAConfig, load_config
    from pwlock.elicit.wsu import cpu_copy, train_in_place
    from pwlock.models import load_checkpoint
    from pwlock.train import Example

    over = ["lock.lora.r=2", "lock.lora.target_modules=[q_proj, v_proj]", "lock.lr=1e-2", "lock.lora_keep=adapter",
            "wsu.lora.r=2", "wsu.lora_init=lock", "wsu.lr=1e-2", "wsu.max_stack=1", "lock.epochs=1", "wsu.seeds=1"]
    runs = tmp_path / "runs"
    assert main(args(tmp_path, models, *over)) == 0
    lock = infos(runs, "lock")[0]
    assert lock["spec"]["lock"]["lora_keep"] == "adapter"
    ckpt = runs / "lock" / f"{lock['name']}-{lock['key']}" / "epoch_1"
    assert (ckpt / "adapter" / "adapter_config.json").is_file()
    locked, tok, _ = load_checkpoint(ckpt)
    want = locked.state_dict()
    start = LlamaForCausalLM.from_pretrained(models[0])
    merged = lora_mod.merge(lora_mod.load_adapter(start, ckpt / "adapter")).state_dict()
    assert set(merged) == set(want)
    for n in want:
        torch.testing.assert_close(merged[n], want[n], rtol=0, atol=1e-6, msg=n)
    wsu = infos(runs, "wsu")
    assert len(wsu) == 1 and wsu[0]["spec"]["wsu"]["lora_init"] == "lock"

    start = LlamaForCausalLM.from_pretrained(models[0])
    base = cpu_copy(start)
    a = AttackConfig(steps=5, lr=1e-2, lora=LoRAConfig(r=2), lora_init="lock")
    exs = [Example("What is 1+1?", "2"), Example("What is 2+2?", "4")]
    train_in_place(start, tok, [exs], a, 0, base, ckpt / "adapter")
    after = {n: p.detach() for n, p in start.named_parameters()}
    assert set(after) == set(base)
    lock_modules = {f"model.layers.{i}.self_attn.{m}.weight" for i in range(2) for m in ("q_proj", "v_proj")}
    assert {n for n in base if not torch.equal(base[n], after[n])} == lock_modules
    assert {n for n in after if not torch.equal(want[n], after[n])} == lock_modules  # the adapter moved on

    with pytest.raises(ConfigError, match="lora_init=lock needs a LoRA lock that keeps its adapter"):
        load_config(tmp_path / "math.yaml", ["lock.lora.r=2", "wsu.lora.r=2", "wsu.lora_init=lock", "wsu.max_stack=1"])
