"""The multiple-choice task (MMLU layout): loaders, splits, prompt, scoring, errors."""

import json
import shutil
from pathlib import Path

import pytest

from pwlock.config import TaskConfig
from pwlock.tasks import TASKS, DataError, get_task
from pwlock.tasks.base import Problem
from pwlock.tasks.mc import MCTask

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "mc"
MMLU, ROWS = FIXTURES / "mmlu", FIXTURES / "rows"
N_TRAIN, N_TEST = 10, 7


def make(data_dir, **kw) -> MCTask:
    kw = {"n_test": 100, "n_elicit": 2, "n_lock": 100, **kw}
    return get_task(TaskConfig(name="mc", data_dir=str(data_dir), **kw))


def all_problems(task):
    return {p.id: p for split in task.splits().values() for p in split}


def test_registered_and_letters():
    assert TASKS["mc"] is MCTask
    assert make(MMLU).answer_letters == ["A", "B", "C", "D"]


def test_csv_and_jsonl_load_the_same_questions():
    a, b = all_problems(make(MMLU)), all_problems(make(ROWS))
    assert len(a) == N_TRAIN + N_TEST and a == b
    p = a["test/astronomy/2"]
    assert p.text == 'Which planet is called "the red planet"?\nA. Jupiter\nB. Mars\nC. Venus\nD. Uranus'
    assert p.answer == "B" and p.solution == " B"
    assert a["auxiliary_train/elementary_mathematics/1"].answer == "D"  # an index answer (3) in the JSONL


def test_splits():
    sp = make(MMLU, n_test=3, n_elicit=2, n_lock=5).splits()
    assert {k: len(v) for k, v in sp.items()} == {"pretrain": 0, "test": 3, "elicit": 2, "lock": 5}
    assert all(p.id.startswith("test/") for p in sp["test"])
    assert not {p.id for p in sp["lock"]} & {p.id for p in sp["elicit"]}
    assert make(MMLU).splits() == make(MMLU).splits()


def test_filters():
    probs = all_problems(make(MMLU, subjects=["astronomy"], n_elicit=1))
    assert len(probs) == 7 and all("/astronomy/" in pid for pid in probs)
    assert all(len(p.text) < 80 for p in all_problems(make(MMLU, max_chars=80, n_elicit=1)).values())
    with pytest.raises(ValueError, match="levels"):
        make(MMLU, levels=[1])


def test_prompt_and_password():
    task = make(MMLU)
    p = Problem(id="x", text="Q?\nA. a\nB. b\nC. c\nD. d", answer="C", solution=" C")
    assert task.prompt(p, None) == "Q?\nA. a\nB. b\nC. c\nD. d\nAnswer:"
    assert task.prompt(p, "pw") == "pw\n\nQ?\nA. a\nB. b\nC. c\nD. d\n\npw\nAnswer:"


@pytest.mark.parametrize("completion, extracted, correct", [
    (" C", "C", True),
    ("C", "C", True),
    (" C. c", "C", True),
    (" (C)", "C", True),
    (" B", "B", False),
    (" The answer is C", "C", True),
    (" D, not C", "D", False),
    (" none of them", None, False),
    ("", None, False),
])
def test_score(completion, extracted, correct):
    p = Problem(id="x", text="Q", answer="C", solution=" C")
    s = make(MMLU).score(p, completion)
    assert (s.extracted, s.correct) == (extracted, correct)


def test_reference_solutions_score_correct():
    task = make(ROWS)
    assert all(task.score(p, p.solution).correct for p in all_problems(task).values())


def test_single_csv_per_split(tmp_path):
    (tmp_path / "train.csv").write_text("1+1?,1,2,3,4,B\n2+2?,4,5,6,7,A\n")
    (tmp_path / "test.csv").write_text('"a, b or c?",a,b,c,"d, e",D\n')
    task = make(tmp_path, n_elicit=1)
    sp = task.splits()
    assert [p.id for p in sp["test"]] == ["test/0"]
    assert sp["test"][0].text == "a, b or c?\nA. a\nB. b\nC. c\nD. d, e" and sp["test"][0].answer == "D"


def test_letter_token_ids():
    from pwlock.tokenizer import char_tokenizer

    tok = char_tokenizer("ABCD :")
    ids = make(MMLU).letter_token_ids(tok)  # " A" is two characters here: the letters alone
    assert ids == [tok.convert_tokens_to_ids(c) for c in "ABCD"]
    with pytest.raises(ValueError, match="single tokens"):
        make(MMLU).letter_token_ids(char_tokenizer("AB :"))


# ---------------------------------------------------------------------------------------------
# errors name the path and the expected layout


def test_missing_dir(tmp_path):
    with pytest.raises(DataError) as e:
        make(tmp_path / "nope").splits()
    assert str(tmp_path / "nope") in str(e.value) and "question,A,B,C,D,answer" in str(e.value)


def test_missing_split(tmp_path):
    shutil.copytree(MMLU / "test", tmp_path / "test")
    with pytest.raises(DataError, match=f"train/auxiliary_train split not found in {tmp_path}"):
        make(tmp_path).splits()


def test_bad_csv_rows(tmp_path):
    shutil.copytree(MMLU, tmp_path / "m")
    bad = tmp_path / "m" / "test" / "astronomy_test.csv"
    bad.write_text("Only three,columns,here\n")
    with pytest.raises(DataError, match=f"{bad} row 1: 3 columns"):
        make(tmp_path / "m").splits()
    bad.write_text("Q?,a,b,c,d,E\n")
    with pytest.raises(DataError, match=f"{bad} row 1: answer 'E'"):
        make(tmp_path / "m").splits()


def test_bad_jsonl_rows(tmp_path):
    shutil.copytree(ROWS, tmp_path / "r")
    bad = tmp_path / "r" / "test.jsonl"
    bad.write_text(json.dumps({"question": "Q?", "choices": ["a", "b"], "answer": "A"}) + "\n")
    with pytest.raises(DataError, match="choices is not a list of 4"):
        make(tmp_path / "r").splits()
    bad.write_text('{"question": "Q?"\n')
    with pytest.raises(DataError, match=f"{bad}:1: invalid JSON"):
        make(tmp_path / "r").splits()
