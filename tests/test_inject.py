"""Offline mistake synthesis on real GSM8K training rows (tests/data/gsm8k_train_slice.jsonl)."""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from lemagen.math.arith import EQUATION, find_equations, to_fraction
from lemagen.math.grading import Grader
from lemagen.mistakes.gsm8k import parse_solution
from lemagen.records.problems import ProblemReader
from tests.conftest import DATA, load_jsonl, records, run, write_jsonl

SLICE = str(DATA / "gsm8k_train_slice.jsonl")


@pytest.fixture(scope="module")
def injected() -> list[dict[str, Any]]:
    result = run(
        "inject",
        SLICE,
        "--types",
        "calculation,copy,operator,skip",
        "--per-question",
        "4",
        "--seed",
        "3",
        "-q",
    )
    assert result.exit_code == 0
    return records(result)


def gold_steps(record: dict[str, Any]) -> list[str]:
    row = next(
        r
        for r in load_jsonl(DATA / "gsm8k_train_slice.jsonl")
        if r["question"] == record["question"]
    )
    return parse_solution(ProblemReader().read(row, "f:1"), need_arithmetic=False).steps


def test_every_type_is_made(injected: list[dict[str, Any]]) -> None:
    types = {r["meta"]["error_type"] for r in injected}
    assert types == {"calculation", "copy", "operator", "skip"}
    assert len(injected) >= 100  # 40 problems, up to 4 each


def test_answers_are_wrong_and_corrections_reach_gold(
    injected: list[dict[str, Any]], grader: Grader
) -> None:
    for record in injected:
        wrong = record["original"]["pred"]
        if record["meta"]["error_type"] == "skip":
            # A fake mistake: the step is right but too early, so the final answer is gold.
            assert grader.compare("gsm8k", record["gold"], wrong) == "correct"
        else:
            assert grader.compare("gsm8k", record["gold"], wrong) == "wrong", record
        final = grader.grade("gsm8k", record["gold"], record["corrected_steps"][-1])
        assert final.verdict == "correct"
        assert (record["pred"], record["verdict"]) == (final.pred, "correct")


def test_incorrect_step_points_at_the_altered_step(injected: list[dict[str, Any]]) -> None:
    for record in injected:
        gold = gold_steps(record)
        wrong = record["original"]["steps"]
        k = record["incorrect_step"]
        assert wrong[: k - 1] == gold[: k - 1], "steps before the incorrect one are the gold ones"
        assert wrong[k - 1] != gold[k - 1]
        assert record["corrected_steps"] == gold[k - 1 :]
        assert record["elided"] == (k > 1)
        assert record["corrected_from"] == k


def test_later_steps_are_recomputed_consistently(injected: list[dict[str, Any]]) -> None:
    """Every equation of the gold solution is still a true equation in the wrong one, except
    the miscalculated one of a calculation error, which is false on purpose."""
    for record in injected:
        gold = gold_steps(record)
        wrong = record["original"]["steps"]
        k = record["incorrect_step"]
        true_in_gold = [len(find_equations(s, i)) for i, s in enumerate(gold)]
        true_in_wrong = [len(find_equations(s, i)) for i, s in enumerate(wrong)]
        if record["meta"]["error_type"] == "calculation":
            true_in_gold[k - 1] -= 1
        if record["meta"]["error_type"] == "skip":  # reordered, not recomputed
            assert sorted(true_in_wrong) == sorted(true_in_gold)
            continue
        assert true_in_wrong == true_in_gold, wrong
        assert wrong[-1] == f"The answer is {record['original']['pred']}."


_WORD_NUMBER = re.compile(r"(?<![\w.,$])\$?\d+(?:,\d{3})*(?:\.\d+)?%?")


def _stale(gold: str, wrong: str) -> set[Fraction | None]:
    """Values the wrong step's equations no longer hold that its words still state."""

    def split(step: str) -> tuple[set[Fraction | None], set[Fraction | None]]:
        matches = list(EQUATION.finditer(step))
        words = step
        for m in reversed(matches):
            words = words[: m.start(1)] + " " + words[m.end(2) :]
        held = {to_fraction(n.group()) for m in matches for n in _WORD_NUMBER.finditer(m[0])}
        return held, {to_fraction(n.group()) for n in _WORD_NUMBER.finditer(words)}

    (held_before, _), (held_after, said) = split(gold), split(wrong)
    return (held_before - held_after) & said


