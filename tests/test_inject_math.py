"""Offline mistakes in MATH solutions: the arithmetic in their LaTeX (tables of real MATH-500
solution text), and `inject` on real MATH-500 rows (tests/data/math500_slice.jsonl)."""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from lemagen.math.answers import find_boxed
from lemagen.math.grading import Grader
from lemagen.math.latex_arith import find_parts, latex_value, render
from lemagen.mistakes.gsm8k import slips
from lemagen.mistakes.latex import analyse, math_steps
from tests.conftest import DATA, load_jsonl, records, run, write_jsonl

SLICE = DATA / "math500_slice.jsonl"
F = Fraction


def values(text: str) -> list[list[Fraction | None]]:
    return [[p.value if p else None for p in chain] for chain in find_parts(text, 0, 0)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            r"$f(-2)+f(-1)+f(0)=\frac{3(-2)-2}{-2-2}+\frac{3(-1)-2}{-1-2}+\frac{3(0)-2}{0-2}"
            r"=\frac{-8}{-4}+\frac{-5}{-3}+\frac{-2}{-2}=2+\frac{5}{3}+1=\boxed{\frac{14}{3}}$",
            [[None, F(14, 3), F(14, 3), F(14, 3), F(14, 3)]],
            id="chain-of-fractions-boxed",
        ),
        pytest.param(r"In total, there are $3\times 3=9$ possibilities.", [[9, 9]], id="times"),
        pytest.param(r"So, we have $2\cdot 24 = 48$ seatings.", [[48, 48]], id="cdot"),
        pytest.param(r"$3/20=15/100 = \boxed{0.15}$", [[F(3, 20)] * 3], id="slash-decimal"),
        pytest.param(
            "we get \\begin{align*}\n5^1-5^3+5^3&=5^1+-5^3+5^3\\\\\n&=5^1+(-5^3+5^3)\\\\\n"
            "&=5^1+0\\\\\n&=\\boxed{5}.\n\\end{align*}",
            [[5] * 5],
            id="align-rows-continue-with-equals",
        ),
        pytest.param(
            r"is $\binom{5}{4}\cdot \binom{10}{8} = \boxed{225}$.", [[225, 225]], id="binom"
        ),
        pytest.param(
            r"$$\frac{1}{2}\times 3 \times 10 = \boxed{15\mbox{ cm}^2}.$$",
            [[15, 15], [None]],  # the unit cuts the chain; `^2` after it is not a number
            id="display-dollars-unit-in-box",
        ),
        pytest.param(
            r"is $\sqrt{3^2+4^2} = \sqrt{25} = 5$, and", [[5, 5, 5]], id="sqrt-perfect-square"
        ),
        pytest.param(r"$\sqrt{3^2+5^2} = \sqrt{34}$", [[None, None]], id="sqrt-irrational"),
        pytest.param(
            r"France, $12(\$ 0.06) = \$ 0.72;$", [[F(72, 100), F(72, 100)]], id="money-product"
        ),
        pytest.param(r"\[x = 3 + 4 = 7,\]", [[None, 7, 7]], id="variable-then-numbers"),
        pytest.param(r"$2 < 3 + 1 = 4$", [[2], [4, 4]], id="relation-cuts-the-chain"),
        pytest.param(r"$2\frac{1}{2} = 2.5$", [[None, F(5, 2)]], id="mixed-number-not-a-product"),
        pytest.param(r"$5! = 120$ and $2^{10} = 1024$", [[120, 120], [1024, 1024]], id="fact-pow"),
        pytest.param(r"$\frac43 \cdot 3 = 4$", [[4, 4]], id="bare-digit-fraction"),
        pytest.param(r"$1{,}000 \div 8 = 125$", [[125, 125]], id="div-thousands-braces"),
        pytest.param(r"costs \$5, so $2 + 3 = 5$", [[5, 5]], id="escaped-dollar-is-text"),
        pytest.param(r"$\frac{24}{25}\cdot\pi = x$", [[None, None]], id="pi-not-numeric"),
        pytest.param(r"$10^x = 9990+10=10000.$", [[None, 10000, 10000]], id="unknown-exponent"),
    ],
)
def test_latex_arithmetic_in_real_math_solutions(
    text: str, expected: list[list[Fraction | None]]
) -> None:
    assert values(text) == expected


