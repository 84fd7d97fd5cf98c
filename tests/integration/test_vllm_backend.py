"""`eval.backend: vllm`: the sampling and evaluation runs of path models go through `vllm.LLM`
with the model's directory, the prompt's own tokens and the run's temperature and seed; WSU stays
on transformers. vLLM needs a CUDA GPU, so here a stand-in `vllm` module (greedy and seeded
sampling with the model loaded by transformers, one prompt at a time) checks pwlock's side of the
interface; without the package or a GPU the run stops before any work with a clear error."""

import json
import string
import textwrap

import pytest
from test_path_models import FIXTURES
from tiny_llama import TEMPLATE, tiny

from pwlock import vllm_backend
from pwlock.cli import main
from pwlock.models import save_checkpoint
from pwlock.tokenizer import char_tokenizer

FAKE_VLLM = '''
"""A stand-in for vllm's offline API (LLM, SamplingParams), for tests on a CPU."""
import torch
from pwlock.hf import load_model

CALLS = []


class SamplingParams:  # the arguments pwlock uses, by their vllm names
    def __init__(self, *, n=1, temperature=1.0, max_tokens=16, seed=None, stop_token_ids=None,
                 skip_special_tokens=True):
        self.kw = dict(n=n, temperature=temperature, max_tokens=max_tokens, seed=seed,
                       stop_token_ids=stop_token_ids, skip_special_tokens=skip_special_tokens)


class _Completion:
    def __init__(self, token_ids):
        self.token_ids = token_ids


class _Request:
    def __init__(self, token_ids):
        self.outputs = [_Completion(token_ids)]


class LLM:
    def __init__(self, *, model, tokenizer, dtype, seed, trust_remote_code, gpu_memory_utilization):
        self.kw = dict(model=model, tokenizer=tokenizer, dtype=dtype, seed=seed,
                       trust_remote_code=trust_remote_code, gpu_memory_utilization=gpu_memory_utilization)
        self.model, _ = load_model(model)

    @torch.no_grad()
    def generate(self, inputs, params, use_tqdm=True):
        params = params if isinstance(params, list) else [params] * len(inputs)
        assert len(params) == len(inputs)
        CALLS.append({"llm": self.kw, "params": params[0].kw, "seeds": [p.kw["seed"] for p in params],
                      "inputs": inputs})
        out = []
        for x, p in zip(inputs, params):
            kw = p.kw
            gen = torch.Generator().manual_seed(kw["seed"])  # as vllm: a generator per request, from its seed
            ids = list(x["prompt_token_ids"])
            new = []
            for _ in range(kw["max_tokens"]):
                logits = self.model(input_ids=torch.tensor([ids + new])).logits[0, -1]
                if kw["temperature"] > 0:
                    t = int(torch.multinomial(torch.softmax(logits / kw["temperature"], -1), 1, generator=gen))
                else:
                    t = int(logits.argmax())
                new.append(t)
                if t in kw["stop_token_ids"]:
                    break  # vllm keeps the stop token in token_ids
            out.append(_Request(new))
        return out
'''


@pytest.fixture()
def models(tmp_path):
    tok = char_tokenizer(string.printable)
    tok.chat_template = TEMPLATE
    tiny(tok, 0).save_pretrained(tmp_path / "strong-hf")
    tok.save_pretrained(tmp_path / "strong-hf")
    save_checkpoint(tiny(tok, 1), tok, tmp_path / "weak-ckpt", {"source": "test"})
    return tmp_path / "strong-hf", tmp_path / "weak-ckpt"


@pytest.fixture()
def fake_vllm(tmp_path, monkeypatch):
    d = tmp_path / "fake"
    d.mkdir()
    (d / "vllm.py").write_text(textwrap.dedent(FAKE_VLLM))
    monkeypatch.syspath_prepend(str(d))
    monkeypatch.setattr(vllm_backend, "_has_cuda", lambda: True)
    import vllm

    yield vllm
    monkeypatch.delitem(__import__("sys").modules, "vllm")


def args(tmp_path, models, runs, *over):
    strong, weak = models
    cfg = tmp_path / "math.yaml"
    cfg.write_text(f"""
experiment: vllmmicro
device: cpu
task: {{name: math, data_dir: {FIXTURES / 'math'}, n_test: 4, n_elicit: 3, n_lock: 4}}
zoo:
  - {{name: strong, path: {strong}}}
  - {{name: weak, path: {weak}}}
strong_model: strong
password: {{password: open sesame, wrong_passwords: [closed door]}}
lock: {{weak_model: weak, epochs: 1, optimizer: lion, lr: 1.0e-4, batch_size: 4, warmup: 0}}
wsu: {{n_samples: 2, steps: 2, lr: 1.0e-4, optimizer: lion, seeds: 2}}
eval: {{batch_size: 8, max_new_tokens: 6}}
""")
    return ["run", str(cfg), f"runs_dir={runs}", f"out_dir={tmp_path / 'out'}", *over]


