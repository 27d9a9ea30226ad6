"""Final-answer extraction: table-driven, with the shapes real model outputs take."""

from __future__ import annotations

import pytest

from lemagen.math import answers
from lemagen.records.problems import ProblemReader
from tests.conftest import DATA, load_jsonl

GSM8K_CASES = [
    pytest.param("Natalia sold 48 + 24 = 72 clips. The answer is 72.", "72", id="answer-is"),
    pytest.param("She earned 0.2 x 50 = $10.\n#### 10", "10", id="hashes"),
    pytest.param("So the total is \\boxed{18}.", "18", id="boxed"),
    pytest.param("Total = 16 - 3 - 4 = 9 eggs\nA: 18", "18", id="a-colon"),
    pytest.param("Reasoning...\nAnswer: 1,250", "1250", id="answer-colon-thousands"),
    pytest.param("The answer is $1,250.50.", "1250.5", id="currency-thousands-decimal"),
    pytest.param("The answer is 25%.", "25", id="percent"),
    pytest.param("The answer is 18 dollars.", "18", id="unit-word"),
    pytest.param("The answer is: 3/4", "0.75", id="simple-fraction"),
    pytest.param("The answer is \\frac{3}{4}.", "0.75", id="latex-fraction"),
    pytest.param("The answer is -5.", "-5", id="negative"),
    pytest.param("The answer is 18.00", "18", id="trailing-zeros"),
    pytest.param("He has 20-5=15 apples left.", "15", id="last-number-after-subtraction"),
    pytest.param("Janet sells 16 - 3 - 4 = 9 eggs, making 9 * 2 = $18.", "18", id="last-number"),
    pytest.param("Weng earns 12/60 = $<<12/60=0.2>>0.2 per minute.", "0.2", id="calculator-tags"),
    pytest.param(
        "The answer is 8.\n\nQuestion: Tom has 3 apples. The answer is 3.",
        "8",
        id="run-on-next-question-cut",
    ),
    pytest.param(
        "So she has 5 left.\n\nQuestion: How many? The answer is 99.", "5", id="run-on-no-marker"
    ),
    pytest.param(
        "**Final Answer**\n\\[\\boxed{1,000}\\]", "1000", id="deepseek-style-boxed-thousands"
    ),
    pytest.param(
        "The answer is below.\nShe had 3 apples and ate 2, so 1 is left.",
        "1",
        id="answer-is-without-number-does-not-read-the-next-line",
    ),
    pytest.param("Answer: 18\nCheck: 18 + 2 = 20", "18", id="answer-label-beats-later-numbers"),
    pytest.param("The answer is seventy.", None, id="no-number"),
    pytest.param("", None, id="empty"),
]


@pytest.mark.parametrize(("text", "expected"), GSM8K_CASES)
def test_extract_gsm8k(text: str, expected: str | None) -> None:
    assert answers.extract_gsm8k(text) == expected


MATH_CASES = [
    pytest.param("Thus $x = \\boxed{\\frac{14}{3}}$.", "\\frac{14}{3}", id="boxed"),
    pytest.param(
        "$\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}.$",
        "\\left( 3, \\frac{\\pi}{2} \\right)",
        id="boxed-nested-braces",
    ),
    pytest.param("first \\boxed{1} then \\boxed{2}", "2", id="last-boxed"),
    pytest.param("\\fbox{7}", "7", id="fbox"),
    pytest.param("so it is \\boxed 5.", "5", id="boxed-no-braces"),
    pytest.param(
        "Final Answer: The final answer is $\\frac{2}{3}$. I hope it is correct.",
        "\\frac{2}{3}",
        id="minerva-style",
    ),
    pytest.param("The answer is: p - q", "p - q", id="answer-is-colon"),
    pytest.param("The answer is $[2, 5)$.", "[2, 5)", id="answer-is-interval"),
    pytest.param("We get 5 and 7.", "7", id="no-marker-last-number"),
    pytest.param("The answer is \\[x^2\\]", "x^2", id="display-math-delimiters"),
    pytest.param("The answer is $$x+1$$.", "x+1", id="double-dollar-delimiters"),
    pytest.param(
        "The answer is \\(\\frac{1}{2}.\\)", "\\frac{1}{2}", id="full-stop-inside-delimiters"
    ),
    pytest.param("The answer is $50.", "$50", id="currency-dollar-is-not-a-delimiter"),
    pytest.param("The answer is $5$, since x = 5.", "5", id="text-after-closing-dollar"),
    pytest.param("The answer is 5\nso we are done.", "5", id="answer-is-ends-at-its-line"),
    pytest.param("no answer yet \\boxed", None, id="boxed-at-the-very-end"),
    pytest.param(
        "The answer is $\\boxed{3}$.\n\nProblem: Next one \\boxed{9}", "3", id="run-on-problem"
    ),
]