@pytest.mark.parametrize(
    ("gold", "value"),
    [
        pytest.param(r"\frac{14}{3}", F(14, 3), id="frac"),
        pytest.param(r"-\frac{24}{25}", F(-24, 25), id="negative-frac"),
        pytest.param(r"\frac43", F(4, 3), id="bare-digits"),
        pytest.param(r"10,\!080", 10080, id="thousands-thin-space"),
        pytest.param(r"\$32,\!348", 32348, id="dollars"),
        pytest.param(r"90^\circ", 90, id="degrees"),
        pytest.param(r"5.4 \text{ cents}", F(27, 5), id="unit-text"),
        pytest.param(r"15\mbox{ cm}^2", 15, id="squared-unit"),
        pytest.param(r"3\sqrt{13}", None, id="radical"),
        pytest.param(r"\left( 3, \frac{\pi}{2} \right)", None, id="tuple"),
        pytest.param(r"1\frac{4}{5}", None, id="mixed-number"),
    ],
)
def test_numeric_gold_answers(gold: str, value: Fraction | None) -> None:
    assert latex_value(gold) == value


@pytest.mark.parametrize(
    ("value", "like", "kwargs", "text"),
    [
        pytest.param(F(17, 3), r"\frac{14}{3}", {}, r"\frac{17}{3}", id="frac"),
        pytest.param(F(17, 3), r"\dfrac{14}{3}", {}, r"\dfrac{17}{3}", id="dfrac-kept"),
        pytest.param(F(-3), "5", {"in_sum": True}, "(-3)", id="negative-after-operator"),
        pytest.param(F(5, 2), "3", {"tight": True}, r"(\frac{5}{2})", id="fraction-base"),
        pytest.param(F(12345), r"10{,}000", {}, r"12{,}345", id="braced-comma"),
        pytest.param(F(12345), r"10,\!000", {}, r"12,\!345", id="thin-space-comma"),
        pytest.param(F(5, 2), "2.25", {}, "2.5", id="decimal"),
        pytest.param(F(1, 3), "2.25", {}, r"\frac{1}{3}", id="no-exact-decimal"),
        pytest.param(F(73, 100), r"\$ 0.72", {}, r"\$0.73", id="money"),
        pytest.param(F(673, 10**7), ".0000672", {}, ".0000673", id="decimal-places-kept"),
    ],
)
def test_values_are_written_like_the_number_they_replace(
    value: Fraction, like: str, kwargs: dict[str, bool], text: str
) -> None:
    assert render(value, like, **kwargs) == text


# ---------------------------------------------------------------- inject on MATH-500


@pytest.fixture(scope="module")
def injected() -> list[dict[str, Any]]:
    result = run("inject", str(SLICE), "--per-question", "3", "--seed", "1", "-q")
    assert result.exit_code == 0, result.stderr
    return records(result)


def _gold_steps(record: dict[str, Any]) -> list[str]:
    row = next(r for r in load_jsonl(SLICE) if r["question"] == record["question"])
    body = row["answer"][: row["answer"].rindex("The answer is")]
    return math_steps(body)


def _balanced(text: str) -> bool:
    depth = 0
    for c in text.replace("\\{", "").replace("\\}", ""):
        depth += (c == "{") - (c == "}")
        if depth < 0:
            return False
    return (
        depth == 0
        and text.replace("\\$", "").count("$") % 2 == 0
        and text.count("\\begin{") == text.count("\\end{")
        and text.count("\\[") == text.count("\\]")
    )


