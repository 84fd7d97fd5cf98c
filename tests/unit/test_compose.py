"""The compose task: a fixed library of functions, problems that compose several, exact scoring."""

import pytest

from pwlock.config import ConfigError, TaskConfig, load_config
from pwlock.tasks import get_task
from pwlock.tasks.compose import FUNCTIONS, solve, space_size


def test_solution_steps_and_scoring():
    solution, value = solve(("rev", "inc", "rol"), "4712")
    assert solution == "rev 2174;inc 3285;rol 2853;#2853" and value == "2853"
    assert FUNCTIONS["srt"]("3120") == "0123" and FUNCTIONS["swp"]("1234") == "3412"
    assert FUNCTIONS["dbl"]("0596") == "0082" and FUNCTIONS["dec"]("0190") == "9089"
    assert FUNCTIONS["ror"]("1234") == "4123"


def test_splits_disjoint_large_and_self_consistent():
    cfg = TaskConfig(name="compose", n_test=300, n_elicit=50, n_lock=400, n_pretrain=2000)
    task = get_task(cfg)
    sp = task.splits()
    assert {k: len(v) for k, v in sp.items()} == {"test": 300, "elicit": 50, "lock": 400, "pretrain": 2000}
    ids = [p.id for v in sp.values() for p in v]
    assert len(set(ids)) == len(ids)
    assert space_size(3, 4) == 5_120_000  # >= 100 k problems: lock, elicit and test pools never run short
    for p in sp["test"][:50]:
        assert task.score(p, p.solution).correct
        assert not task.score(p, p.solution.replace(f"#{p.answer}", "#" + str(int(p.answer) + 1))).correct
        assert p.solution.startswith(p.text.split()[0] + " ")
    assert task.prompt(sp["test"][0], "kiwi").startswith("kiwi ") and task.prompt(sp["test"][0], None).endswith("=")
    assert get_task(cfg).splits()["test"] == sp["test"]  # the same seed, the same problems
    other = get_task(TaskConfig(name="compose", n_test=300, n_elicit=50, n_lock=400, n_pretrain=2000, data_seed=1))
    assert other.splits()["test"] != sp["test"]


def test_leading_zeros_are_part_of_the_answer():
    task = get_task(TaskConfig(name="compose", n_test=5, n_elicit=0, n_lock=0, n_pretrain=1, n_digits=3))
    p = task.splits()["test"][0]
    assert len(p.answer) == 3 and task.score(p, "x;#" + p.answer).correct


@pytest.mark.parametrize("over, needle", [
    (["task.n_functions=9"], "1..8 functions"),
    (["task.n_digits=1"], "2..12 digits"),
    (["task.n_pretrain=3000000"], "at most 2000000 built"),
])
def test_compose_bad_config(over, needle):
    with pytest.raises(ConfigError, match=needle):
        load_config("configs/toy/core.yaml", ["task.name=compose", *over])


def test_pretrain_mix_is_broader_and_disjoint_from_the_other_splits():
    cfg = TaskConfig(name="compose", n_test=200, n_elicit=20, n_lock=200, n_pretrain=4000, n_digits=3,
                     pretrain_functions=[1, 2, 3, 4])
    sp = get_task(cfg).splits()
    lengths = {len(p.text.split()) - 1 for p in sp["pretrain"]}
    assert lengths == {1, 2, 3, 4} and len(sp["pretrain"]) == 4000
    assert {len(p.text.split()) - 1 for p in sp["test"] + sp["lock"]} == {3}
    held = {p.id for s in ("test", "elicit", "lock") for p in sp[s]}
    pre = [p.id for p in sp["pretrain"]]
    assert len(set(pre)) == len(pre) and not held & set(pre)