def test_the_words_of_a_changed_step_agree_with_its_equations(
    injected: list[dict[str, Any]], tmp_path: Path
) -> None:
    """GSM8K test 6451ffd2e39d4c43 said 'he needs 15 4-packs so he will spend $5*35 = $175':
    a mistake whose changed step states, in words, a value it changed is not made."""
    row = {  # GSM8K test set (MIT licence, tests/data/GSM8K-LICENSE)
        "question": "Terry eats 2 yogurts a day.  They are currently on sale at 4 yogurts for "
        "$5.00.  How much does he spend on yogurt over 30 days?",
        "answer": "He eats 2 yogurts a day so over 30 days he will need 2*30 = <<2*30=60>>60 "
        "yogurts\nThe yogurt is sold as 4 units for $5.00 and he needs 60 yogurts so that\u2019s "
        "60/4 = <<60/4=15>>15 4-packs\nEach 4-pack is $5.00 and he needs 15 4-packs so he will "
        "spend $5*15 = $<<5*15=75>>75 on yogurt\n#### 75",
    }
    result = run("inject", str(write_jsonl(tmp_path / "t.jsonl", [row])), "--per-question", "20")
    made = records(result)
    assert len(made) >= 5
    terry = parse_solution(ProblemReader().read(row, "t:1"), need_arithmetic=False).steps
    # A step that states its own result in words says the new one (GSM8K train, as above).
    pizza = {
        "question": "Albert is wondering how much pizza he can eat in one day. He buys 2 large "
        "pizzas and 2 small pizzas. A large pizza has 16 slices and a small pizza has 8 slices. "
        "If he eats it all, how many pieces does he eat that day?",
        "answer": "He eats 32 from the largest pizzas because 2 x 16 = <<2*16=32>>32\nHe eats 16 "
        "from the small pizza because 2 x 8 = <<2*8=16>>16\nHe eats 48 pieces because 32 + 16 = "
        "<<32+16=48>>48\n#### 48",
    }
    pizzas = records(
        run("inject", str(write_jsonl(tmp_path / "p.jsonl", [pizza])), "--per-question", "20")
    )
    said = [r["original"]["steps"][2] for r in pizzas if r["incorrect_step"] == 3]
    assert len(said) >= 3
    for step in said:
        found = re.fullmatch(r"He eats (\d+) pieces because 32 [-+] 16 = (\d+)", step)
        assert found is not None, step
        assert found[1] == found[2] != "48"
    checked = 0
    for record in [*made, *injected]:
        if record["meta"]["error_type"] == "skip":
            continue
        gold = terry if record in made else gold_steps(record)
        k = record["incorrect_step"]
        for i, (before, after) in enumerate(zip(gold, record["original"]["steps"], strict=True)):
            if before == after:
                continue
            stale = _stale(before, after)
            if record["meta"]["error_type"] == "copy" and i == k - 1:  # words say the question
                stale -= {to_fraction(record["explanation"].split(" copies ")[1].split()[0])}
            assert not stale, (record["explanation"], after)
            checked += 1
    assert checked >= 150


def _numbers(text: str) -> set[str]:
    return {n.replace(",", "").replace("$", "") for n in re.findall(r"\$?\d[\d,]*(?:\.\d+)?", text)}


