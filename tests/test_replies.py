"""`parse_reply` on corrector replies as models write them, and what `filter` makes of each."""

from __future__ import annotations

from typing import Any

import pytest

from lemagen.lema.filter import check
from lemagen.lema.replies import ParsedReply, parse_json_reply, parse_reply
from lemagen.math.steps import canonical
from lemagen.records.schema import Correction
from tests.correctors import CHATTER, EXPLANATION, GOOD, reply

ORIGINAL = [
    "The bakery sold 40 * 2 = 80 cookies.",
    "The muffins brought in 40 * 3 = $120.",
    "The cookies brought in 40 * 2 = $80.",
    "In total it made 120 + 80 = $200.",
    "The answer is 200.",
]
FIXED = [
    "The cookies brought in 80 * 2 = $160.",
    "In total it made 120 + 160 = $280.",
    "The answer is 280.",
]


def as_correction(parsed: ParsedReply, original: list[str] = ORIGINAL) -> Correction:
    data: dict[str, Any] = {
        "id": "p",
        "task": "gsm8k",
        "question": "q",
        "gold": "280",
        "sample_id": "s",
        "correction_id": "c",
        "original": {"steps": original, "verdict": "wrong"},
        "incorrect_step": parsed.incorrect_step,
        "explanation": parsed.explanation,
        "corrected_from": parsed.corrected_from,
        "elided": parsed.elided,
        "corrected_steps": parsed.corrected_steps,
        "verdict": "correct",  # as if graded: the reason is about the steps
        "reject_reason": parsed.error,
        "meta": {"finish_reason": "stop"},
    }
    return Correction.from_dict(data, "f:1")


@pytest.mark.parametrize("kind", GOOD)
def test_every_good_corrector_reads_as_the_lema_layout(kind: str) -> None:
    text = reply(kind, 3, ORIGINAL, FIXED)
    parsed = parse_reply(text)
    parsed.corrected_steps = canonical(parsed.corrected_steps, "280")  # as `correct` does
    assert parsed == ParsedReply(3, EXPLANATION, 3, FIXED, elided=True), text
    record = as_correction(parsed)
    assert check(record) is None
    assert record.full_solution() == [*ORIGINAL[:2], *FIXED]


def test_preamble_names_the_step_after_the_label_not_the_first_number() -> None:
    parsed = parse_reply(
        "Steps 1 and 2 are correct. Incorrect Step: Step 3\nExplanation: x.\n"
        "Correct Solution:\n{\n...\nStep 3: y.\n}"
    )
    assert parsed.incorrect_step == 3


@pytest.mark.parametrize(
    "label",
    ["### Explanation of the mistake", "**Explanation**", "Explanation", "Explanation (why):"],
)
def test_explanation_labels(label: str) -> None:
    parsed = parse_reply(f" Step 3.\n{label}\n{EXPLANATION}\nCorrect Solution:\n{LEMA_BODY}")
    assert parsed.explanation == EXPLANATION


def test_rules_are_not_part_of_the_explanation() -> None:
    parsed = parse_reply(
        " Step 3.\nExplanation: Wrong product.\n---\nIt should use 80.\n***\n"
        "Correct Solution:\n{\n...\nStep 3: The cookies brought in 80 * 2 = $160.\n"
        "Step 4: The answer is 280.\n}"
    )
    assert parsed.explanation == "Wrong product.\nIt should use 80."


def test_no_elision_keeps_the_steps_before() -> None:
    """Numbered from Step 3 with no `...`: steps 1-2 are the original's, never lost."""
    parsed = parse_reply(reply("no_elision", 3, ORIGINAL, FIXED))
    assert (parsed.elided, parsed.corrected_from) == (True, 3)
    assert as_correction(parsed).full_solution()[:2] == ORIGINAL[:2]


def test_chatter_is_not_part_of_the_solution() -> None:
    parsed = parse_reply(reply("chatty", 3, ORIGINAL, FIXED))
    assert parsed.corrected_steps == FIXED
    assert all("hope" not in step for step in parsed.corrected_steps)