@pytest.mark.parametrize(("text", "expected"), MATH_CASES)
def test_extract_math(text: str, expected: str | None) -> None:
    assert answers.extract_math(text) == expected


# Real answer endings from reasoners -> (pred, extracted_by). Explicit marks win over the
# closing sentence; an unmarked answer is read only from the closing sentence.
MATH_HOW = [
    pytest.param("So $x = \\boxed{7}$.", "7", "boxed", id="boxed"),
    pytest.param("The answer is $\\$18.90$.", "\\$18.90", "answer_is", id="escaped-dollar"),
    pytest.param("The answer is \\$18.90.", "\\$18.90", "answer_is", id="currency-no-math"),
    pytest.param(
        "The answer is $x<-2$ or $x>3$.", "x<-2 \\text{ or } x>3", "answer_is", id="union-or"
    ),
    pytest.param("The answer is $2$, $3$, and $5$.", "2, 3, 5", "answer_is", id="several-parts"),
    pytest.param(
        "The answer is $\\frac{1}{2}$, since $x = 2$ gives $y = 1$.",
        "\\frac{1}{2}",
        "answer_is",
        id="answer-then-reason",
    ),
    pytest.param(
        "Final Answer: The final answer is $\\frac{2}{3}$. I hope it is correct.",
        "\\frac{2}{3}",
        "answer_is",
        id="minerva",
    ),
    pytest.param("Final Answer: The largest $n$ is 34.", "34", "label", id="final-answer-prose"),
    pytest.param("Adding up:\n**Answer:** 5", "5", "label", id="bold-answer"),
    pytest.param("Solving, we get\nAnswer: x = 1/3", "x = 1/3", "label", id="answer-equation"),
    pytest.param("**Final Answer**\n\n$\\frac13$", "\\frac13", "label", id="final-heading"),
    pytest.param(
        "Hence the probability is\n$\\frac13$", "\\frac13", "last_expression", id="bare-at-end"
    ),
    pytest.param(
        "The product is\n\\[\n\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}.\n\\]",
        "\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}",
        "last_expression",
        id="display-matrix",
    ),
    pytest.param(
        "The roots are $x = 2$ and $x = -3$.", "x = 2, x = -3", "last_expression", id="roots"
    ),
    pytest.param("Counting them all, there are 34 ways.", "34", "last_number", id="plain-number"),
    pytest.param(
        "Then $n = 12$. I am not sure how to go on from here.", None, None, id="not-the-conclusion"
    ),
    pytest.param("", None, None, id="empty"),
]


@pytest.mark.parametrize(("text", "pred", "how"), MATH_HOW)
def test_extract_math_how(text: str, pred: str | None, how: str | None) -> None:
    assert answers.extract_math_how(text) == (pred, how)


GSM8K_HOW = [
    pytest.param("She has 5 + 3 = 8 pens.\n#### 8", "8", "hashes", id="hashes"),
    pytest.param("5 + 3 = 8. The answer is 8.", "8", "answer_is", id="answer-is"),
    pytest.param("So she has \\boxed{8} pens.", "8", "boxed", id="boxed"),
    pytest.param("5 + 3 = 8\nAnswer: 8", "8", "label", id="label"),
    pytest.param("Altogether she has 5 + 3 = 8 pens.", "8", "last_number", id="last-number"),
    pytest.param(
        "Sample 3-1. I am not sure how to go on from here.", None, None, id="not-the-conclusion"
    ),
    pytest.param(
        "She spends $2.50 a day.\nHence 7 * 2.5 = 17.5 dollars.",
        "17.5",
        "last_number",
        id="decimal-is-not-a-sentence-end",
    ),
]