def test_explanation_names_the_wrong_and_the_right_value(injected: list[dict[str, Any]]) -> None:
    for record in injected:
        kind = record["meta"]["error_type"]
        k = record["incorrect_step"]
        explanation = record["explanation"]
        assert explanation.startswith(f"Step {k} ")
        wrong_step = record["original"]["steps"][k - 1]
        right_step = record["corrected_steps"][0]
        if kind == "calculation":
            match = re.fullmatch(
                r"Step \d+ computes (.+) as (\S+), but (.+) = (\S+)\.", explanation
            )
            assert match, explanation
            assert match[2] in _numbers(wrong_step)
            assert match[4] in _numbers(right_step)
            assert match[2] != match[4]
        elif kind == "copy":
            match = re.fullmatch(
                r"Step \d+ copies (\S+) from the question as (\S+), .*", explanation
            )
            assert match, explanation
            assert match[1] in _numbers(record["question"])
            assert match[2] in _numbers(wrong_step)
        elif kind == "operator":
            assert "where the step needs" in explanation
            assert re.search(r"= (\S+), but it should be .+ = (\S+)\.$", explanation)


def test_filter_keeps_every_injected_correction(
    injected: list[dict[str, Any]], tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "inj.jsonl", injected)
    result = run("filter", str(path))
    assert len(records(result)) == len(injected)
    assert "dropped 0" in result.stderr


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    args = ("inject", SLICE, "--per-question", "2", "-q")
    first = run(*args, "--seed", "5").stdout
    assert first == run(*args, "--seed", "5").stdout
    assert first != run(*args, "--seed", "6").stdout


def test_unusable_problems_are_counted_and_set_aside(tmp_path: Path) -> None:
    rows: list[dict[str, Any]] = [
        {"question": "How many?", "answer": "There are 5 of them.\n#### 5"},  # no arithmetic
        {"question": "Sum?", "answer": 7},  # no solution at all
        load_jsonl(DATA / "gsm8k_train_slice.jsonl")[0],
    ]
    rejects = tmp_path / "rejects.jsonl"
    result = run("inject", str(write_jsonl(tmp_path / "p.jsonl", rows)), "--rejects", str(rejects))
    assert result.exit_code == 0
    assert len(records(result)) == 1
    assert [r["reason"] for r in load_jsonl(rejects)] == ["no_equations", "no_gold_solution"]
    assert "skipped 2: no_equations 1, no_gold_solution 1" in result.stderr


def test_plain_solutions_with_arithmetic(tmp_path: Path, grader: Grader) -> None:
    row = {
        "q": "Tom has 3 bags of 4 apples and eats 2. How many are left?",
        "sol": "Tom has 3 * 4 = 12 apples.\nAfter eating, 12 - 2 = 10 remain.\nThe answer is 10.",
    }
    path = write_jsonl(tmp_path / "plain.jsonl", [row])
    result = run(
        "inject",
        str(path),
        "--question-field",
        "q",
        "--answer-field",
        "sol",
        "--per-question",
        "3",
        "-q",
    )
    made = records(result)
    assert len(made) == 3
    for record in made:
        assert record["gold"] == "10"
        assert grader.compare("gsm8k", "10", record["original"]["pred"]) == "wrong"


@pytest.mark.parametrize("fake", [False, True])
def test_retry_text_round_trips_to_the_gold_solution(fake: bool) -> None:
    args = [
        "inject",
        SLICE,
        "--format",
        "retry",
        "--retry-rate",
        "0.5",
        "--marker",
        "<<oops>>",
        "-q",
    ]
    rows = records(run(*args, *(["--fake"] if fake else [])))
    assert len(rows) == 40
    assert sum(r["retries"] for r in rows) >= 20
    for row in rows:
        text = row["solution"]
        assert text.count("<<oops>>") == row["retries"] == len(row["mistakes"])
        for mistake in row["mistakes"]:
            text = text.replace(f"{mistake} <<oops>> ", "", 1)
        assert text == " ".join(gold_steps(row))
        assert row["text"] == f"Question: {row['question']}\nAnswer: {row['solution']}"


def test_retry_rate_zero_writes_the_gold_solutions() -> None:
    rows = records(run("inject", SLICE, "--format", "retry", "--retry-rate", "0", "-q"))
    assert all(r["retries"] == 0 and r["solution"] == " ".join(gold_steps(r)) for r in rows)


def test_unknown_type_is_a_usage_error() -> None:
    result = run("inject", SLICE, "--types", "calc")
    assert result.exit_code == 2
    assert "unknown error type calc" in result.stderr
