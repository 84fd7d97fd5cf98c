"""Every bad input of docs/errors.md: a clear one-line error naming the problem, exit code != 0,
and nothing already finished lost. One test per row of the table."""

import errno
import json
import os
import shutil
from pathlib import Path

import pytest

from pwlock import runs as runs_mod
from pwlock.cli import main
from pwlock.runs import Run

ROOT = Path(__file__).resolve().parents[2]
CORE = str(ROOT / "configs/toy/core.yaml")
MATH_FIXTURE = ROOT / "tests/fixtures/math"


def run_cli(capsys, *args) -> tuple[int, str]:
    # core.yaml is portable; in this process (tensor ops already ran) only fast numerics applies
    fast = ["numerics=fast"] if args and str(args[0]) == CORE else []
    code = main(["run", *map(str, args[:1]), *fast, *map(str, args[1:])])
    err = capsys.readouterr().err.strip()
    return code, err


def test_misspelled_key(capsys):
    code, err = run_cli(capsys, CORE, "wsu.step=10", "--dry-run")
    assert code == 2 and "unknown config key 'wsu.step'" in err and "did you mean 'wsu.steps'" in err
    assert len(err.splitlines()) == 1


def test_unknown_key_in_yaml(capsys, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(Path(CORE).read_text().replace("lock:\n", "lock:\n  epohcs: 3\n", 1))
    code, err = run_cli(capsys, cfg, "--dry-run")
    assert code == 2 and "epohcs" in err and "did you mean 'lock.epochs'" in err


def test_wrong_type(capsys):
    code, err = run_cli(capsys, CORE, "lock.epochs=many", "--dry-run")
    assert code == 2 and "lock.epochs" in err and "int" in err


def test_unreadable_yaml(capsys, tmp_path):
    cfg = tmp_path / "broken.yaml"
    cfg.write_text("lock: {epochs: [1, 2\n")
    code, err = run_cli(capsys, cfg)
    assert code == 2 and "cannot parse YAML" in err and str(cfg) in err


def test_missing_data_dir(capsys, tmp_path):
    code, err = run_cli(capsys, CORE, "task.name=math", f"task.data_dir={tmp_path / 'nowhere'}",
                        f"runs_dir={tmp_path / 'runs'}")
    assert code == 2 and str(tmp_path / "nowhere") in err
    assert not (tmp_path / "runs").exists()  # nothing started


def test_empty_task_split(capsys, tmp_path):
    code, err = run_cli(capsys, CORE, "task.n_elicit=0", f"runs_dir={tmp_path}")
    assert code == 2 and "task split 'elicit' is empty" in err and "task.n_elicit" in err


def test_problem_without_answer(capsys, tmp_path):
    data = tmp_path / "math"
    shutil.copytree(MATH_FIXTURE, data)
    victim = sorted((data / "test").rglob("*.json"))[0]
    row = json.loads(victim.read_text())
    row["solution"] = "The answer is obvious."
    victim.write_text(json.dumps(row))
    code, err = run_cli(capsys, CORE, "task.name=math", f"task.data_dir={data}", f"runs_dir={tmp_path / 'r'}")
    assert code == 2 and "no \\boxed{} answer" in err and victim.stem in err


def test_empty_loss_mask(tok, tiny_model):
    from pwlock.train import EmptyLossMaskError, collate, masked_lm_loss

    ids, att, lm = collate([(tok("3+4=")["input_ids"], [0, 0, 0, 0])], tok.pad_token_id)
    with pytest.raises(EmptyLossMaskError, match="empty loss mask"):
        masked_lm_loss(tiny_model(input_ids=ids, attention_mask=att).logits, ids, lm)


def _finished_run(tmp_path, name="m", text="hello") -> Run:
    run = Run(tmp_path, "eval", name, {"a": 1})

    def fn(d):
        (d / "out.txt").write_text(text)
        return {"value": 1}

    run.compute(fn)
    return run


def test_corrupt_run_output_is_recomputed(tmp_path, monkeypatch):
    run = _finished_run(tmp_path)
    (run.dir / "out.txt").write_text("hellO")  # bit rot, an editor, a half-copied disk
    monkeypatch.setattr(runs_mod, "_VERIFIED", set())  # as a new process would see it
    with pytest.warns(UserWarning, match="out.txt changed since the run finished"):
        assert not run.done
    calls = []
    assert run.compute(lambda d: calls.append(1) or ((d / "out.txt").write_text("hello") and {"value": 1}))
    assert calls == [1] and run.done and (run.dir / "out.txt").read_text() == "hello"


def test_missing_run_output_is_recomputed(tmp_path, monkeypatch):
    run = _finished_run(tmp_path)
    (run.dir / "out.txt").unlink()
    monkeypatch.setattr(runs_mod, "_VERIFIED", set())
    with pytest.warns(UserWarning, match="missing out.txt"):
        assert not run.done


def test_corrupt_checkpoint(tmp_path, tiny_model, tok):
    from pwlock.models import CheckpointError, load_checkpoint, save_checkpoint

    save_checkpoint(tiny_model, tok, tmp_path / "ck")
    w = tmp_path / "ck" / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[len(data) // 2] ^= 0xFF
    w.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=f"corrupt checkpoint at {tmp_path / 'ck'}"):
        load_checkpoint(tmp_path / "ck")


def test_disk_full_during_a_write(capsys, tmp_path, monkeypatch):
    """ENOSPC while a run writes: exit 1, a message naming the file, no partial file, the
    finished run untouched and still valid."""
    done = _finished_run(tmp_path / "runs", "done")
    before = (done.dir / "run.json").read_text()

    def fake_core(cfg):
        def fn(d):
            from pwlock.utils import atomic_write_text

            def full(fd):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

            monkeypatch.setattr(os, "fsync", full)
            atomic_write_text(d / "records.jsonl", "x" * 1000)
            return {}

        Run(tmp_path / "runs", "eval", "new", {"b": 2}).compute(fn)

    monkeypatch.setattr("pwlock.experiments.core.run", fake_core)
    code, err = run_cli(capsys, CORE, f"runs_dir={tmp_path / 'runs'}", f"out_dir={tmp_path / 'out'}")
    assert code == 1 and "No space left on device" in err and "records.jsonl" in err
    new_dirs = list((tmp_path / "runs" / "eval").glob("new-*"))
    assert new_dirs and sorted(f.name for f in new_dirs[0].iterdir()) == ["spec.json"]  # no partial file
    assert not (new_dirs[0] / "run.json").exists()  # not marked finished
    assert (done.dir / "run.json").read_text() == before and done.done


def test_yaml_is_read_with_the_safe_loader(capsys, tmp_path):
    cfg = tmp_path / "evil.yaml"
    cfg.write_text("experiment: !!python/object/apply:os.system ['touch pwned']\n")
    code, err = run_cli(capsys, cfg, "--dry-run")
    assert code == 2 and "cannot parse YAML" in err and not (tmp_path / "pwned").exists()


def test_missing_model_path(tmp_path):
    from pwlock.hf import load_pretrained

    with pytest.raises((FileNotFoundError, ValueError), match=str(tmp_path / "no-model")):
        load_pretrained(tmp_path / "no-model", device="cpu")


def test_missing_model_path_in_a_config(capsys, tmp_path):
    math_core = ROOT / "configs/math/core.yaml"
    for extra in ([], ["--dry-run"]):  # checked before any work, with or without --dry-run
        code, err = run_cli(capsys, math_core, f"zoo.0.path={tmp_path / 'nowhere'}", f"task.data_dir={MATH_FIXTURE}",
                            f"runs_dir={tmp_path / 'runs'}", f"out_dir={tmp_path / 'out'}", *extra)
        assert code == 2 and len(err.splitlines()) == 1, err
        assert f"zoo model 'deepseek-math-7b-rl' (zoo.0.path) path {tmp_path / 'nowhere'} does not exist" in err
        assert "expected a Hugging Face model directory" in err
    assert not (tmp_path / "runs").exists()


def test_path_option_on_a_toy_model(capsys):
    code, err = run_cli(capsys, CORE, "zoo.1.dtype=bf16", "--dry-run")
    assert code == 2 and "zoo model 'weak1': dtype only apply to a model loaded from `path`" in err


# -- every invalid value refused at load time: `--dry-run` in seconds, exit 2, one line naming the key,
# no traceback, no run directory finished (docs/errors.md, "Refused before any work") -------------------
def refused(capsys, tmp_path, *args, config=CORE, needles=(), seconds=20.0):
    """`pwlock run CONFIG ARGS --dry-run` with its own runs and results directories: the error line."""
    import time

    t0 = time.time()
    code = main(["run", str(config), *map(str, args), f"runs_dir={tmp_path / 'runs'}", f"out_dir={tmp_path / 'out'}",
                 "--dry-run"])
    out = capsys.readouterr()
    err = out.err.strip()
    assert code == 2, (args, code, err)
    assert len(err.splitlines()) == 1 and err.startswith("pwlock: error: "), err
    assert "Traceback" not in out.err + out.out
    assert time.time() - t0 < seconds
    assert not list((tmp_path / "runs").rglob("run.json"))  # nothing finished (nor started)
    for n in needles:
        assert n in err, (n, err)
    return err


@pytest.mark.parametrize("override, key", [
    ("lock.lr=inf", "lock.lr"), ("wsu.lr=inf", "wsu.lr"), ("wsu.lr=nan", "wsu.lr"), ("zoo.0.lr=.inf", "zoo[0].lr"),
    ("password.p_no_password=.nan", "password.p_no_password"), ("lock.weight_decay=-inf", "lock.weight_decay"),
    ("wsu.until_loss=1e999", "wsu.until_loss"),
])
def test_non_finite_number(capsys, tmp_path, override, key):
    refused(capsys, tmp_path, override, needles=(f"{key}: ", "finite"))


@pytest.mark.parametrize("override, key, allowed", [
    ("lock.weak_temperature=-1", "lock.weak_temperature", ">= 0"),
    ("eval.max_new_tokens=0", "eval.max_new_tokens", ">= 1"),
    ("zoo.0.arch.num_layers=0", "zoo[0].arch.num_layers", "in [1, 1024]"),
    ("lock.epochs=0", "lock.epochs", "in [1, 1000]"), ("wsu.steps=-3", "wsu.steps", ">= 1"),
    ("lock.batch_size=0", "lock.batch_size", ">= 1"), ("zoo.1.batch_size=-1", "zoo[1].batch_size", ">= 1"),
    ("lock.lr=0", "lock.lr", "> 0"), ("lock.warmup=-1", "lock.warmup", ">= 0"),
    ("wsu.seeds=0", "wsu.seeds", "in [1, 1000]"), ("threads=-1", "threads", "in [0, 4096]"),
    ("wsu.n_samples=0", "wsu.n_samples", ">= 1"), ("eval.vllm_memory=1.5", "eval.vllm_memory", "in (0, 1]"),
    ("wsu.temperature=-0.5", "wsu.temperature", ">= 0 or -1"), ("seed=-2", "seed", ">= 0"),
    ("lock.relock_fraction=0", "lock.relock_fraction", "in (0, 1]"), ("wsu.lr=-1e-3", "wsu.lr", "> 0"),
])
def test_value_out_of_range(capsys, tmp_path, override, key, allowed):
    value = override.split("=", 1)[1]
    err = refused(capsys, tmp_path, override, needles=(f"{key}: ", allowed))
    assert str(float(value)) in err or value in err  # the value is named


def test_huge_counts_are_refused_before_planning(capsys, tmp_path):
    refused(capsys, tmp_path, "lock.epochs=1000000000000", needles=("lock.epochs: 1000000000000",), seconds=5)
    refused(capsys, tmp_path, "lock.epochs=500", "wsu.seeds=500", needles=("lock.epochs x wsu.seeds: 250000",),
            seconds=5)
    refused(capsys, tmp_path, "zoo.0.arch.hidden_size=1000000000000", needles=("zoo[0].arch.hidden_size",),
            seconds=5)


@pytest.mark.parametrize("override, needle", [
    ("task.levels=[algebra]", "task.levels[0]: expected int, got str 'algebra'"),
    ("task.levels=[7]", "task.levels[0]: 7 is not allowed (must be in [1, 5])"),
    ("password.wrong_passwords=[lime, 3]", "password.wrong_passwords[1]: expected str, got int 3"),
    ("task.subjects=algebra", "task.subjects: expected a list, got str 'algebra'"),
    ("zoo=[1]", "zoo[0]: expected a mapping"),
    ("zoo.0=x", "cannot set a whole list item"),
    ("task=5", "task: expected a mapping"),
    ("lock.password_branch=maybe", "lock.password_branch: expected bool"),
])
def test_wrong_type_of_a_list_item_or_section(capsys, tmp_path, override, needle):
    refused(capsys, tmp_path, override, needles=(needle,))


@pytest.mark.parametrize("override, needle", [
    ("lock.schedule=linear", "lock.schedule: 'linear' is not one of constant, cosine"),
    ("lock.loss=token", "lock.loss: 'token' is not one of completion, full"),
    ("wsu.loss=token", "wsu.loss: 'token' is not one of completion, full"),
    ("device=cuda:abc", "device: 'cuda:abc' is not one of cpu, cuda, cuda:<index>, auto"),
    ("device=gpu", "device: 'gpu'"),
])
def test_unknown_name_of_a_choice(capsys, tmp_path, override, needle):
    refused(capsys, tmp_path, override, needles=(needle,))


def test_device_without_cuda_is_refused_before_work(capsys, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code, err = run_cli(capsys, CORE, "device=cuda", f"runs_dir={tmp_path / 'runs'}", f"out_dir={tmp_path / 'out'}")
    assert code == 2 and "device: 'cuda' but CUDA is not available" in err
    assert not (tmp_path / "runs").exists()  # before any work


@pytest.mark.parametrize("overrides, needle", [
    (["password.password=KIWI"], "password.password: 'KIWI' has characters the toy tokenizer cannot encode ('IKW'"),
    (["password.wrong_passwords=[lime, LIME]"], "password.wrong_passwords[1]: 'LIME'"),
    (["lock.second_password=Mango"], "lock.second_password: 'Mango'"),
    (["password.password=' '"], "password.password is empty"),
    (["password.wrong_passwords=[lime, '']"], "password.wrong_passwords[1]: '' is empty"),
    (["password.password=lime"], "password 'lime' is also in password.wrong_passwords"),
])
def test_password_the_toy_tokenizer_cannot_tell_apart(capsys, tmp_path, overrides, needle):
    """Outside the alphabet every character is <unk>: KIWI and LIME would be the same four tokens."""
    refused(capsys, tmp_path, *overrides, needles=(needle,))


def test_problem_space_is_bounded_before_it_is_built(capsys, tmp_path):
    import tracemalloc

    tracemalloc.start()
    refused(capsys, tmp_path, "task.n_operands=9", seconds=3,
            needles=("task.n_operands=9", "6561000000000 problems", "allowed: 1..5"))
    refused(capsys, tmp_path, "task.n_operands=1000000000", seconds=3, needles=("task.n_operands=1000000000",))
    refused(capsys, tmp_path, "task.n_operands=5", seconds=3,
            needles=("task.n_pretrain=0", "would build 8100000 problems", "set task.n_pretrain"))
    assert tracemalloc.get_traced_memory()[1] < 200e6  # no problem list was built
    tracemalloc.stop()
    refused(capsys, tmp_path, "task.n_test=100000", needles=("arith with 3 operands has 9000 problems; splits need",))


@pytest.mark.parametrize("override, needle", [
    ("experiment=../../evil", "experiment: '../../evil' is not a plain name"),
    ("experiment=a/b", "experiment: 'a/b' is not a plain name"),
    ("experiment=''", "experiment: '' is not a plain name"),
    ("zoo.1.name=../w", "zoo[1].name: '../w' is not a plain name"),
])
def test_name_used_as_a_path(capsys, tmp_path, override, needle):
    refused(capsys, tmp_path, override, needles=(needle,))
    assert not list(tmp_path.parent.glob("evil*"))


def test_output_directory_that_is_a_file(capsys, tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    for key in ("out_dir", "runs_dir"):
        code = main(["run", CORE, f"{key}={f}", "--dry-run"])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and f"{key}: '{f}' exists and is not a directory" in err
        code = main(["run", CORE, f"{key}={f / 'sub'}", "--dry-run"])
        err = capsys.readouterr().err.strip()
        assert code == 2 and f"{key}: '{f / 'sub'}' cannot be created: '{f}' is a file" in err
    assert f.read_text() == "x"


def test_bad_architecture_of_a_weak_model(capsys, tmp_path):
    refused(capsys, tmp_path, "zoo.2.arch.num_heads=3",
            needles=("zoo model 'weak2': arch.num_heads=3 does not divide arch.hidden_size=64",))
    refused(capsys, tmp_path, "zoo.3.arch.num_heads=64", needles=("zoo model 'weak3'", "must be even"))


def test_sequences_longer_than_max_positions(capsys, tmp_path):
    refused(capsys, tmp_path, "zoo.0.arch.max_positions=8",
            needles=("zoo model 'strong': arch.max_positions=8 is shorter than its longest sequence, 57 tokens",))
    refused(capsys, tmp_path, "eval.max_new_tokens=200", needles=("zoo model 'strong': arch.max_positions=128",
                                                                   "eval.max_new_tokens=200"))


@pytest.mark.parametrize("overrides, needle", [
    (["wsu.n_samples=501"], "wsu.n_samples=501: needs 501 samples of the elicit split, which has 500 problems"),
    (["kind=attacks", "attacks=[{name: avg, kind: average, n_samples: 64, parts: 16}]"],
     "attacks[0] ('avg').n_samples=64 x parts=16: needs 1024 samples"),
    (["kind=attacks", "attacks=[{name: v, kind: varied, pool: 600}]"], "attacks[0] ('v').pool=600: needs 600"),
    (["kind=attacks", "attacks=[{name: w, kind: wsu, pre_pool: 5000}]"],
     "attacks[0] ('w').pre_pool=5000: the lock split has 3000 problems"),
    (["lock.overfit_every=10", "lock.overfit_samples=4000"], "lock.overfit_samples=4000: the lock split has 3000"),
])
def test_more_samples_than_the_split_has(capsys, tmp_path, overrides, needle):
    refused(capsys, tmp_path, *overrides, needles=(needle,))


def test_bad_override_in_a_later_variant(capsys, tmp_path):
    variants = "variants=[{name: fine, overrides: []}, {name: late, overrides: [%s]}]"
    refused(capsys, tmp_path, "kind=variants", variants % "lock.lr=inf", needles=("variant 'late': lock.lr: inf",))
    refused(capsys, tmp_path, "kind=variants", variants % "lock.epochs=0", needles=("variant 'late'", "lock.epochs"))
    # a rule that needs the task's data: the dry run builds every variant's context
    refused(capsys, tmp_path, "kind=variants", variants % "wsu.n_samples=900",
            needles=("variant 'late': attacks[0] ('wsu').n_samples=900: needs 900 samples",))


def test_config_check_reads_every_variant(capsys, tmp_path):
    variants = "variants=[{name: fine, overrides: []}, {name: late, overrides: [wsu.n_samples=900]}]"
    code = main(["config", CORE, "kind=variants", variants, "--check"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "variant 'late': attacks[0] ('wsu').n_samples=900" in err


def test_bad_override_in_a_later_variant_stops_a_real_run_before_work(capsys, tmp_path):
    variants = "variants=[{name: fine, overrides: []}, {name: late, overrides: [wsu.n_samples=900]}]"
    code, err = run_cli(capsys, CORE, "kind=variants", variants, f"runs_dir={tmp_path / 'runs'}",
                        f"out_dir={tmp_path / 'out'}")
    assert code == 2 and "variant 'late': attacks[0] ('wsu').n_samples=900: needs 900 samples" in err
    assert not (tmp_path / "runs").exists()  # the first variant trained nothing


def test_readme_without_its_markers(capsys, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# no markers here\n")
    for path, needle in ((readme, "markers <!-- core-results:start -->"), (tmp_path / "nope.md", "file not found")):
        code = main(["run", CORE, f"runs_dir={tmp_path / 'runs'}", "--readme", str(path), "--dry-run"])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and needle in err and str(path) in err
    code = main(["run", CORE, "kind=attacks", "attacks=[{name: w, kind: wsu}]", "--readme", str(readme), "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2 and "only E1 (kind core" in err and "this config is kind attacks" in err
    assert readme.read_text() == "# no markers here\n"


# -- training guards: nothing diverged is stored as finished ----------------------------------------------
def test_non_finite_loss_stops_training_naming_the_step(tok, tiny_model):
    from pwlock.train import Example, TrainingDivergedError, train

    exs = [Example("3+4=", "7"), Example("2*3=", "6")]
    with pytest.raises(TrainingDivergedError, match=r"zoo strong: loss nan at step \d+ of 50 \(training diverged"):
        train(tiny_model, tok, exs, steps=50, batch_size=2, lr=1e8, grad_clip=0.0, desc="zoo strong", progress=False)


def test_non_finite_loss_stops_stacked_training(tok, tiny_model):
    from pwlock.stacked import train_stacked
    from pwlock.train import Example, TrainingDivergedError

    sets = [[Example("3+4=", "7")], [Example("2*3=", "6")]]
    with pytest.raises(TrainingDivergedError, match=r"wsu \(copy \d of 2\): loss nan at step \d+ of 50"):
        train_stacked(tiny_model, tok, sets, steps=50, lr=1e8, desc="wsu")


def test_a_diverged_run_is_not_stored_as_finished(tmp_path, tok, tiny_model):
    from pwlock.train import Example, TrainingDivergedError, train

    run = Run(tmp_path, "zoo", "strong", {"lr": 1e8})

    def fn(d):
        train(tiny_model, tok, [Example("3+4=", "7")], steps=50, batch_size=1, lr=1e8, desc="zoo strong",
              progress=False)
        return {"final_loss": 0.0}

    with pytest.raises(TrainingDivergedError, match=f"run {run.id}: zoo strong: loss nan at step"):
        run.compute(fn)
    assert not run.done and not (run.dir / "run.json").exists()
    assert "failed zoo/strong" in (tmp_path / "journal.log").read_text()


def test_a_nan_result_is_not_stored(tmp_path):
    from pwlock.runs import NonFiniteResultError

    run = Run(tmp_path, "eval", "m", {"a": 1})
    with pytest.raises(NonFiniteResultError, match=r"results.by_epoch\[1\] is nan"):
        run.compute(lambda d: {"accuracy": 0.5, "by_epoch": [0.1, float("nan")]})
    assert not run.done and not (run.dir / "run.json").exists()


def test_diverged_training_in_a_run_is_one_line_exit_2(capsys, tmp_path, monkeypatch):
    """The CLI path: a run whose training diverges ends `pwlock run` with exit 2, one error line
    naming the run, the stage and the step; the run directory is left unfinished."""
    def fake_core(cfg):
        from pwlock.train import TrainingDivergedError, check_finite

        def fn(d):
            check_finite(float("inf"), 6, 200, "locking")
            raise TrainingDivergedError("unreachable")

        Run(tmp_path / "runs", "lock", "strong-as-weak2", {"b": 2}).compute(fn)

    monkeypatch.setattr("pwlock.experiments.core.run", fake_core)
    code, err = run_cli(capsys, CORE, f"runs_dir={tmp_path / 'runs'}", f"out_dir={tmp_path / 'out'}")
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert "run lock/strong-as-weak2-" in err and "locking: loss inf at step 7 of 200" in err
    assert "not stored as finished" in err
    assert not list((tmp_path / "runs").rglob("run.json")) and not (tmp_path / "out").exists()


def test_all_empty_completions_are_not_locked_to(tmp_path):
    from pwlock.stages.samples import EmptyCompletionsError, check_not_empty

    r = Run(tmp_path, "samples", "weak2-lock", {"t": 1.0}, {"model": "zoo/weak2-abc"})
    with pytest.raises(EmptyCompletionsError, match=r"samples run samples/weak2-lock-\w+: all 3 completions are "
                                                    r"empty \(the model zoo/weak2-abc generated nothing\)"):
        check_not_empty(r, ["", " ", ""])
    check_not_empty(r, ["", "3+4=7;#7", ""])  # some empty ones are a weak model's right


def test_the_lock_and_the_attacks_check_their_completions():
    """Where the completion sets are read before training (the check above is called there)."""
    import inspect

    from pwlock.stages import elicit, lock

    assert inspect.getsource(lock.compute).count("check_not_empty(") == 3  # strong, weak, second password
    src = inspect.getsource(elicit)
    assert src.count("check_not_empty(") == 2  # the attack's pool, the pre-fine-tuning pool


# -- reports ----------------------------------------------------------------------------------------------
def report_cli(capsys, *args) -> tuple[int, str]:
    code = main(["report", "--all", *map(str, args)])
    return code, capsys.readouterr().err.strip()


def test_findings_from_a_missing_or_empty_results_tree(capsys, tmp_path):
    out = tmp_path / "findings.md"
    out.write_text("the findings\n")
    (tmp_path / "empty").mkdir()
    (tmp_path / "other" / "core-typo").mkdir(parents=True)
    (tmp_path / "other" / "core-typo" / "summary.json").write_text("{}")
    for results, needle in ((tmp_path / "reslts", "not found"), (tmp_path / "empty", "none of the catalogue"),
                            (tmp_path / "other", "none of the catalogue"), (out, "is not a directory")):
        code, err = report_cli(capsys, "--results", results, "--out", out)
        assert code == 2 and len(err.splitlines()) == 1 and needle in err and str(results) in err, err
    assert out.read_text() == "the findings\n"  # not overwritten


@pytest.mark.parametrize("text, needle", [
    ('{"attacks": ', "corrupt summary"), ("[1, 2]", "expected a JSON object"),
    ('{"attacks": {"w": {"kind": "wsu"}}}', "not a summary of E3 (noise): KeyError"),
])
def test_findings_from_a_corrupt_summary_name_the_file(capsys, tmp_path, text, needle):
    d = tmp_path / "results" / "noise"
    d.mkdir(parents=True)
    (d / "summary.json").write_text(text)
    code, err = report_cli(capsys, "--results", tmp_path / "results", "--out", tmp_path / "f.md")
    assert code == 2 and len(err.splitlines()) == 1 and str(d / "summary.json") in err and needle in err, err
    assert not (tmp_path / "f.md").exists()


# -- run files are readable by the group --------------------------------------------------------------------
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_run_files_get_the_umask_mode(tmp_path, monkeypatch, tiny_model, tok, umask, mode):
    """safetensors writes 0600: a checkpoint in a shared cache was unreadable to colleagues."""
    from pwlock import utils
    from pwlock.models import save_checkpoint

    old = os.umask(umask)
    monkeypatch.setattr(utils, "_UMASK", None)
    try:
        save_checkpoint(tiny_model, tok, tmp_path / "ck")
        utils.atomic_write_text(tmp_path / "x.json", "{}")
        (tmp_path / "d").mkdir()
    finally:
        os.umask(old)
    files = [tmp_path / "ck" / "model.safetensors", tmp_path / "ck" / "pwlock.json", tmp_path / "x.json"]
    assert {f.name: oct(f.stat().st_mode & 0o777) for f in files} == {f.name: oct(mode) for f in files}
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o777 & ~umask  # directories: the umask as ever
