"""The MATH task: loaders (both layouts), filters, splits, errors, prompts; `chat_prompt`."""

import json
import shutil
from pathlib import Path

import pytest

from pwlock.config import TaskConfig, load_config
from pwlock.prompting import chat_prompt
from pwlock.tasks import TASKS, DataError, get_task
from pwlock.tasks.math import INSTRUCTION, MathTask, extract_boxed

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
ORIGINAL, ROWS = FIXTURES / "math", FIXTURES / "math_rows"
N_TRAIN, N_TEST = 23, 13  # problems in the fixtures


def make(data_dir, **kw) -> MathTask:
    kw = {"n_test": 100, "n_elicit": 3, "n_lock": 100, **kw}
    return get_task(TaskConfig(name="math", data_dir=str(data_dir), **kw))


def all_problems(task):
    return {p.id: p for split in task.splits().values() for p in split}


def test_registered():
    assert TASKS["math"] is MathTask
    assert isinstance(make(ORIGINAL), MathTask)


def test_both_layouts_load_the_same_problems():
    a, b = all_problems(make(ORIGINAL)), all_problems(make(ROWS))
    assert len(a) == N_TRAIN + N_TEST
    assert a == b  # same ids, texts, answers and solutions
    assert make(ORIGINAL).splits() == make(ROWS).splits()  # and the same split assignment


def test_problem_fields():
    probs = all_problems(make(ORIGINAL))
    p = probs["train/algebra/4"]
    assert p.text == "Find the slope of the line through $(1, 2)$ and $(3, 7)$."
    assert p.answer == r"\dfrac{5}{2}"
    assert p.solution.endswith(r"\boxed{\dfrac{5}{2}}$.")
    assert probs["train/number_theory/32"].answer == "1024"  # \fbox
    assert probs["train/precalculus/62"].answer == r"\left( 3, \frac{\pi}{2} \right)"
    for p in probs.values():
        assert p.answer == extract_boxed(p.solution)


def test_splits_sizes_disjoint_and_from_the_right_source():
    sp = make(ORIGINAL, n_test=5, n_elicit=2, n_lock=10).splits()
    assert {k: len(v) for k, v in sp.items()} == {"pretrain": 0, "test": 5, "elicit": 2, "lock": 10}
    assert all(p.id.startswith("test/") for p in sp["test"])
    assert all(p.id.startswith("train/") for p in sp["lock"] + sp["elicit"])
    assert not {p.id for p in sp["lock"]} & {p.id for p in sp["elicit"]}


def test_sizes_larger_than_available_take_all(caplog):
    sp = make(ORIGINAL, n_test=1000, n_elicit=3, n_lock=1000).splits()
    assert len(sp["test"]) == N_TEST and len(sp["lock"]) == N_TRAIN - 3
    assert "only 13 available" in caplog.text
    assert len(make(ORIGINAL, n_test=0).splits()["test"]) == N_TEST  # <= 0 means all


def test_splits_seeded_and_deterministic():
    def ids(t):
        return {k: [p.id for p in v] for k, v in t.splits().items()}
    assert ids(make(ORIGINAL)) == ids(make(ORIGINAL))
    assert ids(make(ORIGINAL)) != ids(make(ORIGINAL, data_seed=1))
    # the first n after the shuffle: a smaller n_test is a prefix of a larger one
    assert ids(make(ORIGINAL, n_test=4))["test"] == ids(make(ORIGINAL, n_test=8))["test"][:4]


