"""Blank and whitespace-only lines in JSONL input, through every command that reads JSONL: they
are skipped (not bad rows), and the `file:line` of an error still counts them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DATA, EXAMPLES, endpoint, load_jsonl, records, run, write_jsonl
from tests.fake_openai import FakeOpenAI

COMMANDS = ["sample", "correct", "filter", "grade", "inject", "export", "stats"]
BLANKS = ["\n", "   \n", "\t\n", "\r\n", " \t \r\n", "\n"]


def case(command: str, fake: FakeOpenAI, tmp_path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Input rows for `command` (real GSM8K / MATH-500 problems) and its options."""
    gsm8k = load_jsonl(EXAMPLES / "gsm8k.jsonl")[:3]
    if command == "sample":
        return gsm8k, ["-m", "r", "-n", "2", "--keep", "all", *endpoint(fake)]
    if command == "correct":
        problems = write_jsonl(tmp_path / "problems.jsonl", gsm8k)
        sampled = run("sample", str(problems), "-m", "r", "-n", "2", "--keep", "all",
                      *endpoint(fake))  # fmt: skip
        return records(sampled), ["-m", "c", *endpoint(fake)]
    if command == "grade":
        rows = load_jsonl(DATA / "math500_slice.jsonl")[:3]
        responses = ["So it is $\\boxed{(3, \\pi/2)}$.", "The answer is $p + q$.", "No idea."]
        return [{**r, "response": text} for r, text in zip(rows, responses, strict=True)], ["-q"]
    slice_ = load_jsonl(DATA / "gsm8k_train_slice.jsonl")[:6]
    if command == "inject":
        return slice_, ["--per-question", "2", "-q"]
    problems = write_jsonl(tmp_path / "slice.jsonl", slice_)
    injected = records(run("inject", str(problems), "--per-question", "2", "-q"))
    args = {"filter": ["-q"], "export": ["-f", "alpaca", "-q"], "stats": ["--json", "-q"]}
    return injected, args[command]


def with_blanks(rows: list[dict[str, Any]]) -> str:
    """The rows as JSONL with blank and whitespace-only lines (LF and CRLF) before, between and
    after them, the last one without a newline."""
    text = "\n"
    for i, row in enumerate(rows):
        text += json.dumps(row) + "\n" + BLANKS[i % len(BLANKS)] * (1 + i % 2)
    return text + "\n  \t"


def lines(text: str) -> list[str]:
    return sorted(line for line in text.splitlines() if line.strip())  # rows finish in any order


@pytest.mark.parametrize("command", COMMANDS)
def test_blank_lines_are_skipped(command: str, fake: FakeOpenAI, tmp_path: Path) -> None:
    rows, args = case(command, fake, tmp_path)
    assert len(rows) >= 3
    clean = write_jsonl(tmp_path / "clean.jsonl", rows)
    blank = tmp_path / "blank.jsonl"
    blank.write_text(with_blanks(rows), encoding="utf-8")
    assert blank.read_text(encoding="utf-8").count("\n") > 2 * len(rows)

    expected = run(command, str(clean), *args)
    assert expected.exit_code == 0, expected.stderr
    assert len(lines(expected.stdout)) >= 1
    from_file = run(command, str(blank), *args)
    assert from_file.exit_code == 0, from_file.stderr
    assert lines(from_file.stdout) == lines(expected.stdout)
    from_stdin = run(command, "-", *args, input=with_blanks(rows))
    assert from_stdin.exit_code == 0, from_stdin.stderr
    assert lines(from_stdin.stdout) == lines(expected.stdout)

    if command != "stats":  # stats has no --skip-bad-rows: any bad row stops it
        # Not set aside as bad rows either: the same rows set aside as from the clean file.
        skip = ["--skip-bad-rows", "--rejects"]
        clean_rejects, blank_rejects = tmp_path / "clean_rejects", tmp_path / "blank_rejects"
        assert run(command, str(clean), *args, *skip, str(clean_rejects)).exit_code == 0
        skipping = run(command, str(blank), *args, *skip, str(blank_rejects))
        assert skipping.exit_code == 0, skipping.stderr
        assert lines(skipping.stdout) == lines(expected.stdout)
        assert lines(blank_rejects.read_text()) == lines(clean_rejects.read_text())


@pytest.mark.parametrize("command", COMMANDS)
def test_error_line_numbers_count_blank_lines(
    command: str, fake: FakeOpenAI, tmp_path: Path
) -> None:
    rows, args = case(command, fake, tmp_path)
    good = json.dumps(rows[0])
    path = tmp_path / "bad_json.jsonl"
    path.write_text(f"{good}\n  \t\n{{oops\n", encoding="utf-8")  # the third physical line
    result = run(command, str(path), *args)
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"Error: {path}:3: invalid JSON: Expecting property name enclosed in double quotes "
        "(column 2)"
    ]

    path = tmp_path / "bad_record.jsonl"  # read fine, refused by the command: line 5
    path.write_text(f"\n{good}\n\r\n \n{json.dumps({'x': 1})}\n\n", encoding="utf-8")
    result = run(command, str(path), *args)
    assert result.exit_code == 1
    (message,) = result.stderr.strip().splitlines()
    assert message.startswith(f"Error: {path}:5: "), message
