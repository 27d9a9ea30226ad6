"""No data a model, a server or a damaged file gives crashes a stage (issue 27).

Each case is a row with its expected outcome:
- finding 3: numbers past Python's int-string conversion limit in replies, programs' output
  and gold answers are compared as text or set aside, on every run;
- point 4: token usage past belief (10**15 tokens, over 100x the prompt's estimate, over
  4 x n x --max-tokens) is booked at the estimate, synchronously and in batch lines;
- finding 6: batch output lines of every unreadable shape are failed lines asked for again,
  odd but readable ones are stored, and a create answer that is not a batch is one line;
- finding 10: stdout or -o on a full disk: the requests in flight are stored and counted;
- finding 12: a request store damaged 34 ways, --max-tokens / --seed past what a server
  takes, --prompt names no file system takes, stats --html on a full disk: one line each.
The sandbox's disk bound (finding 11) is in tests/test_sandbox.py; the 10,000-digit gold is
also a row of tests/test_fuzz.py. Runs that could hang go through a far backstop.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lemagen.cotnpot.programs import printed_answer
from lemagen.engine.store import STORE_FILE
from lemagen.errors import EXIT_BATCH_PENDING
from lemagen.lema import replies
from lemagen.lemma import replies as mistake_replies
from lemagen.lemma import smooth, trajectories
from lemagen.math import answers, arith, latex_arith
from lemagen.math.grading import Grader
from tests.conftest import DATA, EXAMPLES, known_answers, load_jsonl, records, run
from tests.fake_batches import FakeBatches
from tests.fake_openai import FakeOpenAI, MathTutor, wait_until

GSM8K = str(EXAMPLES / "gsm8k.jsonl")
MATH = str(EXAMPLES / "math.jsonl")
HUGE = "9" * 5000  # past Python's 4,300 digits: int(HUGE) raises ValueError
HUGE_COMMAS = "9" + ",999" * 1700
BACKSTOP = 300.0  # seconds: far past any healthy run, only so that a hang fails the test


def reply_rule(text: str, usage: dict[str, Any] | None = None) -> Callable[[dict[str, Any]], Any]:
    def answer(body: dict[str, Any]) -> Any:
        n = int(body.get("n") or 1)
        choice = {"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        return 200, {
            "choices": [dict(choice, index=i) for i in range(n)],
            "usage": usage or {"prompt_tokens": 10, "completion_tokens": 5},
        }

    return answer


# ------------------------------------------- finding 3: numbers a model writes crash no stage

# Texts a model can write, each with a number no int holds (in every place a reader looks).
HUGE_TEXTS = {
    "last number": f"So the total is {HUGE}.",
    "answer is": f"The answer is {HUGE}.",
    "hashes": f"#### {HUGE}",
    "boxed": f"The answer is $\\boxed{{{HUGE}}}$",
    "boxed fraction": f"$\\boxed{{\\frac{{{HUGE}}}{{3}}}}$",
    "thousands commas": f"The total is {HUGE_COMMAS}.",
    "decimal": f"The total is 0.{HUGE}.",
    "slash fraction": f"The total is {HUGE}/7.",
    "huge exponent": f"The total is 10^{{{HUGE}}}.",
    "huge power": f"The total is {'9' * 100}^64.",
    "huge power after a marker": f"The answer is {'9' * 100}^64.",
    "huge power boxed": f"So it is $\\boxed{{{'9' * 100}^{{64}}}}$.",
    "equation": f"Step 1: {HUGE} + 1 = {HUGE}",
    "equation after a small one": f"Step 1: 2 * 3 = 6 and 5 * {'9' * 3000} = {'9' * 3000}",
    "latex equation": f"Step 1: $ {HUGE} + 1 = 2 $",
    "latex fraction, power, factorial": (
        f"$\\frac{{{HUGE}}}{{2}} = 3$ and $2^{{{HUGE}}} = 4$ and $ {HUGE}! = 5$"
    ),
    "step number": f"Step {HUGE}: the mistake.\nExplanation: x\nCorrect Solution:\nStep 1: 2",
    "step number in JSON": (
        '{"incorrect_step": "' + HUGE + '", "step": "' + HUGE + '", "error_type": "calculation",'
        ' "explanation": "x", "corrected_steps": ["a"]}'
    ),
    "first wrong step": f"The first wrong step is step {HUGE}. Error type: calculation",
    "step reference": f"As step {HUGE} and steps {HUGE} to {HUGE} say, the sum is off.",
}


@pytest.fixture(scope="module")
def checker() -> Any:
    with Grader() as grader:
        yield grader


# Every reader of model-written text, by what the stage using it does.
READERS: dict[str, Callable[[Grader, str], object]] = {
    "extract gsm8k": lambda g, t: answers.extract_how("gsm8k", t),
    "extract math": lambda g, t: answers.extract_how("math", t),
    "grade gsm8k": lambda g, t: g.grade("gsm8k", "72", t),
    "grade math": lambda g, t: g.grade("math", "72", t),
    "grade math, huge gold": lambda g, t: g.grade("math", HUGE, t),
    "crosscheck math": lambda g, t: g.compare("math", "9", printed_answer(t) or "x"),
    "crosscheck gsm8k": lambda g, t: g.compare("gsm8k", "9", printed_answer(t) or "x"),
    "parse_number": lambda g, t: answers.parse_number(t),
    "gsm8k gold": lambda g, t: answers.gsm8k_gold(t),
    "inject equations": lambda g, t: arith.find_equations(t, 0),
    "inject latex parts": lambda g, t: latex_arith.find_parts(t, 0, 0),
    "latex value": lambda g, t: latex_arith.latex_value(t),
    "smooth numbers": lambda g, t: smooth.numbers(t),
    "correct reply": lambda g, t: replies.parse_reply(t),
    "correct --json reply": lambda g, t: replies.parse_json_reply(t),
    "analyze reply": lambda g, t: mistake_replies.parse_analysis(t),
    "inject --model reply": lambda g, t: mistake_replies.parse_injection(t),
    "trajectory": lambda g, t: trajectories.unnumbered(t, 2),
}


@pytest.mark.parametrize("text", list(HUGE_TEXTS.values()), ids=list(HUGE_TEXTS))
@pytest.mark.parametrize("reader", list(READERS))
def test_no_reader_of_model_text_raises_on_a_number_no_int_holds(
    checker: Grader, reader: str, text: str
) -> None:
    READERS[reader](checker, text)  # returns: a huge number is text, or not arithmetic


@pytest.mark.parametrize(
    ("task", "gold", "text", "pred", "method", "verdict"),
    [
        # A huge answer is read whole and compared as text: never an earlier number, never
        # a crash; equal texts (as decimals) are equal.
        ("math", "72", f"$\\boxed{{{HUGE}}}$", HUGE, "boxed", "wrong"),
        ("math", HUGE, f"$\\boxed{{{HUGE}}}$", HUGE, "boxed", "correct"),
        ("math", HUGE + ".0", f"$\\boxed{{{HUGE}.00}}$", HUGE + ".00", "boxed", "correct"),
        ("math", "72", f"The answer is ${HUGE} + 1$.", f"{HUGE} + 1", "answer_is", "wrong"),
        ("gsm8k", "72", f"Step 1: {HUGE} + 1 = {HUGE}", HUGE, "last_number", "wrong"),
        ("gsm8k", "72", f"So it is {HUGE_COMMAS}.", HUGE_COMMAS.replace(",", ""), "last_number",
         "wrong"),
        ("gsm8k", "72", f"The answer is {HUGE}.", HUGE, "answer_is", "wrong"),
        ("gsm8k", "72", f"The answer is $\\boxed{{{HUGE}}}$.", HUGE, "answer_is", "wrong"),
        ("gsm8k", "72", f"So it is $\\boxed{{{HUGE}}}$.", HUGE, "boxed", "wrong"),
        ("gsm8k", HUGE, f"#### {HUGE}", HUGE, "hashes", "correct"),
        # A long number after `The answer is` is read whole (it was cut at 80 characters).
        ("gsm8k", "1" * 99 + "2", f"The answer is {'1' * 100}.", "1" * 100, "answer_is", "wrong"),
        ("gsm8k", "4", f"The answer is {'0' * 90}2^2.", "4", "answer_is", "correct"),
    ],
)  # fmt: skip
def test_a_huge_answer_is_compared_as_text(
    checker: Grader, task: str, gold: str, text: str, pred: str, method: str, verdict: str
) -> None:
    grade = checker.grade(task, gold, text)
    assert (grade.pred, grade.extracted_by, grade.verdict) == (pred, method, verdict)


def test_a_number_of_a_million_digits_is_read_in_linear_time() -> None:
    """A number is never looked for from inside a run of digits (each start tried: hours for
    this text). In a subprocess with a far backstop, so that a regression fails."""
    code = (
        "from lemagen.math.grading import Grader\n"
        "text = 'The answer is $\\\\boxed{1 + ' + '9' * 1_000_000 + '}$.'\n"
        "with Grader() as g:\n"
        "    print(g.grade('gsm8k', '72', text).verdict, g.grade('math', '72', text).verdict)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=BACKSTOP, check=False)  # fmt: skip
    assert (done.returncode, done.stdout) == (0, "wrong wrong\n"), done.stderr


@pytest.mark.parametrize(
    ("task", "reply"),
    [
        ("math", f"Step 1: compute.\nThe answer is $\\boxed{{{HUGE}}}$"),
        ("math", f"Step 1: compute.\nSo the answer is {HUGE}."),
        ("gsm8k", f"Step 1: 2 + 3 = 5.\nStep 2: {HUGE} + 1 = {HUGE}\nThe answer is {HUGE}."),
    ],
)
def test_a_sample_ending_in_a_huge_number_is_graded_on_every_run(
    fake: FakeOpenAI, tmp_path: Path, task: str, reply: str
) -> None:
    fake.rule = reply_rule(reply)
    args = ["sample", MATH if task == "math" else GSM8K, "-m", "r", "-n", "1", "--keep", "all",
            "--cache-dir", str(tmp_path / "c"), "--base-url", fake.base_url, "-q"]  # fmt: skip
    first = run(*args)
    assert first.exit_code == 0, first.stderr
    rows = records(first)
    assert len(rows) == 10
    assert {(r["pred"], r["verdict"]) for r in rows} == {(HUGE, "wrong")}
    sent = len(fake.requests)
    again = run(*args)  # the reply is stored: the re-run reads it back and grades it again
    assert again.exit_code == 0, again.stderr
    assert len(fake.requests) == sent
    assert sorted(again.stdout.splitlines()) == sorted(first.stdout.splitlines())


def test_a_program_printing_a_huge_number_disagrees(fake: FakeOpenAI, tmp_path: Path) -> None:
    golden = load_jsonl(DATA / "golden" / "math.sample.jsonl")
    record = next(r for r in golden if r["verdict"] == "correct" and r["pred"].isdigit())
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps(record) + "\n")
    fake.rule = reply_rule('```python\nprint("9" * 5000)\n```')
    result = run("crosscheck", str(path), "-m", "coder", "--base-url", fake.base_url, "-q",
                 "--program-timeout", "30")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    [row] = records(result)
    assert (row["pot_verdict"], row["pot_answer"]) == ("disagree", HUGE)


@pytest.fixture
def injected(tmp_path: Path) -> Path:
    result = run("inject", str(DATA / "gsm8k_train_slice.jsonl"), "-q")
    assert result.exit_code == 0
    path = tmp_path / "injected.jsonl"
    path.write_text("".join(line + "\n" for line in result.stdout.splitlines()[:3]))
    return path


@pytest.mark.parametrize(
    ("rewrite", "written", "reason"),
    [
        (lambda t: f"{t} (A check: {HUGE} is not needed.)", 3, None),
        (lambda t: t.rsplit("The answer is", 1)[0] + f"The answer is {HUGE}.", 0,
         "smooth_wrong_answer"),
        (lambda t: t.replace(" ", f" {HUGE} ", 1), 3, None),
    ],
    ids=["huge aside", "huge answer", "huge number inside"],
)  # fmt: skip
def test_a_rewrite_with_a_huge_number_is_judged_like_any_other(
    fake: FakeOpenAI, injected: Path, rewrite: Callable[[str], str], written: int, reason: str
) -> None:
    def rule(body: dict[str, Any]) -> Any:
        prompt = body["messages"][-1]["content"]
        trajectory = prompt.split("\n\nSolution:\n", 1)[1].rsplit("\n\nRewritten solution:")[0]
        return reply_rule(rewrite(trajectory))(body)

    fake.rule = rule
    result = run("smooth", str(injected), "-m", "s", "--base-url", fake.base_url, "-q",
                 "--rejects", str(injected.parent / "r.jsonl"))  # fmt: skip
    assert result.exit_code in (0, 4), result.stderr
    assert len(records(result)) == written
    aside = load_jsonl(injected.parent / "r.jsonl")
    assert [r["reason"] for r in aside] == [reason] * (3 - written)


def _huge_gold_rows(tmp_path: Path) -> Path:
    rows = load_jsonl(EXAMPLES / "gsm8k.jsonl")[:3]
    rows[1]["answer"] = rows[1]["answer"].rsplit("####", 1)[0] + "#### " + "9" * 10_000
    path = tmp_path / "golds.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("command", ["sample", "inject"])
def test_a_gold_no_int_holds_is_a_bad_row(fake: FakeOpenAI, tmp_path: Path, command: str) -> None:
    path = _huge_gold_rows(tmp_path)
    extra = ["-m", "r", "--base-url", fake.base_url] if command == "sample" else []
    stopped = run(command, str(path), *extra, "-q")
    assert stopped.exit_code == 1
    assert stopped.stderr == (
        f"Error: {path}:2: cannot read a gsm8k gold answer from field 'answer' "
        "(a number of more than 600 digits)\n"
    )
    rejects = tmp_path / "rejects.jsonl"
    skipped = run(command, str(path), *extra, "-q", "--skip-bad-rows", "--rejects", str(rejects))
    assert skipped.exit_code == 0, skipped.stderr
    bad = [r for r in load_jsonl(rejects) if r["reason"] == "bad_gold"]
    assert [r["detail"].split(":")[1] for r in bad] == ["2"]
    asked = {r["question"] for r in records(skipped)}
    questions = [r["question"] for r in load_jsonl(path)]
    assert questions[1] not in asked
    assert command == "inject" or asked == {questions[0], questions[2]}


# ------------------------------------------- point 4: usage past belief is booked at the estimate


def _summary_cost(stderr: str) -> float:
    found = re.search(r"cost \$([0-9.e+]+)", stderr)
    assert found is not None, stderr
    return float(found.group(1))


@pytest.mark.parametrize(
    ("prompt_tokens", "completion_tokens", "believed", "extra"),
    [
        (10**15, 10**15, False, []),  # $6e9 in the summary, once
        (10**15, 5, False, []),
        (10, 10**15, False, []),
        (10, 100 * 4 + 1, False, []),  # past n x --max-tokens x 4 (n=1, 100)
        (10, 100 * 4, True, []),
        (100 * 40, 5, True, []),  # the estimate of the shortest prompt is past 40 tokens
        (100 * 10_000, 5, False, []),  # past 100 x any example prompt's estimate
        (100 * 10_000, 5, True, ["--system", "x" * 40_000]),  # a system message counts
    ],
)
def test_usage_past_belief_is_booked_at_the_estimate(
    fake: FakeOpenAI, prompt_tokens: int, completion_tokens: int, believed: bool, extra: list[str]
) -> None:
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}
    fake.rule = reply_rule("The answer is 5.", usage)
    result = run("sample", GSM8K, "-m", "r", "-n", "1", "--keep", "all", "--max-tokens", "100",
                 "--price-in", "3", "--price-out", "3", "--base-url", fake.base_url,
                 *extra)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    rows = records(result)
    assert len(rows) == 10
    booked = "10 responses gave no usable token usage: booked at the estimate"
    if believed:
        assert booked not in result.stderr
        assert {r["meta"]["usage"]["completion_tokens"] for r in rows} == {completion_tokens}
        return
    assert booked in result.stderr
    assert _summary_cost(result.stderr) < 0.01  # 10 x (a short prompt + 100 tokens) at $3/M
    assert all(r["meta"]["usage"]["prompt_tokens"] < 1000 for r in rows)
    assert all(r["meta"]["usage"]["completion_tokens"] <= 100 for r in rows)


# ------------------------------------------- finding 6: batch collect survives any output file


def _usage(value: int) -> Callable[[str, str], str]:
    def damage(custom_id: str, line: str) -> str:
        data = json.loads(line)
        data["response"]["body"]["usage"] = {"prompt_tokens": value, "completion_tokens": value}
        return json.dumps(data)

    return damage


def _nested(depth: int, *, inside: bool = False) -> Callable[[str, str], str]:
    """The line with a list nested `depth` deep beside its fields (or its body's)."""

    def damage(custom_id: str, line: str) -> str:
        if inside:
            data = json.loads(line)
            data["response"]["body"]["x"] = "NESTED"
            return json.dumps(data).replace('"NESTED"', "[" * depth + "]" * depth)
        return line[:-1] + ', "x": ' + "[" * depth + "]" * depth + "}"

    return damage


# An answered line, as the provider may write it into the output file.
UNREADABLE_LINES: dict[str, Callable[[str, str], str]] = {
    "not JSON": lambda cid, line: line[: len(line) // 2],
    "a JSON array": lambda cid, line: f"[{line}]",
    "a JSON string": lambda cid, line: json.dumps(line),
    "nested 5,000 deep": _nested(5000),
    **{f"body nested {d} deep": _nested(d, inside=True) for d in (510, 900, 935, 990, 5000)},
    "invalid UTF-8": lambda cid, line: line.replace('"custom_id"', '"\udcff"'),
    "no custom_id": lambda cid, line: line.replace('"custom_id"', '"custom"'),
    "response not an object": lambda cid, line: json.dumps(
        {"custom_id": cid, "response": [1], "error": None}
    ),
    "body not an object": lambda cid, line: json.dumps(
        {"custom_id": cid, "response": {"status_code": 200, "body": "x"}, "error": None}
    ),
    "error not an object": lambda cid, line: json.dumps(
        {"custom_id": cid, "response": None, "error": [1, 2]}
    ),
}


def _batch_args(fake: FakeOpenAI, cache: Path, *extra: str) -> list[str]:
    return ["sample", GSM8K, "-m", "m", "-n", "2", "--seed", "1", "--keep", "all", "--batch",
            "--base-url", fake.base_url, "--cache-dir", str(cache), *extra]  # fmt: skip


# Lines odd but readable: their samples are stored like any other's.
READABLE_LINES: dict[str, Callable[[str, str], str]] = {
    "body nested 509 deep": _nested(509, inside=True),  # 512 levels in all
    "extra fields": lambda cid, line: line[:-1] + ', "extra": {"a": [1, 2]}}',
    "the same line twice": lambda cid, line: line + "\n" + line,
    "blank lines around": lambda cid, line: "\n  \n" + line + "\n\n",
}


@pytest.mark.parametrize(
    ("damage", "asked_again"),
    [(d, True) for d in UNREADABLE_LINES.values()] + [(d, False) for d in READABLE_LINES.values()],
    ids=[*UNREADABLE_LINES, *READABLE_LINES],
)
def test_an_unreadable_output_line_is_a_failed_line_asked_for_again(
    fake: FakeOpenAI, tmp_path: Path, damage: Callable[[str, str], str], asked_again: bool
) -> None:
    batches = FakeBatches.on(fake)
    sync = run("sample", GSM8K, "-m", "m", "-n", "2", "--seed", "1", "--keep", "all",
               "--base-url", fake.base_url, "--cache-dir", str(tmp_path / "s"), "-q")  # fmt: skip
    assert sync.exit_code == 0, sync.stderr
    damaged: list[str] = []

    def once(custom_id: str, line: str) -> str:
        if damaged and custom_id not in damaged:
            return line
        damaged.append(custom_id)
        return damage(custom_id, line) if len(damaged) == 1 else line

    batches.damage = once
    args = _batch_args(fake, tmp_path / "c", "-q")
    assert run(*args).exit_code == EXIT_BATCH_PENDING
    first = batches.latest()
    total = batches.batches[first]["request_counts"]["total"]
    batches.finish()
    collected = run(*args)  # the good lines are stored, the bad one goes into a new batch
    if not asked_again:
        assert collected.exit_code == 0, collected.stderr
        assert sorted(collected.stdout.splitlines()) == sorted(sync.stdout.splitlines())
        assert set(batches.paid.values()) == {1}
        return
    assert collected.exit_code == EXIT_BATCH_PENDING, collected.stderr
    assert "Traceback" not in collected.stderr
    again = batches.latest()
    assert again != first
    assert batches.batches[again]["request_counts"]["total"] == 1
    batches.finish()
    done = run(*args)
    assert done.exit_code == 0, done.stderr
    assert sorted(done.stdout.splitlines()) == sorted(sync.stdout.splitlines())
    paid = [k for k in batches.paid if k.startswith("lemagen-")]
    assert len(paid) == total
    assert sorted(batches.paid[k] for k in paid) == [1] * (total - 1) + [2]  # the bad one again


def test_a_line_unreadable_every_time_is_set_aside_after_max_retries(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    batches = FakeBatches.on(fake)
    target: list[str] = []

    def always(custom_id: str, line: str) -> str:
        target.append(target[0] if target else custom_id)
        return line[:10] if custom_id == target[0] else line

    batches.damage = always
    rejects = tmp_path / "rejects.jsonl"
    args = _batch_args(fake, tmp_path / "c", "-q", "--max-retries", "1", "--rejects", str(rejects))
    for _ in range(2):  # the first batch and one retry
        assert run(*args).exit_code == EXIT_BATCH_PENDING
        batches.finish()
    done = run(*args)
    assert done.exit_code == 4, done.stderr
    (reject,) = load_jsonl(rejects)
    assert reject["reason"] == "request_failed"
    assert reject["record"]["error"] == (
        "the batch's output has no readable line for this request (gave up after 2 batches)"
    )


@pytest.mark.parametrize("value", [2**63, 2**64, 10**15, 10**30])
def test_a_line_with_usage_no_count_holds_is_stored_at_the_estimate(
    fake: FakeOpenAI, tmp_path: Path, value: int
) -> None:
    batches = FakeBatches.on(fake)
    batches.damage = _usage(value)
    args = _batch_args(fake, tmp_path / "c", "--price-in", "3", "--price-out", "3")
    assert run(*args).exit_code == EXIT_BATCH_PENDING
    batches.finish()
    done = run(*args)
    assert done.exit_code == 0, done.stderr
    assert len(records(done)) == 20
    assert "10 responses gave no usable token usage: booked at the estimate" in done.stderr
    assert _summary_cost(done.stderr) < 0.1
    assert batches.creates == 1


def test_an_unreadable_line_tells_how_many_in_the_collect_message(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    batches = FakeBatches.on(fake)
    even = ("0", "2", "4", "6", "8")
    batches.damage = lambda cid, line: line if cid.endswith(even) else "{"
    args = _batch_args(fake, tmp_path / "c")
    assert run(*args).exit_code == EXIT_BATCH_PENDING
    batches.finish()
    collected = run(*args)
    assert collected.exit_code == EXIT_BATCH_PENDING, collected.stderr
    ids = [k for k in batches.paid if k.startswith("lemagen-")]
    unreadable = sum(1 for k in ids if not k.endswith(even))
    assert unreadable > 0
    assert f"{unreadable} output lines unreadable" in collected.stderr


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        ([], "the answer is not a batch object (no id): []"),
        ({}, "the answer is not a batch object (no id)"),
        ("x", "the answer is not a batch object (no id): 'x'"),
        ({"id": 5, "status": "validating"}, "the answer is not a batch object (no id)"),
        ({"id": "batch-1"}, "the answer is not a batch object (no status)"),
        (b"<html>busy</html>", "the answer is not JSON: Expecting value"),
    ],
    ids=["array", "empty object", "string", "id not text", "no status", "not JSON"],
)
def test_a_create_answer_that_is_not_a_batch_is_a_one_line_error(
    fake: FakeOpenAI, tmp_path: Path, answer: Any, why: str
) -> None:
    batches = FakeBatches.on(fake)
    batches.create_answer = answer
    args = _batch_args(fake, tmp_path / "c", "-q", "--max-retries", "0")
    stopped = run(*args)
    assert stopped.exit_code == 3, stopped.stderr
    lines = stopped.stderr.strip().splitlines()
    assert len(lines) == 1, stopped.stderr
    assert lines[0].startswith(f"Error: batch API at {fake.base_url}: {why}"), lines[0]
    batches.create_answer = None  # the provider recovers: the same command goes on
    assert run(*args).exit_code == EXIT_BATCH_PENDING
    batches.finish()
    assert run(*args).exit_code == 0
    assert batches.creates == 1


# ------------------------------------- finding 10: an output that fails keeps what was in flight


def _lemagen(*args: str) -> list[str]:
    return [sys.executable, "-m", "lemagen", *args]


def _stored(cache: Path) -> int:
    conn = sqlite3.connect(cache / STORE_FILE)
    try:
        return int(conn.execute("SELECT count(*) FROM samples").fetchone()[0])
    finally:
        conn.close()


@pytest.mark.parametrize("cache", [True, False], ids=["store", "no-cache"])
@pytest.mark.parametrize("where", ["stdout", "-o"])
def test_an_output_that_fails_keeps_the_requests_in_flight_and_counts_them(
    fake: FakeOpenAI, tmp_path: Path, where: str, cache: bool
) -> None:
    """Ten problems. The first answer is right (nothing to write: only wrong samples are
    kept); the second, wrong, is answered once the other nine are on the wire, and its row
    cannot be written (/dev/full). The run sends nothing more, waits for the eight still in
    flight (the server holds them until the run says, with -v, that it waits), stores them,
    and counts them in its one error line."""
    golds = {r["question"]: r["answer"].rsplit("#### ", 1)[1] for r in load_jsonl(Path(GSM8K))}
    gate, everyone = threading.Event(), threading.Event()
    lock = threading.Lock()
    arrived: list[str] = []

    def rule(body: dict[str, Any]) -> Any:
        prompt = body["messages"][-1]["content"]
        with lock:
            arrived.append(prompt)
            count = len(arrived)
        if count == 10:
            everyone.set()
        if count == 1:
            gold = next(g for q, g in golds.items() if q in prompt)
            return reply_rule(f"The answer is {gold}.")(body)
        (everyone if count == 2 else gate).wait(BACKSTOP)
        return reply_rule("The answer is -1.")(body)

    fake.rule = rule
    store = tmp_path / "c"
    base = ["sample", GSM8K, "-m", "r", "-n", "2", "--base-url", fake.base_url,
            *(["--cache-dir", str(store)] if cache else ["--no-cache"])]  # fmt: skip
    args = ["-v", *base, *(["-o", "/dev/full"] if where == "-o" else [])]
    with (
        open("/dev/full", "w") as full,
        subprocess.Popen(_lemagen(*args), stdout=full, stderr=subprocess.PIPE, text=True) as proc,
    ):
        try:
            assert proc.stderr is not None
            seen = []
            for line in proc.stderr:  # until the run waits for what is in flight (or ends)
                seen.append(line)
                if "waiting for the requests in flight" in line:
                    break
            gate.set()
            stderr = "".join(seen) + proc.stderr.read()
            assert proc.wait(BACKSTOP) == 6, stderr
        finally:
            gate.set()
            everyone.set()
            if proc.poll() is None:
                proc.kill()
    assert "Traceback" not in stderr
    error = stderr.strip().splitlines()[-1]
    name = "/dev/full" if where == "-o" else "<stdout>"
    assert error.startswith(f"Error: {name}: cannot write: No space left on device; "), error
    wait_until(lambda: fake.active == 0, "the server's last answers")
    assert len(fake.served) == 10  # all ten answered: billed
    if cache:
        assert error.endswith(
            "8 requests in flight were answered and stored: nothing billed is lost "
            "(a re-run writes their rows without paying again)"
        ), error
        assert _stored(store) == 20
        again = run(*base, "-q")
        assert again.exit_code == 0, again.stderr
        assert len(records(again)) == 9  # the wrong samples (alike: one a problem)
        assert len(fake.served) == 10  # nothing paid twice
    else:
        assert error.endswith(
            "8 requests in flight were answered and billed, and are not stored (--no-cache)"
        ), error


# ---------------------------------------- finding 12: a damaged request store is one line


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeOpenAI, Path, Path]]:
    """A server with a finished batch, and a request store holding samples and that batch's
    job (not collected yet): what each damaged copy starts from."""
    tutor = MathTutor(known_answers(EXAMPLES / "gsm8k.jsonl"))
    server = FakeOpenAI(tutor).start()
    batches = FakeBatches.on(server)
    root = tmp_path_factory.mktemp("ledger")
    store, samples = root / "store", root / "samples.jsonl"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LEMAGEN_CONFIG", os.devnull)
        env.delenv("OPENAI_API_KEY", raising=False)
        made = run("sample", GSM8K, "-m", "m", "-n", "2", "--cache-dir", str(store),
                   "--base-url", server.base_url, "-q", "-o", str(samples))  # fmt: skip
        assert made.exit_code == 0, made.stderr
        asked = run("correct", str(samples), "-m", "c", "--cache-dir", str(store), "--batch",
                    "--base-url", server.base_url, "-q")  # fmt: skip
        assert asked.exit_code == EXIT_BATCH_PENDING, asked.stderr
    batches.finish()
    conn = sqlite3.connect(store / STORE_FILE)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the file alone holds everything
    conn.close()
    yield server, store, samples
    server.stop()


