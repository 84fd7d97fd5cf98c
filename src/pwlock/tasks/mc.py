"""`mc`: four-choice multiple-choice questions in the MMLU layout, read from a local directory.

Data (`task.data_dir`), for each source split (`train` and `test`; MMLU's name
`auxiliary_train` is accepted for `train`), exactly one of:

- `<dir>/<split>/*.csv`: MMLU's headerless CSV files, rows `question,A,B,C,D,answer` (answer a
  letter A-D); the subject is the file name without a `_<split>` suffix
  (`abstract_algebra_test.csv` -> `abstract_algebra`);
- `<dir>/<split>.csv`: one such headerless CSV file;
- `<dir>/<split>.jsonl`: rows with `question`, `choices` (a list of 4 strings) and `answer` (a
  letter A-D or an index 0-3), optionally `subject` and `id`.

Problem ids: `<split>/<subject>/<row number>` (`<split>/<row number>` without a subject), or the
row's `id`. Filters: `task.subjects` (empty = all), `task.max_chars` (drop questions whose text,
choices included, has `max_chars` characters or more, when > 0). `task.levels` does not apply.

Splits as for MATH (`pwlock.tasks.data.assign_splits`): elicit then lock from the train split,
test = the first `n_test` of the shuffled test split (all when `n_test` is larger or <= 0),
pretrain empty.

Prompt: the question, the choices as `A. ...` lines, and `Answer:`; the password goes at the
start and the end of the question block with blank lines around it. The reference completion
is ` X` (a space and the letter); a completion is scored by its first standalone letter A-D.
`answer_letters` (and `letter_token_ids`) name the tokens whose probabilities soft-label
locking compares.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from pwlock.tasks.base import Problem, Score, Task
from pwlock.tasks.data import (
    DataError,
    assign_splits,
    data_dir,
    read_jsonl_rows,
    require,
    subject_key,
)

LETTERS = ["A", "B", "C", "D"]
TRAIN_NAMES = ("train", "auxiliary_train")
LAYOUT = (
    "for each split (train or auxiliary_train, and test) one of <dir>/<split>/*.csv or <dir>/<split>.csv "
    "(headerless MMLU rows question,A,B,C,D,answer) or <dir>/<split>.jsonl "
    "(rows with question, choices (4), answer (A-D or 0-3))"
)
_CSV_ROW = "a headerless MMLU row question,A,B,C,D,answer with answer in A-D"
_JSON_ROW = "a JSON object with question, choices (a list of 4 strings), answer (A-D or 0-3)"

_FIRST_LETTER = re.compile(r"(?<![A-Za-z])([ABCD])(?![A-Za-z])")


def format_question(question: str, choices: list[str]) -> str:
    return question.strip() + "".join(f"\n{letter}. {str(c).strip()}" for letter, c in zip(LETTERS, choices))


def _answer_letter(value, where: str, expected: str) -> str:
    if isinstance(value, bool):
        value = None
    if isinstance(value, int) and 0 <= value < 4:
        return LETTERS[value]
    s = str(value).strip() if value is not None else ""
    if s.upper() in LETTERS:
        return s.upper()
    if s in ("0", "1", "2", "3"):
        return LETTERS[int(s)]
    raise DataError(f"{where}: answer {value!r} is not a letter A-D or an index 0-3; expected {expected}")


def _read_csv(path: Path, split: str, subject: str) -> list[tuple[str, str, str, str]]:
    """(id, subject, text, letter) of each row of a headerless MMLU CSV file."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"cannot read {path}: {e}; expected {_CSV_ROW}") from None
    out = []
    for i, row in enumerate(rows):
        if not row:
            continue
        where = f"{path} row {i + 1}"
        if len(row) != 6:
            raise DataError(f"{where}: {len(row)} columns, expected {_CSV_ROW}")
        letter = _answer_letter(row[5], where, _CSV_ROW)
        pid = f"{split}/{subject}/{i}" if subject else f"{split}/{i}"
        out.append((pid, subject, format_question(row[0], row[1:5]), letter))
    if not out:
        raise DataError(f"no questions in {path}; expected {_CSV_ROW}")
    return out