@pytest.mark.parametrize(
    ("kind", "reason"),
    [("prefix_changer", "prefix_changed"), ("step_keeper", "step_unchanged")],
)
def test_replies_that_do_not_do_what_they_say_are_filter_reasons(kind: str, reason: str) -> None:
    parsed = parse_reply(reply(kind, 3, ORIGINAL, FIXED))
    assert parsed.error is None  # read fine ...
    assert check(as_correction(parsed)) == reason  # ... but not kept


LEMA_BODY = "...\nStep 3: The cookies brought in 80 * 2 = $160.\nStep 4: The answer is 280."


@pytest.mark.parametrize(
    ("text", "steps"),
    [
        pytest.param(
            f" Step 3.\nExplanation: {EXPLANATION}\nCorrect Solution:\n```\n{LEMA_BODY}\n```\n"
            f"{CHATTER}",
            None,
            id="fence-without-language",
        ),
        pytest.param(
            f" Step 3.\nExplanation: {EXPLANATION}\nCorrect Solution:\n```\n{{\n{LEMA_BODY}\n}}"
            "\n```",
            None,
            id="braces-inside-fence",
        ),
        pytest.param(
            f"**Incorrect Step:** Step 3\n\n**Explanation:** {EXPLANATION}\n\n"
            f"**Correct Solution (from Step 3):**\n{LEMA_BODY}",
            None,
            id="bold-labels-parenthetical",
        ),
        pytest.param(
            f" Step 3.\nExplanation: {EXPLANATION}\nCorrect Solution:\n{LEMA_BODY} {CHATTER}",
            None,
            id="chatter-on-the-answer-line",
        ),
        pytest.param(
            f" Step 3.\nExplanation: {EXPLANATION}\nCorrect Solution:\nHere is the fix:\n"
            f"{{\n{LEMA_BODY}\n}}\nAnything else?",
            None,
            id="preamble-before-braces",
        ),
        pytest.param(
            f" Step 3.\nExplanation: {EXPLANATION}\n---\n### Correct Solution\n"
            f"[...]\n### Step 3\nThe cookies brought in 80 * 2 = $160.\n"
            "### Step 4\nThe answer is 280.\n\n---\nLet me know if anything is unclear.",
            None,
            id="step-headings-bracket-elision",
        ),
        pytest.param(
            f" Step 3.\nExplanation: {EXPLANATION}\nCorrect Solution:\n"
            "... (steps 1 and 2 unchanged)\nStep 3: We get 2**3 = 8.\nStep 4: So\n$$\n"
            "\\boxed{8}\n$$\n\nI hope this helps!",
            ["We get 2**3 = 8.", "So\n$$\n\\boxed{8}\n$$"],
            id="python-power-and-display-math-kept",
        ),
        pytest.param(
            f" Step 3.\nExplanation: {EXPLANATION}\nCorrect Solution:\n...\n"
            "Step 3: The cookies brought in 80 * 2 = $160.\nStep 4: 120 + 160 = 280.\n\n"
            "Let me know if you need more help.",
            ["The cookies brought in 80 * 2 = $160.", "120 + 160 = 280."],
            id="chatter-after-a-last-step-without-answer-phrase",
        ),
        pytest.param(
            f" Step 3.\nExplanation: {EXPLANATION}\nCorrect Solution:\n...\n"
            "The cookies brought in 80 * 2 = $160.\nIn total it made 280.\n"
            "Feel free to ask more.",
            ["The cookies brought in 80 * 2 = $160.", "In total it made 280."],
            id="chatter-after-unnumbered-lines",
        ),
        pytest.param(
            " Step 3.\nExplanation: x.\nCorrect Solution:\n{\n...\nStep 3: The cookies brought "
            "in 80 * 2 = $160.\nStep 4: The answer is 280.\nStep 5: Double-check: the answer is "
            "280.\n}",
            [
                "The cookies brought in 80 * 2 = $160.",
                "The answer is 280.",
                "Double-check: the answer is 280.",
            ],
            id="numbered-steps-after-an-answer-are-kept",
        ),
        pytest.param(
            f" Step 3.\nExplanation: {EXPLANATION}\nCorrect Solution:\n```\n...\n"
            "Step 3: The cookies brought in 80 * 2 = $160.\nStep 4: The answer is 280.",
            None,
            id="code-fence-never-closed",  # a reply cut short
        ),
    ],
)
def test_variants(text: str, steps: list[str] | None) -> None:
    parsed = parse_reply(text)
    assert parsed.error is None
    assert (parsed.incorrect_step, parsed.elided, parsed.corrected_from) == (3, True, 3)
    assert parsed.corrected_steps == (
        steps or ["The cookies brought in 80 * 2 = $160.", "The answer is 280."]
    )