def _flip(seed: int) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        rng = random.Random(seed)
        data = bytearray(path.read_bytes())
        for _ in range(rng.choice([1, 4, 32])):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(data))

    return damage


def _cut(fraction: float) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * fraction)])

    return damage


def _zero_page(page: int) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        data = bytearray(path.read_bytes())
        data[page * 4096 : (page + 1) * 4096] = bytes(4096)
        path.write_bytes(bytes(data))

    return damage


def _sql(statement: str) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        conn = sqlite3.connect(path)
        conn.executescript(statement)
        conn.close()

    return damage


ANY = None  # a damage whose effect depends on where it falls: one line, or a run that works
# name: (damage, then the exit of `sample` (its rows replayed from the row book), `sample
# --dry-run` (which reads the stored samples), `correct --batch` (which collects the batch)
# and `batches`)
Exits = tuple[int | None, int | None, int | None, int | None]
DAMAGES: dict[str, tuple[Callable[[Path], None], Exits]] = {
    "counts not JSON": (_sql("UPDATE batch_jobs SET counts = 'nope'"), (0, 0, 1, 1)),
    "counts a list": (_sql("UPDATE batch_jobs SET counts = '[1]'"), (0, 0, 1, 1)),
    "created not a time": (_sql("UPDATE batch_jobs SET created = 'x'"), (0, 0, 1, 1)),
    "batch id bytes": (_sql("UPDATE batch_jobs SET batch_id = x'00ff'"), (0, 0, 1, 1)),
    "request line not JSON": (_sql("UPDATE batch_requests SET line = 'no'"), (0, 0, 1, 0)),
    "request line a list": (_sql("UPDATE batch_requests SET line = '[]'"), (0, 0, 1, 0)),
    "request keys cut": (_sql("UPDATE batch_requests SET keys = x'0102'"), (0, 0, 1, 0)),
    "request line not UTF-8": (
        _sql("UPDATE batch_requests SET line = CAST(x'7b22ff' AS TEXT)"),
        (0, 0, 1, 0),
    ),
    "failure counts not counts": (  # and no job holds the keys: the failures are read
        _sql(
            "INSERT INTO batch_failures SELECT key, 'x', 5 FROM batch_keys; DELETE FROM batch_keys"
        ),
        (0, 0, 1, 0),
    ),
    "sample text not text": (_sql("UPDATE samples SET text = x'ff'"), (0, 1, 0, 0)),
    "sample tokens not counts": (_sql("UPDATE samples SET prompt_tokens = 'abc'"), (0, 1, 0, 0)),
    "a newer lemagen's": (_sql("PRAGMA user_version = 99"), (1, 1, 1, 1)),
    "ledger tables dropped": (
        _sql("DROP TABLE batch_jobs; DROP TABLE batch_requests; DROP TABLE batch_keys"),
        (0, 0, EXIT_BATCH_PENDING, 0),  # an empty ledger: the requests go into a new batch
    ),
    "emptied": (_cut(0.0), (0, 0, EXIT_BATCH_PENDING, 0)),
    "header cut": (_cut(0.001), (1, 1, 1, 1)),
    "cut in half": (_cut(0.5), (1, 1, 1, 1)),
    "last page cut": (_cut(0.97), (ANY, ANY, ANY, ANY)),
    **{f"page {p} zeroed": (_zero_page(p), (ANY, ANY, ANY, ANY)) for p in (0, 1, 3, 7, 12)},
    **{f"bits flipped ({seed})": (_flip(seed), (ANY, ANY, ANY, ANY)) for seed in range(12)},
}


