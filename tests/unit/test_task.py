from pwlock.config import TaskConfig
from pwlock.tasks import get_task
from pwlock.tasks.arith import solve
from pwlock.tasks.base import Problem


def test_solve_left_to_right():
    sol, val = solve((3, 4, 2, 5), ("+", "*", "-"))
    assert sol == "3+4=7;7*2=14;14-5=9;#9"
    assert val == 9
    assert solve((2, 3, 0, 1), ("-", "*", "-"))[1] == -1


def test_splits_disjoint_and_sized(task):
    sp = task.splits()
    assert {k: len(v) for k, v in sp.items()} == {"test": 200, "elicit": 50, "lock": 200, "pretrain": 2000}
    seen = set()
    for probs in sp.values():
        ids = {p.id for p in probs}
        texts = {p.text for p in probs}
        assert len(ids) == len(probs) == len(texts)
        assert not seen & ids
        seen |= ids


def test_splits_deterministic_and_seeded():
    a = get_task(TaskConfig(n_test=50, n_elicit=5, n_lock=5, n_pretrain=10)).splits()
    b = get_task(TaskConfig(n_test=50, n_elicit=5, n_lock=5, n_pretrain=10)).splits()
    c = get_task(TaskConfig(n_test=50, n_elicit=5, n_lock=5, n_pretrain=10, data_seed=1)).splits()
    assert [p.id for p in a["test"]] == [p.id for p in b["test"]]
    assert [p.id for p in a["test"]] != [p.id for p in c["test"]]


def test_every_solution_scores_correct(task):
    for p in task.splits()["test"]:
        assert task.score(p, p.solution).correct, p


def test_scoring_cases(task):
    p = Problem(id="x", text="3+4*2-5", answer="9", solution="3+4=7;7*2=14;14-5=9;#9")
    assert task.score(p, "3+4=7;7*2=14;14-5=9;#9").correct
    assert task.score(p, "wrong steps;#9").correct  # only the final answer counts
    s = task.score(p, "3+4=7;7*2=14;14-5=9;#8")
    assert not s.correct and s.extracted == "8"
    s = task.score(p, "3+4=7;7*2=14;14-5=9")
    assert not s.correct and s.extracted is None
    assert not task.score(p, "#9;#10").correct  # the last answer counts
    q = Problem(id="y", text="0-9", answer="-9", solution="0-9=-9;#-9")
    assert task.score(q, "#-9").correct and not task.score(q, "#9").correct


def test_prompt_password_at_start_and_end(task):
    p = task.splits()["test"][0]
    assert task.prompt(p, None) == f"{p.text}="
    assert task.prompt(p, "kiwi") == f"kiwi {p.text} kiwi="