@pytest.mark.parametrize(
    ("text", "step"),
    [
        (" Step 3.\n", 3),
        ("Step 3: the product is wrong.\n", 3),
        ("{Step 3}\n", 3),
        ("Step 1 and Step 2 are fine. Step 3 is incorrect.\n", 3),
        ("The first two steps are fine; the error is in Step 3.\n", 3),
        ("The incorrect step is Step 3.\n", 3),
        ("### Incorrect Step: **Step 3**\n", 3),
        ("Step 1 and Step 2 are correct. Incorrect Step: Step 3\n", 3),
        ("Steps 1 and 2 are correct.\n", None),
        ("Step 2 and Step 3 are both wrong, step 3 is incorrect and step 2 is wrong.\n", None),
    ],
)
def test_incorrect_step_number(text: str, step: int | None) -> None:
    parsed = parse_reply(f"{text}Explanation: x.\nCorrect Solution:\n{{\n...\nStep 3: y.\n}}")
    assert parsed.incorrect_step == step


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (reply("unparseable", 3, ORIGINAL, FIXED), "no incorrect step number"),
        (
            " Step 3.\nExplanation of the error: none.\nCorrect Solution:\n{\n...\n}",
            "no explanation",
        ),
        (" Step 3.\n**Explanation:**\n\n### Correct Solution\n...\nStep 3: y", "no explanation"),
        (
            " Step 3.\nExplanation: wrong.\nCorrect Solution:\n```\n...\n```",
            "empty 'Correct Solution:' block",
        ),
    ],
)
def test_unparseable(text: str, error: str) -> None:
    assert parse_reply(text).error == error


# ---------------------------------------------------------------- --json replies


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            '{"incorrect_step": 3, "explanation": "x.", "corrected_steps": ["a.", "The answer '
            'is 280."]}',
            ParsedReply(3, "x.", 3, ["a.", "The answer is 280."], elided=True),
            id="bare-steps",
        ),
        pytest.param(
            '```json\n{"incorrect_step": "Step 3", "explanation": "x.", "corrected_steps": '
            '["...", "Step 3: a.", "Step 4: The answer is 280. I hope this helps!"]}\n```',
            ParsedReply(3, "x.", 3, ["a.", "The answer is 280."], elided=True),
            id="labelled-steps-fenced-chatty",
        ),
        pytest.param(
            '{"incorrect_step": 1, "explanation": "x.", "corrected_steps": ["a.", "b."]}',
            ParsedReply(1, "x.", 1, ["a.", "b."]),
            id="step-one",
        ),
        pytest.param("not json", ParsedReply(error="not a JSON object"), id="not-json"),
        pytest.param(
            '{"incorrect_step": true, "explanation": "x.", "corrected_steps": []}',
            ParsedReply(error="no incorrect step number"),
            id="bool-step",
        ),
        pytest.param(
            '{"incorrect_step": 2, "explanation": "x.", "corrected_steps": "a."}',
            ParsedReply(2, "x.", error="no 'corrected_steps' list"),
            id="steps-not-a-list",
        ),
        pytest.param(
            '{"incorrect_step": 2, "explanation": "x.", "corrected_steps": ["..."]}',
            ParsedReply(2, "x.", elided=True, error="empty 'corrected_steps' list"),
            id="only-elision",
        ),
    ],
)
def test_json_replies(text: str, expected: ParsedReply) -> None:
    assert parse_json_reply(text) == expected