def _within_backstop(*args: str) -> Any:
    """`run`, in a thread joined with a far backstop: a hang fails instead of waiting."""
    outcome: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: outcome.update(result=run(*args)), daemon=True)
    worker.start()
    worker.join(BACKSTOP)
    assert not worker.is_alive(), f"hung: {args}"
    return outcome["result"]


@pytest.mark.parametrize("name", list(DAMAGES))
def test_a_damaged_request_store_is_one_line_never_a_traceback(
    ledger: tuple[FakeOpenAI, Path, Path], tmp_path: Path, name: str
) -> None:
    server, pristine, samples = ledger
    damage, expected = DAMAGES[name]
    sample = ["sample", GSM8K, "-m", "m", "-n", "2", "--base-url", server.base_url, "-q"]
    commands = [
        sample,
        [*sample, "--dry-run"],
        ["correct", str(samples), "-m", "c", "--batch", "--base-url", server.base_url, "-q"],
        ["batches"],
    ]
    for i, (args, exit_code) in enumerate(zip(commands, expected, strict=True)):
        store = tmp_path / str(i)
        shutil.copytree(pristine, store)
        damage(store / STORE_FILE)
        result = _within_backstop(*args, "--cache-dir", str(store))
        lines = result.stderr.strip().splitlines()
        if exit_code is not ANY:
            assert result.exit_code == exit_code, (args[0], result.stderr)
        assert result.exit_code in (0, 1, 6, EXIT_BATCH_PENDING), (args[0], result.stderr)
        if result.exit_code in (1, 6):
            assert len(lines) == 1, (args[0], result.stderr)
            assert lines[0].startswith(f"Error: {store}"), (args[0], lines[0])
            assert "the request store (" in lines[0], (args[0], lines[0])