def test_no_math_step_starts_or_ends_inside_math() -> None:
    """Every step of every solution of the slice opens and closes its math: `align*`, `cases`,
    `$...$` over a line break, `\\[...\\]` before an `[asy]` figure."""
    rows = load_jsonl(SLICE)
    steps = [s for row in rows for s in math_steps(row["answer"])]
    assert len(rows) == 60
    assert len(steps) > 200
    assert sum("\\begin{" in s for s in steps) >= 10
    assert [s for s in steps if not _balanced(s)] == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(  # MATH-500 d517fc5b12cd2d94
            "The sum is\n\\begin{align*}\n1+2 &= 3 \\\\\n&= 2^2\\cdot5\\cdot11.\n\\end{align*}"
            "Here we have used the observation. So it is $3.$",
            [
                "The sum is",
                "\\begin{align*}\n1+2 &= 3 \\\\\n&= 2^2\\cdot5\\cdot11.\n\\end{align*}"
                "Here we have used the observation.",
                "So it is $3.$",
            ],
            id="align-star",
        ),
        pytest.param(
            "So $f(x) = \\begin{cases} 1. & x > 0, \\\\ 2. & x \\le 0. \\end{cases}$. "
            "Next, f(1) = 1.",
            [
                "So $f(x) = \\begin{cases} 1. & x > 0, \\\\ 2. & x \\le 0. \\end{cases}$.",
                "Next, f(1) = 1.",
            ],
            id="cases-in-inline-math",
        ),
        pytest.param(
            "Then \\begin{pmatrix} 1. \\begin{matrix} 2. A \\end{matrix} B. \\end{pmatrix} "
            "So. Then.",
            [
                "Then \\begin{pmatrix} 1. \\begin{matrix} 2. A \\end{matrix} B. \\end{pmatrix} So.",
                "Then.",
            ],
            id="nested-environments",
        ),
        pytest.param(
            "\\begin{eqnarray} a. B \\end{eqnarray} So. \\begin{gather} c. D \\end{gather} E.",
            ["\\begin{eqnarray} a. B \\end{eqnarray} So.", "\\begin{gather} c. D \\end{gather} E."],
            id="eqnarray-gather",
        ),
        pytest.param(
            "The box reads \\boxed{\\text{Yes. 5}}. Then stop.",
            ["The box reads \\boxed{\\text{Yes. 5}}.", "Then stop."],
            id="braces-outside-math",
        ),
        pytest.param(
            "Because  $\\left(120 -\nk^2\\right)^2$ is positive. So $\\boxed{11}$.",
            ["Because  $\\left(120 -\nk^2\\right)^2$ is positive.", "So $\\boxed{11}$."],
            id="inline-math-over-a-line-break",
        ),
        pytest.param(
            "so its area is \\[\n2 = \\boxed{2}.\n\\][asy]\nunitsize(2cm);\n[/asy]",
            ["so its area is \\[\n2 = \\boxed{2}.\n\\]", "[asy]\nunitsize(2cm);\n[/asy]"],
            id="figure-after-display-math",
        ),
    ],
)
def test_math_steps_never_cut_inside_an_environment(text: str, expected: list[str]) -> None:
    assert math_steps(text) == expected


def test_a_large_share_of_math_problems_gets_mistakes(injected: list[dict[str, Any]]) -> None:
    problems = {r["id"] for r in injected}
    assert len(problems) >= 20  # of 60 rows; 17 have no numeric answer, 17 no numeric work
    assert {r["meta"]["error_type"] for r in injected} == {"calculation", "copy", "operator"}
    assert all(r["task"] == "math" for r in injected)


def test_math_mistakes_are_wrong_well_formed_and_corrected_to_gold(
    injected: list[dict[str, Any]], grader: Grader
) -> None:
    assert len(injected) > 40
    for record in injected:
        wrong = record["original"]
        assert grader.compare("math", record["gold"], wrong["pred"]) == "wrong", record
        assert all(_balanced(step) for step in wrong["steps"]), wrong["steps"]
        boxed = find_boxed("\n".join(wrong["steps"][:-1]))
        assert boxed is not None
        assert latex_value(boxed) == latex_value(wrong["pred"])
        assert wrong["steps"][-1] == f"The answer is {wrong['pred']}."
        final = grader.grade("math", record["gold"], record["corrected_steps"][-1])
        assert final.verdict == "correct"


def test_math_steps_before_the_mistake_are_gold_and_later_ones_consistent(
    injected: list[dict[str, Any]],
) -> None:
    for record in injected:
        gold = _gold_steps(record)
        wrong = record["original"]["steps"][:-1]
        k = record["incorrect_step"]
        assert wrong[: k - 1] == gold[: k - 1]
        assert wrong[k - 1] != gold[k - 1]
        assert record["corrected_steps"][:-1] == gold[k - 1 :]
        # Exact arithmetic read back: every chain still agrees, but the miscalculated one.
        extra = record["meta"]["error_type"] == "calculation"
        assert analyse(wrong)[2] == analyse(gold)[2] + extra, record["explanation"]


def test_filter_keeps_every_math_mistake(injected: list[dict[str, Any]], tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "injected.jsonl", injected)
    result = run("filter", str(path))
    assert len(records(result)) == len(injected)
    assert "dropped 0" in result.stderr


def _inject_one(tmp_path: Path, solution: str, question: str, *args: str) -> list[dict[str, Any]]:
    row = {"problem": question, "solution": solution}
    path = write_jsonl(tmp_path / "p.jsonl", [row])
    result = run("inject", str(path), "--per-question", "20", *args)
    assert result.exit_code == 0, result.stderr
    return records(result)


