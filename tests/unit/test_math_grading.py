r"""MATH answer extraction (`extract_boxed`), normalization and equivalence (`is_equivalent`)."""

import sys
import threading

import pytest

import pwlock.tasks.math as mmath
from pwlock.config import TaskConfig
from pwlock.tasks.base import Problem
from pwlock.tasks.math import MathTask, equivalence, extract_boxed, is_equivalent, normalize_answer

# ---------------------------------------------------------------------------------------------
# extraction


@pytest.mark.parametrize("text, expected", [
    (r"so the answer is $\boxed{5}$.", "5"),
    (r"$\boxed{\frac{1}{2}}$", r"\frac{1}{2}"),
    (r"$\boxed{\begin{pmatrix} 3 \\ 7 \end{pmatrix}}$", r"\begin{pmatrix} 3 \\ 7 \end{pmatrix}"),
    (r"nested: \boxed{\left( 3, \frac{\pi}{2} \right)}.", r"\left( 3, \frac{\pi}{2} \right)"),
    (r"set: \boxed{\{1, 2\}}", r"\{1, 2\}"),
    (r"first \boxed{1}, then \boxed{2}, finally \boxed{3}", "3"),
    (r"The answer is $\boxed 5$.", "5"),
    (r"The answer is \boxed 42", "42"),
    (r"$2^{10} = \fbox{1024}$", "1024"),
    (r"\boxed{1} and then \fbox{2}", "2"),
    (r"\boxed {7}", "7"),
    (r"\boxed{}", ""),
    ("no box here, the answer is 5", None),
    ("", None),
    (r"truncated \boxed{\frac{1}{2", None),
    (r"\boxedx{3}", None),
])
def test_extract_boxed(text, expected):
    assert extract_boxed(text) == expected


# ---------------------------------------------------------------------------------------------
# normalization alone (the MATH paper's strip_string rules)


@pytest.mark.parametrize("raw, expected", [
    (r"\dfrac{3}{4}", r"\frac{3}{4}"),
    (r"\tfrac34", r"\frac{3}{4}"),
    (r"\frac12", r"\frac{1}{2}"),
    (r"\frac1{2}", r"\frac{1}{2}"),
    (r"\frac{\sqrt3}2", r"\frac{\sqrt{3}}{2}"),
    (r"\left( 3, \frac{\pi}{2} \right)", r"(3,\frac{\pi}{2})"),
    (r"10\%", "10"),
    (r"\$5", "5"),
    (r"5\text{ cm}", "5"),
    (r"24\text{ cm}^2", "24"),
    (r"20\mbox{ inches}", "20"),
    (r"\text{Tuesday}", "Tuesday"),
    (r"120^\circ", "120"),
    (r"120^{\circ}", "120"),
    (".25", "0.25"),
    ("-.25", "-0.25"),
    (r"\frac{.5}{2}", r"\frac{0.5}{2}"),
    (".5", r"\frac{1}{2}"),
    ("x = 3", "3"),
    ("k=3", "3"),
    ("0.5", r"\frac{1}{2}"),
    ("3/4", r"\frac{3}{4}"),
    ("-3/4", r"-\frac{3}{4}"),
    (r"1\!000", "1000"),
    (r"1\,000", "1000"),
    ("5.", "5"),
    (r"\left\{ 1, 2 \right\}", r"\{1,2\}"),
])
def test_normalize_answer(raw, expected):
    assert normalize_answer(raw) == expected


def test_normalization_keeps_different_answers_apart():
    for a, b in [("2", "3"), (r"\frac{1}{2}", r"\frac{1}{3}"), ("(1,2)", "(2,1)"), ("x+y=3", "3"),
                 (r"\text{Monday}", r"\text{Tuesday}"), ("12", "1/2")]:
        assert normalize_answer(a) != normalize_answer(b), (a, b)


# ---------------------------------------------------------------------------------------------
# equivalence (normalization + math-verify)

EQUIVALENT = [
    (r"\frac{1}{2}", "0.5"),
    (r"\dfrac{3}{4}", r"\frac34"),
    (r"10\%", "10"),
    (r"\$5", "5"),
    (r"5\text{ cm}", "5"),
    (".5", "0.5"),
    ("x=3", "3"),
    (r"\sqrt{2}/2", r"\frac{\sqrt2}{2}"),
    (r"\frac{\sqrt{2}}{2}", r"\frac{1}{\sqrt{2}}"),
    (r"120^\circ", "120"),
    (r"\tfrac{1}{2}", r"\frac{1}{2}"),
    (r"\left( 3, \frac{\pi}{2} \right)", r"(3,\frac{\pi}{2})"),
    (r"3\sqrt{2}", r"\sqrt{18}"),
    ("0.75", r"\frac{3}{4}"),
    ("1000", "1,000"),
    ("-2, 2", "2,-2"),
    (r"x^2+2x+1", "(x+1)^2"),
    (r"20\text{ inches}", "20"),
    (r"\begin{pmatrix} 3 \\ 7 \end{pmatrix}", r"\begin{pmatrix}3\\7\end{pmatrix}"),
    (r"8\pi", r"8 \pi"),
]