@pytest.mark.parametrize(("text", "pred", "how"), GSM8K_HOW)
def test_extract_gsm8k_how(text: str, pred: str | None, how: str | None) -> None:
    assert answers.extract_gsm8k_how(text) == (pred, how)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("1,250", "1250", id="thousands"),
        pytest.param("$2.50", "2.5", id="dollars"),
        pytest.param("\\$2.50", "2.5", id="latex-dollars"),
        pytest.param("1/3", "1/3", id="non-decimal-fraction"),
        pytest.param("-0.125", "-0.125", id="negative-decimal"),
        pytest.param("\u22127", "-7", id="unicode-minus"),
        pytest.param("-\\frac{1}{2}", "-0.5", id="negative-latex-fraction"),
        pytest.param("\\frac{3}{4}", "0.75", id="latex-fraction"),
        pytest.param("\\$-12", "-12", id="latex-dollars-negative"),
    ],
)
def test_parse_and_format_number(text: str, expected: str) -> None:
    value = answers.parse_number(text)
    assert value is not None
    assert answers.format_number(value) == expected


@pytest.mark.parametrize(
    ("solution", "expected"),
    [
        pytest.param("So 2 + 3 = 5.\nThe answer is: 5", "5", id="answer-is-colon"),
        pytest.param("So the sum is $\\boxed{5}$.", "5", id="boxed-only"),
        pytest.param("We get \\boxed{4}.\nThe answer is: 5", "5", id="answer-is-colon-wins"),
        pytest.param("No final answer here.", None, id="neither"),
    ],
)
def test_math_gold(solution: str, expected: str | None) -> None:
    assert answers.math_gold(solution) == expected


def test_real_gsm8k_rationales_extract_their_gold() -> None:
    """Every real GSM8K rationale in the slice, read as a model output, yields its gold."""
    reader = ProblemReader()
    for lineno, row in enumerate(load_jsonl(DATA / "gsm8k_train_slice.jsonl"), 1):
        gold = reader.read(row, f"f:{lineno}").gold
        assert answers.extract_gsm8k(row["answer"]) == gold, row["answer"]


def test_real_math500_solutions_extract_a_boxed_answer() -> None:
    """Every real MATH-500 solution with a \\boxed{} yields that boxed answer."""
    for row in load_jsonl(DATA / "math500_slice.jsonl"):
        body = row["answer"].rsplit("The answer is:", 1)[0]
        boxed = answers.find_boxed(body)
        if boxed is not None:
            assert answers.extract_math(body) == boxed


@pytest.mark.parametrize(
    ("text", "value"),
    [
        pytest.param("The answer is 10^2", "100", id="power"),
        pytest.param("\\boxed{9^{2}}", "81", id="braced-power"),
        pytest.param("The answer is 3^{-1}.", "1/3", id="negative-power"),
        pytest.param("\\boxed{9^{9^{9^{9}}}}", None, id="stacked-power-is-no-number"),
        pytest.param("The answer is 2^100", None, id="huge-power-is-no-number"),
    ],
)
def test_a_power_is_its_value_never_its_base(text: str, value: str | None) -> None:
    """`10^2` read as 10 graded a right answer wrong, and `9^{9^{9^{9}}}` against gold 9 right."""
    pred = answers.extract("gsm8k", text)
    assert pred == value


@pytest.mark.parametrize(
    ("solution", "gold"),
    [
        ("Half of 144 is 72.\n#### 72", "72"),
        ("#### 0042", "42"),  # digits alone take the fast way: the same text parsing gives
        ("#### 1,250", "1250"),
        ("#### 3.50", "3.5"),
        ("#### $18", "18"),
        ("####  5 ", "5"),
        ("no marker", None),
    ],
)
def test_gsm8k_gold_is_the_canonical_number_after_the_hashes(
    solution: str, gold: str | None
) -> None:
    from lemagen.math.answers import gsm8k_gold

    assert gsm8k_gold(solution) == gold