def _read_jsonl(path: Path, split: str) -> list[tuple[str, str, str, str]]:
    out = []
    for i, row in enumerate(read_jsonl_rows(path, _JSON_ROW)):
        where = f"{path} row {i + 1}"
        require(row, ["question", "choices", "answer"], where, _JSON_ROW)
        choices = row["choices"]
        if not isinstance(choices, list) or len(choices) != 4:
            raise DataError(f"{where}: choices is not a list of 4; expected {_JSON_ROW}")
        letter = _answer_letter(row["answer"], where, _JSON_ROW)
        subject = subject_key(row["subject"]) if row.get("subject") else ""
        pid = str(row["id"]) if row.get("id") else (f"{split}/{subject}/{i}" if subject else f"{split}/{i}")
        out.append((pid, subject, format_question(str(row["question"]), choices), letter))
    if not out:
        raise DataError(f"no questions in {path}; expected {_JSON_ROW}")
    return out


def load_split(root: Path, names: tuple[str, ...]) -> list[tuple[str, str, str, str]]:
    """(id, subject, text, letter) of the source split stored under the first of `names` found."""
    found = []
    for name in names:
        found += [(name, p) for p in (root / name, root / f"{name}.csv", root / f"{name}.jsonl") if p.exists()]
    if not found:
        raise DataError(f"{'/'.join(names)} split not found in {root}; expected {LAYOUT}")
    if len(found) > 1:
        raise DataError(f"{root}: both {found[0][1].name} and {found[1][1].name} exist; keep one ({LAYOUT})")
    split, path = found[0]
    if path.is_dir():
        files = sorted(path.glob("*.csv"))
        if not files:
            raise DataError(f"no .csv files in {path}; expected {LAYOUT}")
        out = []
        for f in files:
            out += _read_csv(f, split, subject_key(re.sub(f"_{split}$", "", f.stem)))
        return out
    return _read_csv(path, split, "") if path.suffix == ".csv" else _read_jsonl(path, split)


class MCTask(Task):
    name = "mc"
    password_sep = "\n\n"
    answer_letters = LETTERS

    def __init__(self, cfg) -> None:
        self.cfg = cfg
        if cfg.levels:
            raise ValueError(f"task.levels does not apply to the mc task (got {list(cfg.levels)!r})")
        if not all(isinstance(s, str) for s in cfg.subjects):
            raise ValueError(f"task.subjects must be a list of names, got {list(cfg.subjects)!r}")
        self.subjects = {subject_key(s) for s in cfg.subjects}
        self._splits: dict[str, list[Problem]] | None = None

    def format_problem(self, problem: Problem) -> str:
        return problem.text

    def prompt_suffix(self) -> str:
        return "\nAnswer:"

    def splits(self) -> dict[str, list[Problem]]:
        if self._splits is None:
            root = data_dir(self.cfg, LAYOUT)
            self._splits = assign_splits(
                self.name, self.load(root, TRAIN_NAMES), self.load(root, ("test",)), self.cfg
            )
        return self._splits

    def load(self, root: Path, names: tuple[str, ...]) -> list[Problem]:
        out = []
        for pid, subject, text, letter in load_split(Path(root), names):
            if self.subjects and subject not in self.subjects:
                continue
            if self.cfg.max_chars > 0 and len(text) >= self.cfg.max_chars:
                continue
            out.append(Problem(id=pid, text=text, answer=letter, solution=f" {letter}"))
        return out

    def score(self, problem: Problem, completion: str) -> Score:
        m = _FIRST_LETTER.search(completion or "")
        if m is None:
            return Score(None, False, "no answer letter A-D")
        got = m.group(1)
        ok = got == problem.answer
        return Score(got, ok, "correct letter" if ok else f"expected {problem.answer}")

    def letter_token_ids(self, tokenizer) -> list[int]:
        """Token ids of the answer letters as the model would write them after `Answer:`.

        ` A` ... ` D` when each is one (known) token, as in most BPE vocabularies, else `A` ... `D`;
        a ValueError when neither form is one token per letter.
        """
        return self.answer_tokens(tokenizer)[1]

    def answer_tokens(self, tokenizer) -> tuple[str, list[int]]:
        """(prefix, ids): the answer letters are the tokens `ids` of `prefix + letter` (prefix " "
        or ""); with prefix "" the answer ` X` is a space token, then the letter."""
        for prefix in (" ", ""):
            encs = [tokenizer.encode(prefix + letter, add_special_tokens=False) for letter in self.answer_letters]
            unk = getattr(tokenizer, "unk_token_id", None)
            if all(len(e) == 1 and (unk is None or e[0] != unk) for e in encs):
                return prefix, [e[0] for e in encs]
        raise ValueError(f"the answer letters {self.answer_letters} are not single tokens of this tokenizer")
