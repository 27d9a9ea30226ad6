"""Answer checking: gold first, prediction second; time-bounded from any thread."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from lemagen.math.grading import Grader, _word_answer, checker_info, normalize_latex
from lemagen.records.problems import ProblemReader
from tests.conftest import DATA, load_jsonl

GSM8K = [
    pytest.param("72", "72", "correct", id="equal"),
    pytest.param("72", "72.0", "correct", id="trailing-zero"),
    pytest.param("1250", "1,250", "correct", id="thousands"),
    pytest.param("0.75", "3/4", "correct", id="fraction-vs-decimal"),
    pytest.param("10", "$10.", "correct", id="currency-period"),
    pytest.param("72", "73", "wrong", id="off-by-one"),
    pytest.param("0.3", "0.30000001", "wrong", id="exact-not-approximate"),
    # numbers read as GSM8K numbers, not as LaTeX (Math-Verify calls the first wrong and the
    # second correct)
    pytest.param("18", "18 dollars", "correct", id="unit-word"),
    pytest.param("1000", "1 000", "wrong", id="space-is-not-a-thousands-separator"),
]


@pytest.mark.parametrize(("gold", "pred", "verdict"), GSM8K)
def test_gsm8k_compare(grader: Grader, gold: str, pred: str, verdict: str) -> None:
    assert grader.compare("gsm8k", gold, pred) == verdict


MATH = [
    pytest.param("\\frac{1}{2}", "0.5", "correct", id="fraction-decimal"),
    pytest.param("\\frac{1}{2}", "1/2", "correct", id="slash-fraction"),
    pytest.param("\\dfrac{3}{56}", "\\frac{3}{56}", "correct", id="dfrac"),
    pytest.param("3\\sqrt{13}", "\\sqrt{117}", "correct", id="radical"),
    pytest.param("11\\sqrt2", "11\\sqrt{2}", "correct", id="radical-no-braces"),
    pytest.param("2\\pi", "\\pi", "wrong", id="pi-multiple"),
    pytest.param("\\pi", "3.14159", "wrong", id="pi-not-decimal"),
    pytest.param("[2,5)", "[2,5)", "correct", id="interval"),
    pytest.param("[2,5)", "(2,5)", "wrong", id="interval-open-closed"),
    pytest.param("(-\\infty, 2]", "(-\\infty,2]", "correct", id="interval-infinity"),
    pytest.param("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\pi/2)", "correct", id="tuple-polar"),
    pytest.param("\\{1,2\\}", "\\{2,1\\}", "correct", id="set-order"),
    pytest.param("1,-2", "-2,1", "correct", id="solution-list"),
    pytest.param(
        "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}",
        "\\begin{pmatrix}1\\\\2\\end{pmatrix}",
        "correct",
        id="matrix",
    ),
    pytest.param(
        "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}",
        "\\begin{pmatrix}1\\\\3\\end{pmatrix}",
        "wrong",
        id="matrix-wrong",
    ),
    pytest.param("5", "x=5", "correct", id="equation-pred"),
    pytest.param("x=5", "5", "correct", id="equation-gold"),
    pytest.param("p - q", "-q+p", "correct", id="expression-order"),
    pytest.param("6 - 5i", "6-5i", "correct", id="complex"),
    pytest.param("90^\\circ", "90", "correct", id="degrees"),
    pytest.param("10", "10\\%", "correct", id="percent"),
    pytest.param("\\text{Evelyn}", "Evelyn", "correct", id="text-answer"),
    pytest.param("\\text{Evelyn}", "Eveyln", "wrong", id="text-anagram-is-wrong"),
    pytest.param("\\text{(C)}", "C", "correct", id="choice-letter"),
    pytest.param("(even)", "even", "correct", id="word-in-parentheses"),
    pytest.param("52_8", "52", "correct", id="base-subscript"),
    pytest.param("27", "28", "wrong", id="integer-wrong"),
    pytest.param("0.5", "0.50", "correct", id="plain-numbers-compare-as-numbers"),
]


@pytest.mark.parametrize(("gold", "pred", "verdict"), MATH)
def test_math_compare(grader: Grader, gold: str, pred: str, verdict: str) -> None:
    assert grader.compare("math", gold, pred) == verdict


@pytest.mark.parametrize(
    ("answer", "normalized"),
    [
        pytest.param("\\dfrac{1}{2}", "\\frac{1}{2}", id="dfrac"),
        pytest.param("\\tfrac{1}{2}", "\\frac{1}{2}", id="tfrac"),
        pytest.param("\\$5", "5", id="latex-dollar"),
        pytest.param("$5$", "5", id="math-dollars"),
        pytest.param("5\\%", "5", id="latex-percent"),
        pytest.param("5%", "5", id="percent"),
        pytest.param("X.", "X", id="trailing-full-stop"),
        pytest.param("\\text{\\textbf{\\mathrm{A}}}", "A", id="three-nested-wrappers"),
        pytest.param("\\left( 1, 2 \\right)", "(1,2)", id="spacing"),
    ],
)
def test_normalize_latex(answer: str, normalized: str) -> None:
    assert normalize_latex(answer) == normalized


def test_word_answers_in_parentheses() -> None:
    assert _word_answer("(even)") == "even"
    assert _word_answer("(C)") is None  # one letter: left to the other checks
    assert _word_answer("2x") is None


# Real answer endings, graded: (gold, text, verdict, extracted_by).
GRADED = [
    pytest.param(
        "34", "Final Answer: The largest $n$ is 34.", "correct", "label", id="final-prose"
    ),
    pytest.param(
        "\\frac{1}{3}",
        "Each is equally likely, so\n$\\frac13$",
        "correct",
        "last_expression",
        id="bare-frac-at-end",
    ),
    pytest.param("5", "Adding the two:\n**Answer:** 5", "correct", "label", id="bold-answer"),
    pytest.param("1/3", "Answer: x = 1/3", "correct", "label", id="equation-vs-fraction"),
    pytest.param(
        "\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}",
        "The product is\n\\[\n\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}.\n\\]",
        "correct",
        "last_expression",
        id="display-matrix",
    ),
    pytest.param("18.90", "The answer is $\\$18.90$.", "correct", "answer_is", id="escaped-dollar"),
    pytest.param("\\$18.90", "The answer is \\$18.9.", "correct", "answer_is", id="currency"),
    pytest.param("18.90", "The answer is $\\$19.80$.", "wrong", "answer_is", id="currency-wrong"),
    pytest.param(
        "(-\\infty,-2)\\cup(3,\\infty)",
        "The answer is $x<-2$ or $x>3$.",
        "correct",
        "answer_is",
        id="union-as-inequalities",
    ),
    pytest.param(
        "(-\\infty,-2)\\cup(3,\\infty)",
        "The answer is $x<-2$.",
        "wrong",
        "answer_is",
        id="half-a-union",
    ),
    pytest.param("(-\\infty,3]", "The answer is $x \\le 3$.", "correct", "answer_is", id="le"),
    pytest.param("(-\\infty,3]", "The answer is $x < 3$.", "wrong", "answer_is", id="lt-not-le"),
    pytest.param("(-1,4]", "So $-1 < x \\leq 4$.", "correct", "last_expression", id="chain"),
    pytest.param(
        "x \\ge 2",
        "The answer is $[2, \\infty)$.",
        "correct",
        "answer_is",
        id="interval-vs-inequality-gold",
    ),
    pytest.param(
        "2, -3", "The answer is $x=2$ or $x=-3$.", "correct", "answer_is", id="several-roots"
    ),
    pytest.param("2, -3", "The answer is $x=2$.", "wrong", "answer_is", id="one-root-of-two"),
    pytest.param(
        "12",
        "Then $n = 12$. I am not sure how to go on from here.",
        "no_answer",
        None,
        id="not-the-conclusion",
    ),
]


@pytest.mark.parametrize(("gold", "text", "verdict", "how"), GRADED)
def test_grade_answer_text(grader: Grader, gold: str, text: str, verdict: str, how: str) -> None:
    result = grader.grade("math", gold, text)
    assert (result.verdict, result.extracted_by) == (verdict, how)


# Unmarked answers, where Math-Verify reads the text right: lemagen agrees with it.
UNMARKED = [
    pytest.param("\\frac{1}{3}", "Each is equally likely, so the chance is $\\frac13$.", id="frac"),
    pytest.param(
        "\\frac{1}{3}", "Each is equally likely, so the chance is $\\frac12$.", id="frac-no"
    ),
    pytest.param("34", "Checking every case, the largest is $n = 34$.", id="equation"),
    pytest.param("7", "There are 7 ways.", id="number"),
    pytest.param("6", "There are 7 ways.", id="number-no"),
    pytest.param("2, -3", "So the roots are $x=2$ and $x=-3$.", id="roots"),
    pytest.param("\\sqrt{2}", "The side is $\\sqrt 2$.", id="sqrt"),
    pytest.param("2\\sqrt{2}", "The side is $\\sqrt 2$.", id="sqrt-no"),
    pytest.param(
        "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}",
        "The vector is\n$$\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}$$",
        id="matrix",
    ),
]


@pytest.mark.parametrize(("gold", "text"), UNMARKED)
def test_unmarked_answers_agree_with_math_verify(grader: Grader, gold: str, text: str) -> None:
    from math_verify import parse, verify

    expected = "correct" if verify(parse(f"${gold}$"), parse(text)) else "wrong"
    result = grader.grade("math", gold, text)
    assert result.extracted_by in ("last_expression", "last_number")
    assert result.verdict == expected


def test_grade_no_answer(grader: Grader) -> None:
    result = grader.grade("math", "5", "I am not sure.")
    assert (result.pred, result.verdict) == (None, "no_answer")


# Checks that must finish get a limit no loaded machine comes near; checks that must run out
# of time (a pathological answer never finishes) get a short one: `Grader.timeout` is read at
# each check.
ROOMY = 300.0


def test_pathological_answer_times_out_quickly() -> None:
    with Grader(timeout=1.0) as grader:
        start = time.monotonic()
        verdict = grader.compare("math", "5", "9^{9^{9^{9}}}")
        elapsed = time.monotonic() - start
        # A far backstop: the limit is 1 s; a check that is not stopped runs for ever.
        assert verdict == "timeout"
        assert elapsed < 120
        # The worker was replaced: the next check still works.
        grader.timeout = ROOMY
        assert grader.compare("math", "\\frac{1}{2}", "0.5") == "correct"


def test_a_timed_out_check_keeps_the_worker_warm() -> None:
    """A timeout kills only the forked child that ran the check: the worker process (with
    Math-Verify imported) stays, so the next check pays no restart, and no checker is left
    running after the grader closes."""
    with Grader(timeout=ROOMY) as grader:
        assert grader.compare("math", "\\frac{1}{2}", "0.5") == "correct"
        worker = grader._worker._proc
        assert worker is not None
        children = _children(worker.pid)
        assert len(children) == 1
        grader.timeout = 0.5
        for power in (9, 10, 11):
            assert grader.compare("math", "5", f"9^{{9^{{9^{{{power}}}}}}}") == "timeout"
            assert grader._worker._proc is worker  # the same warm worker
            assert worker.poll() is None
        new_children = _children(worker.pid)
        assert len(new_children) == 1
        assert new_children != children  # the stuck checker was killed and replaced
        grader.timeout = ROOMY
        assert grader.compare("math", "\\sqrt{8}", "2\\sqrt{2}") == "correct"
    assert worker.poll() is not None
    assert not any(_alive(pid) for pid in new_children)


def test_a_worker_that_stops_answering_is_replaced() -> None:
    """A worker that does not answer at all (not just its checker) makes the check a timeout
    once the grace period is over and is replaced; closing does not wait on a stuck worker."""
    with Grader(timeout=ROOMY) as grader:
        assert grader.compare("math", "\\frac{1}{2}", "0.5") == "correct"
        stuck = grader._worker._proc
        assert stuck is not None
        os.kill(stuck.pid, signal.SIGSTOP)
        grader.timeout = 0.5  # and the grace period
        assert grader.compare("math", "\\sqrt{8}", "2\\sqrt{2}") == "timeout"
        assert stuck.poll() is not None  # killed
        grader.timeout = ROOMY
        assert grader.compare("math", "\\sqrt{12}", "2\\sqrt{3}") == "correct"  # a new worker
        last = grader._worker._proc
        assert last is not None
        assert last is not stuck
        os.kill(last.pid, signal.SIGSTOP)
    assert last.poll() is not None  # closed by a kill, not waited for


def _children(pid: int) -> set[int]:
    path = f"/proc/{pid}/task/{pid}/children"
    with open(path, encoding="ascii") as handle:
        return {int(p) for p in handle.read().split()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_time_limit_holds_off_the_main_thread() -> None:
    """Math-Verify's own signal timeout raises off the main thread; ours does not."""
    results: list[str] = []
    with Grader(timeout=1.0) as grader:

        def work() -> None:
            results.append(grader.compare("math", "5", "9^{9^{9^{9}}}"))
            grader.timeout = ROOMY
            results.append(grader.compare("math", "\\sqrt{8}", "2\\sqrt{2}"))

        thread = threading.Thread(target=work)
        thread.start()
        thread.join(timeout=ROOMY)
    assert results == ["timeout", "correct"]


def test_real_math500_boxed_answers_agree_with_prm800k_gold(grader: Grader) -> None:
    """Real MATH-500 rows: the solution's \\boxed{} answer, graded against the PRM800K answer
    line, is correct for every row; against a different row's (inequivalent) answer, wrong."""
    reader = ProblemReader()
    rows = load_jsonl(DATA / "math500_slice.jsonl")
    golds = [reader.read(row, f"f:{i}").gold for i, row in enumerate(rows, 1)]
    bodies = [row["answer"].rsplit("The answer is:", 1)[0] for row in rows]
    for gold, body in zip(golds, bodies, strict=True):
        if "\\boxed" in body:
            assert grader.grade("math", gold, body).verdict == "correct", (gold, body[-80:])
    for i, body in enumerate(bodies):
        other = golds[(i + 1) % len(golds)]
        if "\\boxed" in body and grader.compare("math", other, golds[i]) == "wrong":
            assert grader.grade("math", other, body).verdict == "wrong", (other, body[-80:])


def test_checker_provenance() -> None:
    assert checker_info("math")["name"] == "math-verify"
    assert checker_info("math")["version"][0].isdigit()
    assert checker_info("gsm8k")["name"] == "lemagen-numeric"