DIFFERENT = [
    ("2", "3"),
    (r"\frac{1}{2}", r"\frac{1}{3}"),
    ("(1,2)", "(2,1)"),
    ("[1,2)", "(1,2]"),
    ("2", "2x"),
    ("0.333", r"\frac{1}{3}"),
    (r"\pi", "3.14159"),
    (r"\text{Monday}", r"\text{Tuesday}"),
    (r"8\pi", "8"),
    ("15", "1.5"),
    (r"\sqrt{2}", "2"),
    ("12", r"\frac{1}{2}"),
]


@pytest.mark.parametrize("a, b", EQUIVALENT)
def test_equivalent_both_ways(a, b):
    assert is_equivalent(a, b), (a, b)
    assert is_equivalent(b, a), (b, a)


@pytest.mark.parametrize("a, b", DIFFERENT)
def test_different_both_ways(a, b):
    assert not is_equivalent(a, b), (a, b)
    assert not is_equivalent(b, a), (b, a)


def test_missing_or_empty_answers_are_never_equivalent():
    assert not is_equivalent(None, "5")
    assert not is_equivalent("", "")
    assert not is_equivalent("  ", "5")


def test_equivalence_says_how():
    assert equivalence("5", "5") == (True, "identical")
    assert equivalence(r"\dfrac{3}{4}", r"\frac34") == (True, "normalized")
    assert equivalence(r"\sqrt{2}/2", r"\frac{\sqrt2}{2}") == (True, "math-verify")
    assert equivalence(r"\sqrt{2}/2", r"\frac{\sqrt2}{2}", symbolic=False) == (False, "different")
    assert equivalence("2", "3") == (False, "different")


def test_symbolic_check_works_off_the_main_thread():
    out = []
    t = threading.Thread(target=lambda: out.append(is_equivalent(r"\sqrt{2}/2", r"\frac{\sqrt2}{2}")))
    t.start()
    t.join(timeout=30)
    assert out == [True]


def test_without_math_verify_normalization_only_and_one_warning(monkeypatch):
    monkeypatch.setattr(mmath, "_MV", mmath._UNSET)
    monkeypatch.setitem(sys.modules, "math_verify", None)  # makes `import math_verify` fail
    mmath._mv_parse.cache_clear()
    with pytest.warns(UserWarning, match="math-verify is not installed"):
        assert not is_equivalent(r"\sqrt{2}/2", r"\frac{\sqrt2}{2}")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second warning would raise
        assert is_equivalent(r"\dfrac{3}{4}", r"\frac34")
        assert is_equivalent(r"\frac{1}{2}", "0.5")  # the 0.5 rule of the original grader
        assert not is_equivalent("2", "3")
    mmath._mv_parse.cache_clear()


# ---------------------------------------------------------------------------------------------
# the task's scorer: equivalent vs exact


def _task(grader):
    return MathTask(TaskConfig(name="math", data_dir="unused", grader=grader))


def test_score_equivalent_vs_exact():
    p = Problem(id="t/x/1", text="?", answer=r"\frac{1}{2}", solution=r"so $\boxed{\frac{1}{2}}$")
    completion = r"Half of it: $\boxed{\dfrac12}$."
    eq, ex = _task("equivalent").score(p, completion), _task("exact").score(p, completion)
    assert eq.correct and eq.extracted == r"\dfrac12" and "equivalent" in eq.explanation
    assert not ex.correct and ex.extracted == r"\dfrac12" and r"\frac{1}{2}" in ex.explanation
    assert _task("exact").score(p, r"\boxed{ \frac{1}{2} }").correct  # surrounding spaces ignored
    assert _task("exact").score(p, p.solution).correct


def test_score_without_box():
    p = Problem(id="t/x/1", text="?", answer="5", solution=r"$\boxed{5}$")
    s = _task("equivalent").score(p, "The answer is 5.")
    assert s.extracted is None and not s.correct and "boxed" in s.explanation
    s = _task("equivalent").score(p, r"maybe \boxed{4}? no: \boxed{5}")
    assert s.correct and s.extracted == "5"


def test_bad_grader_name():
    with pytest.raises(ValueError, match="grader"):
        _task("fuzzy")