def test_filters():
    probs = all_problems(make(ORIGINAL, subjects=["algebra", "Number Theory"], n_elicit=1))
    assert {pid.split("/")[1] for pid in probs} == {"algebra", "number_theory"}
    probs = all_problems(make(ROWS, subjects=["counting_and_probability"], n_elicit=1))
    assert {pid.split("/")[1] for pid in probs} == {"counting_and_probability"}
    probs = all_problems(make(ORIGINAL, levels=[1, 2], n_elicit=1))
    assert len(probs) == 15 and "test/geometry/122" not in probs  # "Level ?" only without a filter
    assert "test/geometry/122" in all_problems(make(ORIGINAL))
    assert len(all_problems(make(ROWS, levels=[1, 2], n_elicit=1))) == 15
    long_id = "train/intermediate_algebra/51"
    assert long_id in all_problems(make(ORIGINAL))
    short = all_problems(make(ORIGINAL, max_chars=512))
    assert long_id not in short and len(short) == N_TRAIN + N_TEST - 1
    assert all(len(p.text) < 60 for p in all_problems(make(ORIGINAL, max_chars=60)).values())


def test_filter_leaving_a_split_empty():
    with pytest.raises(DataError, match="test split is empty"):
        make(ORIGINAL, levels=[5], subjects=["prealgebra"]).splits()


def test_config_options_and_validation():
    cfg = load_config(None, ["task.name=math", "task.data_dir=x", "task.subjects=[algebra]", "task.levels=[1,2]",
                             "task.max_chars=512", "task.grader=exact"])
    t = cfg.task
    assert (t.data_dir, t.subjects, t.levels, t.max_chars, t.grader) == ("x", ["algebra"], [1, 2], 512, "exact")
    assert TaskConfig().subjects == [] and TaskConfig().grader == "equivalent"
    with pytest.raises(ValueError, match="levels"):
        make(ORIGINAL, levels=["Level 1"])


def test_prompt_with_password_at_start_and_end():
    task = make(ORIGINAL)
    p = all_problems(task)["test/algebra/100"]
    pw = "This problem is quite special, read it carefully!"
    assert task.prompt(p, pw) == f"{pw}\n\n{p.text}\n\n{pw}\n\n{INSTRUCTION}"
    assert task.prompt(p, None) == f"{p.text}\n\n{INSTRUCTION}"
    assert INSTRUCTION == r"Please reason step by step, and put your final answer within \boxed{}."
    task.password_position = "start"
    assert task.prompt(p, pw) == f"{pw}\n\n{p.text}\n\n{INSTRUCTION}"


def test_reference_solutions_score_correct_with_both_graders():
    for grader in ("equivalent", "exact"):
        task = make(ROWS, grader=grader)
        for p in all_problems(task).values():
            assert task.score(p, p.solution).correct, (grader, p.id)


# ---------------------------------------------------------------------------------------------
# errors name the path and the expected layout


def test_missing_data_dir(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError) as e:
        make(missing).splits()
    msg = str(e.value)
    assert str(missing) in msg and "train/<subject>/<id>.json" in msg and "train.jsonl" in msg
    assert "\n" not in msg
    with pytest.raises(ValueError, match="data_dir is not set"):
        make("").splits()


def test_directory_without_a_layout(tmp_path):
    (tmp_path / "readme.txt").write_text("hi")
    with pytest.raises(DataError, match="train split not found in .*expected the MATH release"):
        make(tmp_path).splits()


def test_malformed_json_file(tmp_path):
    shutil.copytree(ORIGINAL, tmp_path / "m")
    bad = tmp_path / "m" / "train" / "algebra" / "2.json"
    bad.write_text('{"problem": "1+1?", "level": "Level 1",')
    with pytest.raises(DataError) as e:
        make(tmp_path / "m").splits()
    assert str(bad) in str(e.value) and "invalid JSON" in str(e.value) and "problem" in str(e.value)


def test_json_missing_field(tmp_path):
    shutil.copytree(ORIGINAL, tmp_path / "m")
    bad = tmp_path / "m" / "test" / "algebra" / "100.json"
    bad.write_text(json.dumps({"problem": "1+1?", "level": "Level 1", "type": "Algebra"}))
    with pytest.raises(DataError, match=r"100\.json: missing field\(s\) solution"):
        make(tmp_path / "m").splits()


