"""Reading analysers', teachers' and askers' replies as real models write them (tables), and
every taxonomy name, code and alias."""

from __future__ import annotations

import pytest

from lemagen.art.replies import parse_sub_questions
from lemagen.lemma.replies import (
    error_type_of,
    parse_analysis,
    parse_injection,
)
from lemagen.records import TAXONOMY, TAXONOMY_IDS

WHY = "Step 2 multiplies by 3 instead of 4."


@pytest.mark.parametrize(
    ("reply", "step", "error_type"),
    [
        pytest.param(
            f"First wrong step: 2\nError type: calculation_error\nExplanation: {WHY}",
            2,
            "calculation_error",
            id="asked-layout",
        ),
        pytest.param(
            "**First wrong step:** Step 3\n**Error type:** `operator_error`\n"
            f"**Explanation:** {WHY}",
            3,
            "operator_error",
            id="markdown-bold-backticks",
        ),
        pytest.param(
            "## Analysis\n- **Error step**: 4\n- **Error type**: Missing Step (MS)\n",
            4,
            "missing_step",
            id="heading-bullets-paper-name",
        ),
        pytest.param(
            "<think>Step 1 is fine. Step 2: 3*4=12, they wrote 13.</think>\n"
            "First wrong step: 2\nError type: CA",
            2,
            "calculation_error",
            id="thinking-then-code",
        ),
        pytest.param(
            "Sure! Let me carefully check each step of the student's work.\n\n"
            "First wrong step: 1\nError type: question misinterpretation\n\nHope this helps!",
            1,
            "question_misinterpretation",
            id="chatty-spaces-for-underscores",
        ),
        pytest.param(
            '```json\n{"first_error_step": 5, "error_type": "confusing_concept_error", '
            '"explanation": "revenue is not profit"}\n```',
            5,
            "confusing_concept",
            id="json-fence-repo-identifier",
        ),
        pytest.param(
            'Here is my answer: {"error_step": "Step 2", "type": "Unit Conversion Error"}',
            2,
            "unit_conversion_error",
            id="json-after-preamble-step-as-text",
        ),
        pytest.param(
            "The solution is incorrect, the first wrong step is step 3 because it reuses the "
            "wrong total, so the wrong type is referencing_previous_step_value_error.",
            3,
            "contradictory_step",
            id="lemma-prose",
        ),
        pytest.param(
            "The first erroneous step is Step 2: it adds a made-up discount, which is a "
            "hallucination.",
            2,
            "hallucination",
            id="prose-one-type-named",
        ),
        pytest.param(
            "The first error occurs in Step 3, where the discount is taken twice. "
            "This is a confusing concept error.",
            3,
            "confusing_concept",
            id="prose-first-error-occurs-in",
        ),
        pytest.param(
            "Step 2 is the first incorrect step.\n\nError type: OP",
            2,
            "operator_error",
            id="prose-step-k-is-the-first",
        ),
        pytest.param(
            "First wrong step: 4\nError type: an arithmetic slip (CA)",
            4,
            "calculation_error",
            id="own-words-with-the-code",
        ),
        pytest.param(
            "First wrong step: 2\nError type: Calculation error.",
            2,
            "calculation_error",
            id="capitalised-with-full-stop",
        ),
    ],
)
def test_analysis_replies_are_read(reply: str, step: int, error_type: str) -> None:
    parsed = parse_analysis(reply)
    assert parsed.error is None, parsed.detail
    assert (parsed.step, parsed.error_type) == (step, error_type)


def test_explanation_is_kept_without_the_next_label() -> None:
    parsed = parse_analysis(f"First wrong step: 2\nExplanation: {WHY}\nError type: CA")
    assert parsed.explanation == WHY


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        pytest.param(
            "First wrong step: 2\nError type: logical_fallacy", "unknown_error_type", id="outside"
        ),
        pytest.param(
            '{"first_error_step": 2, "error_type": "sign_error"}',
            "unknown_error_type",
            id="json-outside",
        ),
        pytest.param("The solution is correct.", "says_correct", id="says-correct"),
        pytest.param("No errors found in this solution.", "says_correct", id="no-errors"),
        pytest.param("Step 2 looks off, but I am not sure.", "unparseable", id="no-label"),
        pytest.param("First wrong step: 2", "unparseable", id="no-type"),
        pytest.param(
            "First wrong step: 2. It is a calculation_error or maybe an operator_error.",
            "unparseable",
            id="two-types",
        ),
        pytest.param('{"error_type": "calculation_error"}', "unparseable", id="json-no-step"),
        pytest.param("<think>Let me check step 1, then step 2", "unparseable", id="open-think"),
    ],
)
def test_bad_analysis_replies_say_why(reply: str, reason: str) -> None:
    parsed = parse_analysis(reply)
    assert parsed.error == reason
    assert parsed.detail