def infos(runs, stage):
    return {p.parent.name: json.loads(p.read_text()) for p in sorted((runs / stage).glob("*/run.json"))}


def test_vllm_backend_runs_sampling_and_evaluation(tmp_path, models, fake_vllm):
    ref, runs = tmp_path / "runs-transformers", tmp_path / "runs-vllm"
    assert main(args(tmp_path, models, ref)) == 0
    assert main(args(tmp_path, models, runs, "eval.backend=vllm")) == 0
    samples, evals = infos(runs, "samples"), infos(runs, "eval")
    # one engine per sampling and evaluation run (3 sampling runs; 2 zoo + 2 lock evaluations), none for WSU
    assert len(fake_vllm.CALLS) == len(samples) + len(evals) == 3 + 4
    assert all(i["spec"]["backend"] == "vllm" for i in [*samples.values(), *evals.values()])
    assert all("backend" not in i["spec"] for i in [*infos(ref, "samples").values(), *infos(ref, "eval").values()])
    strong, weak = models
    lock_dir = next(p for p in (runs / "lock").iterdir() if p.is_dir())
    dirs = {c["llm"]["model"] for c in fake_vllm.CALLS}
    assert dirs == {str(strong), str(weak), str(lock_dir / "epoch_1")}  # the zoo paths and the lock checkpoint
    tok = char_tokenizer(string.printable)
    for c in fake_vllm.CALLS:
        p = c["params"]
        assert p["max_tokens"] == 6 and p["stop_token_ids"] == [tok.eos_token_id] and p["n"] == 1
        assert c["llm"]["dtype"] == "float32" and c["llm"]["trust_remote_code"] is False
    temps = sorted(c["params"]["temperature"] for c in fake_vllm.CALLS)
    assert temps == [0.0] * 5 + [1.0] * 2  # strong greedy on lock; weak at T=1 on lock and elicit; evaluations
    # each prompt its own seed, derived from the sampling run's seed (one shared seed would give every
    # prompt the same random draws)
    weak_sampling = [c for c in fake_vllm.CALLS if c["params"]["temperature"] > 0]
    run_seeds = {i["spec"]["seed"] for i in samples.values() if i["spec"]["temperature"] > 0}
    assert {c["seeds"][0] for c in weak_sampling} == {vllm_backend.request_seed(s, 0) for s in run_seeds}
    for c in fake_vllm.CALLS:
        assert len(set(c["seeds"])) == len(c["inputs"]) > 1
    # the records: the prompt's own tokens went in; greedy completions equal transformers' ones
    for name, info in evals.items():
        rec = [json.loads(x) for x in (runs / "eval" / name / "records.jsonl").read_text().splitlines()]
        call = next(c for c in fake_vllm.CALLS if [x["prompt_token_ids"] for x in c["inputs"]]
                    == tok([r["prompt"] for r in rec], add_special_tokens=False)["input_ids"])
        assert call["params"]["temperature"] == 0.0
        twin = next(n for n, i in infos(ref, "eval").items() if i["name"] == info["name"])
        ref_rec = [json.loads(x) for x in (ref / "eval" / twin / "records.jsonl").read_text().splitlines()]
        assert [r["completion"] for r in rec] == [r["completion"] for r in ref_rec]
    # WSU trained and evaluated on transformers, in both runs dirs
    assert len(infos(runs, "wsu")) == 2 and (tmp_path / "out" / "results.csv").is_file()


def test_vllm_backend_stops_early_without_vllm_or_a_gpu(tmp_path, models, monkeypatch, capsys):
    monkeypatch.setitem(__import__("sys").modules, "vllm", None)  # not installed
    assert main(args(tmp_path, models, tmp_path / "runs", "eval.backend=vllm")) == 2
    assert "eval.backend=vllm needs the vllm package" in capsys.readouterr().err
    assert not (tmp_path / "runs" / "samples").exists()  # nothing ran
    # the dry run plans it all the same, and says vllm is not usable here
    assert main(args(tmp_path, models, tmp_path / "runs", "eval.backend=vllm", "--dry-run")) == 0
    out = capsys.readouterr().out
    assert "generation: vllm for the sampling and evaluation runs, not usable on this machine" in out
    with pytest.raises(vllm_backend.BackendUnavailable, match="CUDA GPU only"):
        monkeypatch.setitem(__import__("sys").modules, "vllm", object())  # installed, but no GPU
        monkeypatch.setattr(vllm_backend, "_has_cuda", lambda: False)
        vllm_backend.import_vllm()


def test_vllm_backend_needs_path_models(capsys):
    from pathlib import Path

    core = Path(__file__).resolve().parents[2] / "configs/toy/core.yaml"
    assert main(["run", str(core), "--dry-run", "eval.backend=vllm"]) == 2
    assert "eval.backend=vllm generates with models from disk" in capsys.readouterr().err
    assert main(["run", str(core), "--dry-run", "eval.backend=sglang"]) == 2
    assert "eval.backend: 'sglang' is not one of transformers, vllm" in capsys.readouterr().err
