"""A re-run is served from the request store and the grades kept beside it: its output is
byte for byte a fresh run's, and a new grader version grades again."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from lemagen.math import grading
from lemagen.math.gradebook import GRADES_FILE
from tests.conftest import EXAMPLES, endpoint, run
from tests.fake_openai import FakeOpenAI

PROBLEMS = [EXAMPLES / "gsm8k.jsonl", EXAMPLES / "math.jsonl"]


def sample(fake: FakeOpenAI, problems: Path, cache: Path) -> list[str]:
    """`sample --keep all` output lines, sorted (rows are written as they finish)."""
    result = run(
        "sample", str(problems), "-m", "reasoner", "-n", "3", "--seed", "7", "--keep", "all",
        "--cache-dir", str(cache), "--concurrency", "4", *endpoint(fake),
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    return sorted(result.stdout.splitlines())


@pytest.mark.parametrize("problems", PROBLEMS, ids=["gsm8k", "math"])
def test_a_resumed_run_writes_what_a_fresh_run_writes(
    fake: FakeOpenAI, tmp_path: Path, problems: Path
) -> None:
    lines = problems.read_text(encoding="utf-8").splitlines(keepends=True)
    most = tmp_path / "most.jsonl"
    most.write_text("".join(lines[:-3]), encoding="utf-8")
    fresh = sample(fake, problems, tmp_path / "fresh")
    assert len(fresh) >= 2 * len(lines)  # most of the 3 samples of each problem are kept
    sent = len(fake.requests)
    sample(fake, most, tmp_path / "resumed")  # interrupted: the last 3 problems never sent
    assert len(fake.requests) == sent + len(lines) - 3
    assert sample(fake, problems, tmp_path / "resumed") == fresh  # the rest sent, all written
    assert len(fake.requests) == sent + len(lines)
    assert sample(fake, problems, tmp_path / "resumed") == fresh  # nothing left to send
    assert len(fake.requests) == sent + len(lines)


def test_grades_are_kept_until_the_grader_version_changes(
    fake: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    fresh = sample(fake, PROBLEMS[0], cache)
    book = cache / GRADES_FILE
    with sqlite3.connect(book) as conn:
        kept = conn.execute("SELECT count(*) FROM grades").fetchone()[0]
        samples = [json.loads(line) for line in fresh]
        assert kept == len({(s["id"], s["response"]) for s in samples}) >= len(fresh) // 2
        conn.execute("UPDATE grades SET pred = 'kept', extracted_by = 'kept'")
    conn.close()
    # The kept grades are used as they are: nothing is checked again.
    again = sample(fake, PROBLEMS[0], cache)
    assert len(again) == len(fresh)
    assert all('"pred":"kept","extracted_by":"kept"' in line for line in again)
    # A new grader version checks everything again (and keeps those grades too).
    monkeypatch.setattr(grading, "GRADER_VERSION", grading.GRADER_VERSION + 1)
    assert sample(fake, PROBLEMS[0], cache) == fresh
    with sqlite3.connect(book) as conn:
        assert conn.execute("SELECT count(*) FROM grades").fetchone()[0] == 2 * kept
    conn.close()