def test_later_steps_use_the_wrong_value(tmp_path: Path) -> None:
    made = _inject_one(
        tmp_path,
        "There are $3 \\times 4 = 12$ eggs in the rows.\n\n"
        "With the extra ones there are $12 + 5 = \\boxed{17}$ eggs.",
        "A box holds 3 rows of 4 eggs, and 5 more eggs lie on top. How many eggs are there?",
        "--types",
        "calculation",
    )
    first = [r for r in made if r["incorrect_step"] == 1]
    assert len(first) >= 3
    for record in first:
        step_one, step_two = record["original"]["steps"][:2]
        wrong = int(step_one.split("= ")[1].split("$")[0])
        assert wrong != 12
        assert (
            step_two
            == f"With the extra ones there are ${wrong} + 5 = \\boxed{{{wrong + 5}}}$ eggs."
        )
        assert record["original"]["pred"] == str(wrong + 5)


def test_inner_values_of_a_chain_are_recomputed(tmp_path: Path) -> None:
    made = _inject_one(
        tmp_path,
        "First, $8 - 3 = 5$.\n\nThen $2 \\cdot 5 + 3 = 10 + 3 = \\boxed{13}$.",
        "Take 3 from 8, double it, add 3.",
        "--types",
        "operator",
    )
    # Swapping an operator of the second step would leave `10 + 3` disagreeing with it (and
    # 2 / 5 is not whole): only the first step's `-` can become `+`.
    (record,) = made
    assert record["original"]["steps"][:2] == [
        "First, $8 + 3 = 11$.",
        "Then $2 \\cdot 11 + 3 = 22 + 3 = \\boxed{25}$.",
    ]
    assert record["explanation"] == (
        "Step 1 uses addition where the step needs subtraction: $8 + 3 = 11$, but it "
        "should be $8 - 3 = 5$."
    )
    assert record["original"]["pred"] == "25"


def test_math_without_numeric_work_is_set_aside_with_its_reason(tmp_path: Path) -> None:
    rows = load_jsonl(SLICE)
    path = write_jsonl(tmp_path / "p.jsonl", rows)
    rejects = tmp_path / "rejects.jsonl"
    result = run("inject", str(path), "--rejects", str(rejects))
    reasons = {r["reason"] for r in load_jsonl(rejects)}
    assert reasons <= {
        "gold_not_numeric",
        "no_equations",
        "answer_not_computed",
        "no_valid_mistake",
    }
    assert len(load_jsonl(rejects)) + len({r["id"] for r in records(result)}) == len(rows)
    assert "gold_not_numeric" in reasons
    assert "no_equations" in reasons


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("$" + "(" * 3000 + "1" + ")" * 3000 + " = 1$", id="parentheses"),
        pytest.param("$" + "{" * 3000 + "1" + "}" * 3000 + " = 1$", id="braces"),
        pytest.param("$" + "\\frac{" * 800 + "1" + "}{1}" * 800 + " = 1$", id="fractions"),
        pytest.param("$" + "-" * 5000 + "1 = 1$", id="signs"),
    ],
)
def test_deeply_nested_math_never_crashes(text: str) -> None:
    assert values(text)[0][-1] == 1  # read without a RecursionError; the right side is a number
    assert analyse([text])[2] == 0


def test_a_result_equal_to_its_operand_is_never_altered(tmp_path: Path) -> None:
    """`2^1 = 2`: a later 2 could be that result or the base, so no mistake starts there."""
    made = _inject_one(
        tmp_path,
        "First, $2^1 = 2$.\n\nThen $2^2 = 4$.\n\nSo the sum is $2 + 4 = \\boxed{6}$.",
        "Add the first two powers of 2.",
        "--types",
        "calculation",
    )
    assert {r["incorrect_step"] for r in made} == {2, 3}
    for record in made:
        assert record["original"]["steps"][0] == "First, $2^1 = 2$."


def test_the_box_keeps_the_answers_style(tmp_path: Path) -> None:
    """MATH-500 85c8689ba3cc568b: a decimal answer stays a decimal (`.0000672`, no leading
    zero, seven places), never `\\frac{312521}{312500}`."""
    made = _inject_one(
        tmp_path,
        "A terminating decimal can be written in the form $\\frac{a}{10^b}$, where $a$ and $b$ "
        "are integers. So we try to get a denominator of the form $10^b$: "
        "$$\\frac{21}{2^2\\cdot5^7}\\cdot\\frac{2^5}{2^5}=\\frac{21\\cdot32}{10^7}="
        "\\frac{672}{10^7}=\\boxed{.0000672}.$$",
        "Convert $\\frac{21}{2^2 \\cdot 5^7}$ to a terminating decimal.",
    )
    assert len(made) >= 3
    for record in made:
        pred = record["original"]["pred"]
        assert re.fullmatch(r"\.\d+", pred), record["explanation"]
        assert f"\\boxed{{{pred}}}" in record["original"]["response"]
    calculations = [r["original"]["pred"] for r in made if r["meta"]["error_type"] == "calculation"]
    assert ".0000673" in calculations  # a wrong last digit