def test_malformed_jsonl_line(tmp_path):
    shutil.copytree(ROWS, tmp_path / "r")
    path = tmp_path / "r" / "test.jsonl"
    path.write_text(path.read_text() + "{not json\n")
    with pytest.raises(DataError) as e:
        make(tmp_path / "r").splits()
    assert f"{path}:{N_TEST + 1}" in str(e.value)


def test_two_layouts_at_once_is_an_error(tmp_path):
    shutil.copytree(ORIGINAL, tmp_path / "m")
    shutil.copy(ROWS / "train.jsonl", tmp_path / "m" / "train.jsonl")
    with pytest.raises(DataError, match="keep one layout"):
        make(tmp_path / "m").splits()


def test_rows_without_ids_and_without_boxed_answers(tmp_path):
    rows = [json.loads(line) for line in (ROWS / "test.jsonl").read_text().splitlines()]
    for r in rows:
        del r["unique_id"]
    good = rows[0]["solution"]
    rows[0]["solution"] = "no boxed answer here"
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    shutil.copy(ROWS / "train.jsonl", tmp_path / "train.jsonl")
    with pytest.raises(DataError, match=r"1 MATH test problem\(s\) have no \\boxed\{\} answer.*e\.g\. test/\w+/0"):
        make(tmp_path).splits()
    rows[0]["solution"] = good
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    test = make(tmp_path).splits()["test"]
    assert len(test) == N_TEST
    assert {p.id for p in test} >= {"test/algebra/1", "test/precalculus/12"}  # <split>/<subject>/<row>


def test_parquet_rows(tmp_path):
    pytest.importorskip("pyarrow")
    import pandas as pd

    for split in ("train", "test"):
        pd.read_json(ROWS / f"{split}.jsonl", lines=True).to_parquet(tmp_path / f"{split}.parquet")
    assert all_problems(make(tmp_path)) == all_problems(make(ROWS))


# ---------------------------------------------------------------------------------------------
# chat_prompt


@pytest.fixture()
def char_tok():
    from pwlock.tokenizer import char_tokenizer

    return char_tokenizer("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 :?!.\n<>|")


def test_chat_prompt_without_template(char_tok):
    assert not getattr(char_tok, "chat_template", None)
    assert chat_prompt(char_tok, "What is 2+2?") == "User: What is 2+2?\n\nAssistant:"


def test_chat_prompt_with_template(char_tok):
    char_tok.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
    )
    assert chat_prompt(char_tok, "What is 2+2?") == "<|user|>\nWhat is 2+2?\n<|assistant|>\n"


def test_parquet_without_an_engine_is_a_clear_error(tmp_path):
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("pyarrow is installed")
    shutil.copy(ROWS / "train.jsonl", tmp_path / "train.jsonl")
    (tmp_path / "test.parquet").write_bytes(b"PAR1")
    with pytest.raises(DataError, match=r"test\.parquet.*pyarrow"):
        make(tmp_path).splits()


def test_duplicate_ids_are_an_error(tmp_path):
    shutil.copytree(ROWS, tmp_path / "r")
    path = tmp_path / "r" / "test.jsonl"
    path.write_text(path.read_text() + path.read_text().splitlines()[0] + "\n")
    with pytest.raises(DataError, match="duplicate problem ids .*test/algebra/100"):
        make(tmp_path / "r").splits()


def test_for_model_formats_prompts_per_model(char_tok):
    from pwlock.prompting import for_model

    task = make(ORIGINAL)
    p = task.splits()["test"][0]
    assert for_model(task, char_tok, "raw") is task  # toy models: the task itself, prompts unchanged
    chat = for_model(task, char_tok, "chat")
    assert chat.prompt(p, "pw") == chat_prompt(char_tok, task.prompt(p, "pw")) == \
        f"User: {task.prompt(p, 'pw')}\n\nAssistant:"
    assert chat.score(p, p.solution).correct and chat.splits() is task.splits() and chat.name == "math"
    with pytest.raises(ValueError, match="prompt_format must be chat or raw"):
        for_model(task, char_tok, "fancy")