@pytest.mark.parametrize("kind", TAXONOMY, ids=lambda t: t.id)
def test_every_type_is_known_by_id_name_code_and_alias(kind: object) -> None:
    from lemagen.records import ErrorType

    assert isinstance(kind, ErrorType)
    names = [kind.id, kind.name, kind.code, f"{kind.name} ({kind.code})", *kind.aliases]
    assert [error_type_of(n) for n in names] == [kind.id] * len(names)


def test_taxonomy_has_the_twelve_lemma_types() -> None:
    assert len(TAXONOMY_IDS) == len(set(TAXONOMY_IDS)) == 12
    assert error_type_of("reasoning error") is None
    assert error_type_of("XY") is None


GOLD = ["Tom has 30 - 8 = 22 marbles.", "Then 22 + 5 = 27 marbles.", "The answer is 27."]
WRONG = ["Tom has 30 - 8 = 22 marbles.", "Then 22 - 5 = 17 marbles.", "The answer is 17."]


def _numbered(steps: list[str], label: str = "Step {}:") -> str:
    return "\n".join(f"{label.format(i)} {s}" for i, s in enumerate(steps, 1))


@pytest.mark.parametrize(
    ("reply", "explanation"),
    [
        pytest.param(f"{_numbered(WRONG)}\nExplanation: {WHY}", WHY, id="asked-layout"),
        pytest.param(
            f"### Solution with the mistake\n\n{_numbered(WRONG, '**Step {}:**')}\n\n"
            f"**Explanation:** {WHY}",
            WHY,
            id="markdown",
        ),
        pytest.param(
            f"<think>I'll swap the operator.</think>\n{_numbered(WRONG)}\n"
            f"<explanation>{WHY}</explanation>",
            WHY,
            id="thinking-and-lemma-tag",
        ),
        pytest.param(
            f"Sure! Here it is:\n\n{_numbered(WRONG)}\n\nI hope this helps!", None, id="chatty"
        ),
        pytest.param(
            f"Here is the solution:\n{_numbered(WRONG, '{}.')}\n\nExplanation: {WHY}",
            WHY,
            id="numbered-without-step",
        ),
        pytest.param(
            '{"steps": ["Tom has 30 - 8 = 22 marbles.", "Step 2: Then 22 - 5 = 17 marbles.", '
            f'"The answer is 17."], "explanation": "{WHY}"}}',
            WHY,
            id="json-with-a-numbered-step",
        ),
    ],
)
def test_injections_are_read(reply: str, explanation: str | None) -> None:
    parsed = parse_injection(reply)
    assert parsed.error is None, parsed.detail
    assert parsed.steps == WRONG
    assert parsed.explanation == explanation


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param("I can't help with writing wrong solutions.", id="refusal"),
        pytest.param("Step 1: a\nStep 3: b", id="gap-in-numbering"),
        pytest.param('{"steps": "one long text"}', id="json-steps-not-a-list"),
    ],
)
def test_bad_injections_are_unparseable(reply: str) -> None:
    assert parse_injection(reply).error == "unparseable"


QUESTIONS = ["How many trees are there?", "How many apples do they give?"]


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(
            "1. How many trees are there?\n2. How many apples do they give?", id="numbered"
        ),
        pytest.param(
            "- **Sub-question 1:** How many trees are there?\n"
            "- **Sub-question 2:** How many apples do they give?",
            id="markdown",
        ),
        pytest.param(
            '["How many trees are there?", "How many apples do they give?"]', id="json-list"
        ),
        pytest.param(
            '```json\n{"sub_questions": ["How many trees are there?", '
            '"How many apples do they give?"]}\n```',
            id="json-object-fenced",
        ),
        pytest.param(
            "<think>trees first</think>\nHere are the sub-questions:\n\n"
            "Q1: How many trees are there?\nQ2: How many apples do they give? (all rows)\n\n"
            "Hope this helps?",
            id="thinking-preamble-q-labels",
        ),
    ],
)
def test_sub_questions_are_read(reply: str) -> None:
    parsed = parse_sub_questions(reply)
    assert parsed.error is None, parsed.detail
    assert parsed.questions == QUESTIONS


def test_no_sub_questions_is_unparseable() -> None:
    assert parse_sub_questions("The problem needs none.").error == "unparseable"
    assert parse_sub_questions("1. Count the trees.\n2. Multiply.").error == "unparseable"
