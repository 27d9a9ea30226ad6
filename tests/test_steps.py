from __future__ import annotations

import pytest

from lemagen.math.steps import render_numbered, solution_steps, split_sentences, split_steps


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "Step 1: 48 / 2 = 24.\nStep 2: 48 + 24 = 72.\nStep 3: The answer is 72.",
            ["48 / 2 = 24.", "48 + 24 = 72.", "The answer is 72."],
            id="step-markers",
        ),
        pytest.param(
            "**Step 1:** Find the\nhalf: 24.\n**Step 2:** Add: 72.",
            ["Find the half: 24.", "Add: 72."],
            id="bold-step-markers-multiline",
        ),
        pytest.param(
            "Natalia sold 24 clips in May.\nShe sold 72 in all.\n",
            ["Natalia sold 24 clips in May.", "She sold 72 in all."],
            id="lines",
        ),
        pytest.param(
            "We have\n$$\nx^2 = 4\n$$\nso x = 2.",
            ["We have", "$$\nx^2 = 4\n$$", "so x = 2."],
            id="display-math-stays-one-step",
        ),
        pytest.param(
            "Each costs $2.50. She buys 1.5 kg. The total is $3.75.",
            ["Each costs $2.50.", "She buys 1.5 kg.", "The total is $3.75."],
            id="prices-and-decimals",
        ),
        pytest.param(
            "Mr. Smith has 3 cats. Dr. Lee has 2. Together 5.",
            ["Mr. Smith has 3 cats.", "Dr. Lee has 2.", "Together 5."],
            id="abbreviations",
        ),
        pytest.param(
            "Let $f(x) = 2.5x. Then$ we see. So it is 5.",
            ["Let $f(x) = 2.5x. Then$ we see.", "So it is 5."],
            id="inside-inline-math",
        ),
        pytest.param(
            "It costs $5 and then $7. That is 12.",
            ["It costs $5 and then $7.", "That is 12."],
            id="two-prices-are-not-math",
        ),
        pytest.param(
            "e.g. three apples. Then four.", ["e.g. three apples.", "Then four."], id="e-g"
        ),
        pytest.param("", [], id="empty"),
    ],
)
def test_split_steps(text: str, expected: list[str]) -> None:
    assert split_steps(text) == expected


def test_split_sentences_keeps_escaped_dollar() -> None:
    assert split_sentences("Pay \\$3. Then go.") == ["Pay \\$3.", "Then go."]


def test_solution_steps_forces_a_final_answer_step() -> None:
    assert solution_steps("So she has 5 apples.", "5") == [
        "So she has 5 apples.",
        "The answer is 5.",
    ]
    assert solution_steps("2 + 3 = 5.\nThe answer is 5.", "5") == ["2 + 3 = 5.", "The answer is 5."]


def test_render_numbered() -> None:
    assert render_numbered(["a", "b"], start=3) == "Step 3: a\nStep 4: b"
