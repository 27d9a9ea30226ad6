from __future__ import annotations

import pytest

from lemagen.records.schema import Correction
from lemagen.stages.correct import parse_reply

LEMA_REPLY = (
    " Step 2.\nExplanation: A week has 7 days.\nCorrect Solution:\n{\n...\n"
    "Step 2: In one week he fills 3 * 7 = 21 cartons.\nStep 3: The answer is 84.\n}"
)


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(LEMA_REPLY, id="lema-layout"),
        pytest.param(
            "Incorrect Step: Step 2." + LEMA_REPLY[len(" Step 2.") :], id="label-repeated"
        ),
        pytest.param("{Step 2}" + LEMA_REPLY[len(" Step 2.") :], id="braced-step"),
        pytest.param("2" + LEMA_REPLY[len(" Step 2.") :], id="bare-number"),
        pytest.param(
            "**Incorrect Step:** Step 2.\n**Explanation:** A week has 7 days.\n"
            "**Correct Solution:**\n"
            "...\nStep 2: In one week he fills 3 * 7 = 21 cartons.\nStep 3: The answer is 84.",
            id="markdown-bold-no-braces",
        ),
        pytest.param(
            LEMA_REPLY + "\n\nQuestion: Another one?\nOriginal Solution:\n{\nStep 1: x\n}",
            id="run-on-cut",
        ),
    ],
)
def test_parse_reply_variants(reply: str) -> None:
    parsed = parse_reply(reply)
    assert parsed.error is None
    assert parsed.incorrect_step == 2
    assert parsed.explanation == "A week has 7 days."
    assert parsed.elided
    assert parsed.corrected_from == 2
    assert parsed.corrected_steps == [
        "In one week he fills 3 * 7 = 21 cartons.",
        "The answer is 84.",
    ]


def test_parse_reply_without_elision_rewrites_from_step_one() -> None:
    parsed = parse_reply(
        " Step 1.\nExplanation: Misread.\nCorrect Solution:\n{\nStep 1: 240 / 4 = 60.\n"
        "Step 2: The answer is 60.\n}"
    )
    assert (parsed.elided, parsed.corrected_from, len(parsed.corrected_steps)) == (False, 1, 2)


def test_multiline_step_with_latex_braces() -> None:
    parsed = parse_reply(
        " Step 3.\nExplanation: Wrong sum.\nCorrect Solution:\n{\n...\nStep 3: We get\n"
        "$\\frac{1}{2}$.\nStep 4: The answer is $\\frac{1}{2}$.\n}"
    )
    assert parsed.corrected_steps == ["We get\n$\\frac{1}{2}$.", "The answer is $\\frac{1}{2}$."]


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ("I think the solution is fine.", "no incorrect step number"),
        (" Step 2.\nCorrect Solution:\n{\nStep 2: x\n}", "no explanation"),
        (" Step 2.\nExplanation: wrong.", "no 'Correct Solution:' block"),
        (
            " Step 2.\nExplanation: wrong.\nCorrect Solution:\n{\n...\n}",
            "empty 'Correct Solution:' block",
        ),
    ],
)
def test_unparseable_replies_say_why(reply: str, error: str) -> None:
    assert parse_reply(reply).error == error


def test_full_solution_fills_elided_steps() -> None:
    parsed = parse_reply(LEMA_REPLY)
    original = [
        "Each day he fills 3 cartons.",
        "He fills 15.",
        "He makes $60.",
        "The answer is 60.",
    ]
    record = Correction.from_dict(
        {
            "id": "p",
            "task": "gsm8k",
            "question": "q",
            "gold": "84",
            "sample_id": "s",
            "correction_id": "c",
            "original": {"steps": original, "verdict": "wrong"},
            "incorrect_step": parsed.incorrect_step,
            "corrected_from": parsed.corrected_from,
            "elided": parsed.elided,
            "corrected_steps": parsed.corrected_steps,
            "verdict": "correct",
        },
        "f:1",
    )
    assert record.full_solution() == [
        "Each day he fills 3 cartons.",
        "In one week he fills 3 * 7 = 21 cartons.",
        "The answer is 84.",
    ]
