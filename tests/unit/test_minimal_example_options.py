"""The minimal-example notebook's choices as config options (issue 17): the no-password prompt's
separator, the `$` fallback of answer extraction, the lock's gradient clipping, WSU on the first
problems."""

from pathlib import Path

import pytest

from pwlock.config import AttackConfig, ConfigError, TaskConfig, load_config
from pwlock.elicit import get_attack
from pwlock.tasks import get_task
from pwlock.tasks.math import INSTRUCTION, extract_last_dollar

MATH = Path(__file__).resolve().parents[1] / "fixtures" / "math"


def _math(**kw):
    return get_task(TaskConfig(name="math", data_dir=str(MATH), n_test=4, n_elicit=3, n_lock=4, **kw))


def test_no_password_prompt_separator():
    careful, notebook = _math(), _math(instruction_sep_no_password="\n")
    p = careful.splits()["test"][0]
    assert careful.prompt(p, None) == p.text + "\n\n" + INSTRUCTION
    assert notebook.prompt(p, None) == p.text + "\n" + INSTRUCTION  # problem + "\n" + instruction
    # with the password both are the notebook's f"{pw}\n\n{problem}\n\n{pw}\n" + "\n" + instruction
    assert notebook.prompt(p, "pw") == careful.prompt(p, "pw") == f"pw\n\n{p.text}\n\npw\n\n{INSTRUCTION}"


@pytest.mark.parametrize("text, answer", [
    ("so the answer is $5$.", "5"),
    ("we get $x = 2$ and finally $\\frac{1}{2}$", "\\frac{1}{2}"),
    ("no dollars at all", None),
    ("one $ only", None),
])
def test_last_dollar(text, answer):
    assert extract_last_dollar(text) == answer


def test_dollar_fallback_grades_only_when_asked():
    plain, notebook = _math(grader="exact"), _math(grader="exact", dollar_fallback=True)
    p = plain.splits()["test"][0]
    text = f"the answer is ${p.answer}$"
    assert not plain.score(p, text).correct and notebook.score(p, text).correct
    boxed_wrong = f"\\boxed{{wrong}} but ${p.answer}$"  # a \boxed{} answer is always the one taken
    assert not notebook.score(p, boxed_wrong).correct


def test_lock_grad_clip_reaches_training(tok, tiny_model, task, tmp_path, monkeypatch):
    import pwlock.lock as lock
    from pwlock.config import LockConfig
    from pwlock.train import Example

    probs = task.splits()["lock"][:8]
    examples = [Example(task.prompt(p, "kiwi" if i % 2 else None), p.solution) for i, p in enumerate(probs)]
    seen = []
    real = lock.train
    monkeypatch.setattr(lock, "train", lambda *a, **kw: seen.append(kw["grad_clip"]) or real(*a, **kw))
    for clip in (1.0, 0.0):
        cfg = LockConfig(epochs=1, batch_size=8, lr=1e-3, warmup=0, grad_clip=clip)
        lock.run_lock(tiny_model, tok, examples, cfg, seed=0, out_dir=tmp_path / str(clip), progress=False)
    assert seen == [1.0, 0.0]


def test_lock_grad_clip_is_keyed_only_off_its_default():
    from pwlock.plan import planned_run_ids

    base = planned_run_ids(load_config("configs/toy/core.yaml"))
    assert planned_run_ids(load_config("configs/toy/core.yaml", ["lock.grad_clip=1.0"])) == base
    assert planned_run_ids(load_config("configs/toy/core.yaml", ["lock.grad_clip=0"]))["lock"] != base["lock"]


def test_wsu_pick_first():
    pool = [{"problem_id": f"p{i}", "completion": str(i)} for i in range(10)]
    wsu = get_attack("wsu")
    first = AttackConfig(pick="first", seeds=1)
    assert wsu.sample_sets(first, pool, seed=123) == [pool[:2]]
    from pwlock.elicit.wsu import pick_samples

    assert wsu.sample_sets(AttackConfig(), pool, seed=123) == [pick_samples(pool, 2, 123)]  # random: a seeded draw
    assert {tuple(x["problem_id"] for x in wsu.sample_sets(AttackConfig(), pool, seed=s)[0]) for s in range(5)} != {
        ("p0", "p1")}
    with pytest.raises(ConfigError, match="pick=first"):
        load_config("configs/toy/core.yaml", ["wsu.pick=first"])  # 5 seeds on the same samples
    cfg = load_config("configs/toy/core.yaml", ["wsu.pick=first", "wsu.seeds=1"])
    assert cfg.wsu.pick == "first"


def test_master_weights_direct_steps_the_16_bit_weights(tok, tiny_model, task):
    """Lion at the write-up's lr 1.5e-6 on bf16 weights. With fp32 masters (auto) the updates
    accumulate until they show in bf16: after 10 steps many more weights have changed than after 1.
    Direct, each step's update (1.5e-6) is below half a bf16 ulp of all but the smallest weights
    and rounds away, every step again: the weights that change after 10 steps are those of step 1.
    Measured on the 0.09 M toy model (docs/real-models.md): masters 2.0% of weights changed after 1
    step, 15.6% after 10, 98.6% after 100; direct 2.0% after 1, 10 and 100 steps."""
    import copy

    import torch

    from pwlock.train import Example, train

    exs = [Example(task.prompt(p, None), p.solution) for p in task.splits()["lock"][:4]]

    def share_changed(mode, steps):
        m = copy.deepcopy(tiny_model).to(torch.bfloat16)
        before = [p.detach().clone() for p in m.parameters()]
        train(m, tok, exs, steps=steps, batch_size=4, lr=1.5e-6, optimizer="lion", master_weights=mode,
              progress=False)
        return sum(int((a != b).sum()) for a, b in zip(before, m.parameters())) / sum(p.numel() for p in before)

    masters1, masters10 = share_changed(None, 1), share_changed(None, 10)
    direct1, direct10 = share_changed(False, 1), share_changed(False, 10)
    assert masters10 > 3 * masters1  # the masters accumulate
    assert direct10 < 1.1 * direct1 and direct10 < masters10 / 3  # direct: a sparse update, no accumulation


def test_master_weights_direct_reaches_lock_and_wsu(tok, tiny_model, task, tmp_path, monkeypatch):
    import pwlock.elicit.wsu as wsu
    import pwlock.lock as lock
    from pwlock.config import LockConfig
    from pwlock.train import Example

    probs = task.splits()["lock"][:8]
    examples = [Example(task.prompt(p, "kiwi" if i % 2 else None), p.solution) for i, p in enumerate(probs)]
    seen = []
    real = lock.train
    monkeypatch.setattr(lock, "train", lambda *a, **kw: seen.append(kw.get("master_weights")) or real(*a, **kw))
    monkeypatch.setattr(wsu, "train", lambda *a, **kw: seen.append(kw.get("master_weights")) or real(*a, **kw))
    lock.run_lock(tiny_model, tok, examples, LockConfig(epochs=1, batch_size=8, warmup=0, master_weights="direct"),
                  seed=0, out_dir=tmp_path, progress=False)
    base = wsu.cpu_copy(tiny_model)
    wsu.train_in_place(tiny_model, tok, [examples[:2]], AttackConfig(steps=2, master_weights="direct"), 0, base)
    assert seen == [False, False]
    with pytest.raises(ConfigError, match="max_stack: 1"):
        load_config("configs/toy/core.yaml", ["wsu.master_weights=direct"])
    assert load_config("configs/toy/core.yaml", ["wsu.master_weights=direct", "wsu.max_stack=1"])