# ------------------------------ finding 12: options past what a server takes, names, --html


@pytest.mark.parametrize(
    ("option", "value", "accepted"),
    [
        ("--max-tokens", 2**64, False),
        ("--max-tokens", 2**63, False),
        ("--max-tokens", 2**31, False),
        ("--max-tokens", 2**31 - 1, True),
        ("--seed", 2**64, False),
        ("--seed", -(2**64), False),
        ("--seed", 2**63, False),
        ("--seed", 2**63 - 1, True),
        ("--seed", -(2**63), True),
    ],
)
def test_an_option_no_server_takes_is_a_usage_error(
    fake: FakeOpenAI, option: str, value: int, accepted: bool
) -> None:
    result = run("sample", GSM8K, "-m", "m", option, str(value), "--base-url", fake.base_url,
                 "-q", "--no-cache")  # fmt: skip
    if accepted:
        assert result.exit_code == 0, result.stderr
        assert len(fake.requests) == 10
        return
    assert result.exit_code == 2, result.stderr
    assert f"Error: Invalid value for '{option}'" in result.stderr
    assert f"{value} is not in the range" in result.stderr
    assert fake.requests == []


@pytest.mark.parametrize("where", ["name", "path"])
def test_a_prompt_name_no_file_system_takes_is_one_line(fake: FakeOpenAI, where: str) -> None:
    name = "x" * 300 if where == "name" else f"/tmp/{'x' * 300}.txt"
    result = run("sample", GSM8K, "-m", "m", "--prompt", name, "--base-url", fake.base_url)
    assert result.exit_code == 1, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    if where == "name":
        assert result.stderr.startswith(f"Error: unknown prompt '{name}'; shipped prompts: ")
    else:
        assert result.stderr == f"Error: {name}: cannot read prompt: File name too long\n"
    assert fake.requests == []


@pytest.mark.parametrize(
    ("path", "code", "why"),
    [("/dev/full", 6, "No space left on device"), ("/no/such/dir/x.html", 1, "No such file")],
)
def test_stats_html_that_cannot_be_written_is_one_line(path: str, code: int, why: str) -> None:
    result = run("stats", str(DATA / "golden" / "gsm8k.sample.jsonl"), "--html", path, "-q")
    assert result.exit_code == code, result.stderr
    assert result.stderr.startswith(f"Error: {path}: cannot write: {why}")
    assert result.stderr.count("\n") == 1