@pytest.mark.parametrize(
    ("value", "like", "kept", "never"),
    [
        pytest.param(F(243, 625), r"\frac{243}{625}", [F(244, 625), F(243, 626)], [], id="frac"),
        pytest.param(F(5, 9), r"\frac{5}{9}", [F(4, 9), F(5, 8)], [F(2, 3)], id="not-reduced"),
        pytest.param(F(15, 100), "0.15", [F(16, 100), F(14, 100)], [], id="last-digit"),
        pytest.param(F(17, 3), r"\frac{17}{3}", [F(16, 3), F(17, 4)], [], id="improper"),
        pytest.param(F(5, 2), "2.5", [F(26, 10), F(7, 2)], [], id="decimal-above-two"),
    ],
)
def test_slips_of_a_non_whole_result_are_believable(
    value: Fraction, like: str, kept: list[Fraction], never: list[Fraction]
) -> None:
    made = slips(value, like)
    assert len(made) >= 4
    assert all(v in made for v in kept), made
    assert not any(v in made for v in never)
    assert all(v.denominator != 1 for v in made)  # not whole stays not whole
    if value < 1:
        assert value + 1 not in made
        assert all(0 < v < 1 for v in made)  # a proper fraction stays proper


def test_operator_mistakes_write_a_product_in_latex(tmp_path: Path) -> None:
    made = _inject_one(
        tmp_path,
        "Each of the $5$ parts is $360/5 = 72$ degrees, so the angle is $\\boxed{72}$.",
        "A full turn of 360 degrees is cut into 5 equal parts. How large is each part?",
        "--types",
        "operator",
    )
    (record,) = made
    assert "$360\\times 5 = 1800$" in record["original"]["steps"][0]
    assert "*" not in record["original"]["response"]
    cdot = _inject_one(
        tmp_path,
        "We have $2 \\cdot 3 = 6$, and $360/6 = \\boxed{60}$.",
        "What is 360 divided by the product of 2 and 3?",
        "--types",
        "operator",
    )
    assert any("360\\cdot 6" in r["original"]["response"] for r in cdot)
    assert not any("*" in r["original"]["response"] for r in cdot)


def test_a_probability_stays_between_zero_and_one(tmp_path: Path) -> None:
    """MATH-500 cfddf62e62a9ac21 gave a probability of 81/2 (`(9/2)/9` made `(9/2) * 9`)."""
    made = _inject_one(
        tmp_path,
        "The area where it works is $9 - 2 \\cdot 2 - \\frac{1}{2} = \\frac{9}{2}$. "
        "So the probability is $(9/2)/9 = \\boxed{\\frac{1}{2}}$.",
        "Two numbers are picked from $(0,3)$. What is the probability that it works?",
    )
    assert len(made) >= 2
    for record in made:
        assert 0 < latex_value(record["original"]["pred"]) < 1, record["explanation"]  # type: ignore[operator]


def test_a_copy_mistake_copies_a_number_of_the_question(tmp_path: Path) -> None:
    """MATH-500 31b2c01cda8b5f61: the 1 of `50(-1)` comes from 1 - 2, not from the question."""
    path = write_jsonl(
        tmp_path / "p.jsonl",
        [
            {
                "problem": "Compute: $1-2+3-4+5- \\dots +99-100$.",
                "solution": "$(1-2)+(3-4)+ \\dots +(97-98)+(99-100) = 50(-1) = \\boxed{-50}.$",
            }
        ],
    )
    result = run("inject", str(path), "--types", "copy", "--per-question", "20")
    assert result.exit_code == 0, result.stderr
    assert records(result) == []
    assert "no_valid_mistake" in result.stderr


def test_a_fraction_answer_stays_a_fraction(tmp_path: Path) -> None:
    """MATH-500 1419fab9719c1c2c: `$3/24=\\boxed{\\frac{1}{8}}$` made `$3*24=\\boxed{72}$`."""
    path = write_jsonl(
        tmp_path / "p.jsonl",
        [
            {
                "problem": "Compute $3/24$. Express your answer as a common fraction.",
                "solution": "It is $3/24=\\boxed{\\frac{1}{8}}$.",
            }
        ],
    )
    result = run("inject", str(path), "--types", "operator,calculation", "--per-question", "20")
    assert result.exit_code == 0, result.stderr
    made = records(result)
    assert len(made) >= 3
    assert all(r["meta"]["error_type"] == "calculation" for r in made)
    assert all(r["original"]["pred"].startswith("\\frac") for r in made)
