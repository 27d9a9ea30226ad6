from __future__ import annotations

import pytest

from lemagen.lema.correct import parse_reply
from lemagen.records import Correction
from tests.conftest import EXAMPLES, endpoint, records, run
from tests.fake_openai import FakeOpenAI, MathTutor, Reply

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


# ---------------------------------------------------------------- unnumbered corrected lines


@pytest.mark.parametrize(("elision", "corrected_from"), [("...", 3), ("…", 3), (None, 1)])
def test_unnumbered_lines_continue_from_the_incorrect_step_only_after_an_elision(
    elision: str | None, corrected_from: int
) -> None:
    """Without `Step k:` labels the lines carry no number: after `...` they replace the
    incorrect step onwards, without it they are the whole solution."""
    lead = f"{elision}\n" if elision else ""
    parsed = parse_reply(
        f" Step 3.\nExplanation: Wrong product.\nCorrect Solution:\n{{\n{lead}"
        "The cookies brought in 80 * 2 = $160.\nThe answer is 280.\n}"
    )
    assert parsed.error is None
    assert parsed.incorrect_step == 3
    assert parsed.elided is (elision is not None)
    assert parsed.corrected_from == corrected_from
    assert parsed.corrected_steps == ["The cookies brought in 80 * 2 = $160.", "The answer is 280."]


EXPLANATION = "The total was added up wrongly."


@pytest.mark.parametrize("elided", [True, False], ids=["elided", "whole"])
def test_unnumbered_correction_through_correct_and_filter(fake: FakeOpenAI, elided: bool) -> None:
    """A corrector that writes its corrected lines without `Step k:`: `correct` records the
    step they start from (the incorrect step after `...`, else 1) and `filter` numbers them
    from there in the LEMA completion."""
    assert isinstance(fake.responder, MathTutor)
    tutor = fake.responder

    def unnumbered(prompt: str, n: int) -> list[Reply]:
        if "Original Solution:" not in prompt:
            return tutor(prompt, n)  # samples: "We work through it." + 2 steps, right or wrong
        question = prompt.rsplit("Question: ", 1)[1].split("\nOriginal Solution:", 1)[0]
        gold = tutor.answers[question][1]
        lines = ["..."] if elided else ["We work through it."]
        lines += [
            f"The total comes to {gold}.",
            f"So the total is {gold}.",
            f"The answer is {gold}.",
        ]
        body = "\n".join(lines)
        text = f" Step 2.\nExplanation: {EXPLANATION}\nCorrect Solution:\n{{\n{body}\n}}"
        return [(text, "stop")] * n

    fake.responder = unnumbered
    sampled = run("sample", str(EXAMPLES / "gsm8k.jsonl"), "-m", "r", "-n", "2", *endpoint(fake))
    corrected = run("correct", "-m", "c", *endpoint(fake), input=sampled.stdout)
    assert corrected.exit_code == 0, corrected.stderr
    rows = records(corrected)
    assert len(rows) == 10  # one wrong sample per question, one correction each
    for row in rows:
        gold = row["gold"]
        assert row["original"]["steps"][0] == "We work through it."
        assert len(row["original"]["steps"]) == 3
        assert row["incorrect_step"] == 2
        assert row["elided"] is elided
        assert row["corrected_from"] == (2 if elided else 1)
        fixed = [
            f"The total comes to {gold}.",
            f"So the total is {gold}.",
            f"The answer is {gold}.",
        ]
        assert row["corrected_steps"] == (fixed if elided else ["We work through it.", *fixed])
        assert row["verdict"] == "correct"

    filtered = run("filter", "-", input=corrected.stdout)
    assert filtered.exit_code == 0, filtered.stderr
    out = records(filtered)
    assert len(out) == 10, filtered.stderr
    by_gold = sorted(row["gold"] for row in rows)
    completions = sorted(r["completion"] for r in out)
    expected = sorted(
        f" Step 2.\nExplanation: {EXPLANATION}\nCorrect Solution:\n{{\n"
        + ("...\n" if elided else "Step 1: We work through it.\n")
        + f"Step 2: The total comes to {g}.\nStep 3: So the total is {g}.\n"
        f"Step 4: The answer is {g}.\n}}"
        for g in by_gold
    )
    assert completions == expected


def test_correct_grades_as_gsm8k_keeps_finish_reason_and_counts(fake: FakeOpenAI) -> None:
    """A GSM8K correction is graded as GSM8K (its last number, no `The answer is` needed),
    its provenance is complete and keeps the reply's finish_reason (a truncated one is then
    dropped by `filter`), and the summary counts the samples passed through, the wrong ones
    and those reaching gold."""
    assert isinstance(fake.responder, MathTutor)
    tutor = fake.responder

    def no_marker(prompt: str, n: int) -> list[Reply]:
        if "Original Solution:" not in prompt:
            return tutor(prompt, n)
        question = prompt.rsplit("Question: ", 1)[1].split("\nOriginal Solution:", 1)[0]
        gold = tutor.answers[question][1]
        text = (
            f" Step 2.\nExplanation: {EXPLANATION}\nCorrect Solution:\n{{\n...\n"
            f"Step 2: Altogether that makes {gold} in total.\n}}"
        )
        return [(text, "length")] * n

    fake.responder = no_marker
    sampled = run(
        "sample", str(EXAMPLES / "gsm8k.jsonl"), "-m", "r", "-n", "2", "--keep", "all",
        *endpoint(fake),
    )  # fmt: skip
    corrected = run("correct", "-m", "c", "--base-url", fake.base_url, input=sampled.stdout)
    assert corrected.exit_code == 0, corrected.stderr
    rows = records(corrected)
    corrections = [row for row in rows if "correction_id" in row]
    assert len(corrections) == 10
    assert len(rows) - len(corrections) == 10  # the right samples, passed through
    for row in corrections:
        assert (row["pred"], row["verdict"]) == (row["gold"], "correct")
        meta = row["meta"]
        assert {k: meta[k] for k in ("stage", "model", "api", "n", "sample_index", "prompt")} == {
            "stage": "correct",
            "model": "c",
            "api": "chat",
            "n": 1,
            "sample_index": 0,
            "prompt": "correct.gsm8k",
        }
        assert (meta["finish_reason"], meta["requests"], meta["choices_in_usage"]) == (
            "length",
            1,
            1,
        )
        assert meta["checker"]["name"] == "lemagen-numeric"
        assert (meta["temperature"], meta["max_tokens"]) == (0.0, 1024)  # the defaults
        assert len(meta["prompt_sha256"]) == 64
        assert set(meta["usage"]) == {"prompt_tokens", "completion_tokens"}
    summary = next(line for line in corrected.stderr.splitlines() if line.startswith("correct: "))
    assert summary.startswith(
        "correct: 10 wrong samples, 10 corrections, 10 reach gold, 10 passed through; "
    ), summary
    filtered = run("filter", "-", input=corrected.stdout)
    assert filtered.exit_code == 0, filtered.stderr
    assert records(filtered) == []
    assert "truncated 10" in filtered.stderr
