"""Malformed input, generated: for every command, 1,000 bad rows made by breaking real records
(fields deleted or of the wrong type, broken lines, huge numbers, deep nesting, lone
surrogates). None may crash the command: without --skip-bad-rows the first bad row stops it with
exit 1 and one `file:line` line on stderr; with --skip-bad-rows every bad row is exactly one
reject line naming its place, and the good rows around them are still processed."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DATA, EXAMPLES, endpoint, load_jsonl, run
from tests.fake_openai import FakeOpenAI
from tests.mistake_models import MistakeModels

GOLDEN = DATA / "golden"
ROWS = 1000
BAD_INPUT_REASONS = {
    "bad_json",
    "missing_field",
    "bad_row",
    "bad_gold",
    "unknown_task",
    "bad_record",
}

# Values no field of any record takes where a text, a list of texts or an object is required.
WRONG = [None, 0, -1, 1.5, True, [], {}, [1, 2], {"a": 1}]

# Whole lines that are not a record (raw bytes, written as they are).
BROKEN_LINES: list[bytes] = [
    b"{not json",
    b'{"question": "q", ',
    b"[1, 2, 3]",
    b"12",
    b'"just text"',
    b"null",
    b"\xff\xfe{}",
    b'{"a": ' + b"1" * 5000 + b"}",
    b"[" * 100_000,
    b'{"question": "\\ud800 half a character", "answer": "#### 3"}',
]


def _set(row: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(row))
    *parents, last = path.split(".")
    target = out
    for name in parents:
        target = target[name]
    if value is _DELETE:
        target.pop(last, None)
    else:
        target[last] = value
    return out


_DELETE = object()
Breaker = Callable[[random.Random], bytes]


def _field_breaker(
    bases: list[dict[str, Any]], paths: dict[str, list[Any]]
) -> Callable[[random.Random], bytes]:
    """A bad row: a real record with one field deleted or given a value it cannot take."""

    def make(rng: random.Random) -> bytes:
        base = rng.choice(bases)
        usable = [p for p in paths if p.split(".")[0] in base]
        path = rng.choice(usable)
        value = rng.choice(paths[path])
        return json.dumps(_set(base, path, value)).encode()

    return make


def _commands() -> dict[str, tuple[list[str], list[dict[str, Any]], Breaker]]:
    problems = load_jsonl(EXAMPLES / "gsm8k.jsonl") + load_jsonl(DATA / "gsm8k_train_slice.jsonl")
    samples = load_jsonl(GOLDEN / "gsm8k.sample.jsonl")[:40]
    correct_out = load_jsonl(GOLDEN / "gsm8k.correct.jsonl")[:60]
    corrections = [r for r in correct_out if "correction_id" in r]
    problem_fields: dict[str, list[Any]] = {
        "question": [_DELETE, None, 0, [], {}, "", "   ", True],
        # A gold no int holds (10,000 digits) is a bad gold, as is one that is no number.
        "answer": [_DELETE, None, [], {}, True, "", "#### many", "#### " + "9" * 10_000],
        "task": ["chess", 3, []],
    }
    sample_fields: dict[str, list[Any]] = {
        name: [_DELETE, *WRONG] for name in ("sample_id", "task", "question", "gold", "verdict")
    } | {
        "steps": [_DELETE, None, 0, "a step", [1], {}],
        "verdict": ["great", [], 0],
        "meta": [0, "m", [1]],
        "meta.usage": [{"prompt_tokens": -1}, {"completion_tokens": "9"}, [1]],
        "meta.seed": [1.5, "7"],
        "response": [0, [], {}],
        "pred": [0, [], {}],
    }
    correction_fields: dict[str, list[Any]] = {
        name: [_DELETE, *WRONG] for name in ("correction_id", "task", "question", "gold", "verdict")
    } | {
        "corrected_steps": [_DELETE, None, 0, "a step", [1], {}],
        "original": [0, [], "x"],
        "original.steps": [_DELETE, 0, "x", [2]],
        "original.verdict": ["great", 0],
        "incorrect_step": ["3", 2.5, [], True],
        "corrected_from": ["1", 1.5],
        "elided": ["yes", 1, []],
        "meta.finish_reason": [1, []],
    }
    graded_fields: dict[str, list[Any]] = {
        "response": [_DELETE, None, 0, [], {}],
        "gold": [[], {}, True],
        "task": ["chess"],
    }
    rejects = load_jsonl(GOLDEN / "gsm8k.filter.rejects.jsonl")[:20]
    training = load_jsonl(GOLDEN / "gsm8k.filter.jsonl")[:20]
    reject_fields: dict[str, list[Any]] = {"reason": [None, 0, []], "record": [0, "r", [1]]}
    training_fields: dict[str, list[Any]] = {
        "prompt": [0, [], None],
        "completion": [_DELETE, 0, []],
    }

    def stats_breaker(rng: random.Random) -> bytes:
        kind = rng.randrange(4)
        if kind == 0:
            return _field_breaker(samples, sample_fields)(rng)
        if kind == 1:
            return _field_breaker(corrections, correction_fields)(rng)
        if kind == 2:
            return _field_breaker(rejects, reject_fields)(rng)
        return _field_breaker(training, training_fields)(rng)

    def filter_breaker(rng: random.Random) -> bytes:
        if rng.random() < 0.3:
            return json.dumps({"question": "q", "answer": "#### 1"}).encode()  # no kind
        if rng.random() < 0.5:
            return _field_breaker(samples, sample_fields)(rng)
        return _field_breaker(corrections, correction_fields)(rng)

    return {
        "sample": (["-m", "m"], problems, _field_breaker(problems, problem_fields)),
        "inject": ([], problems, _field_breaker(problems, problem_fields)),
        "correct": (["-m", "m"], samples, _field_breaker(samples, sample_fields)),
        "grade": (["--task", "gsm8k"], samples, _field_breaker(samples, graded_fields)),
        "filter": ([], correct_out, filter_breaker),
        "export": (["-f", "sharegpt"], correct_out, filter_breaker),
        "stats": ([], samples, stats_breaker),
        "analyze": (["-m", "m"], samples, _field_breaker(samples, sample_fields)),
        "art ask": (["-m", "m"], samples, _field_breaker(samples, sample_fields)),
    }


COMMANDS = _commands()
ENGINE = {"sample", "correct", "analyze", "art ask"}


def _write(
    path: Path, good: list[dict[str, Any]], bad: list[bytes], rng: random.Random
) -> dict[int, bytes]:
    """Good and bad rows interleaved; returns {line number: bad row}."""
    lines: list[bytes] = [json.dumps(r).encode() for r in good]
    bad_at: dict[int, bytes] = {}
    for row in bad:
        lines.insert(rng.randrange(len(lines) + 1), row)
    with path.open("wb") as handle:
        for lineno, line in enumerate(lines, 1):
            handle.write(line + b"\n")
            if line in bad:
                bad_at[lineno] = line
    return bad_at


def _bad_rows(command: str, rng: random.Random) -> list[bytes]:
    breaker = COMMANDS[command][2]
    rows = [rng.choice(BROKEN_LINES) if rng.random() < 0.1 else breaker(rng) for _ in range(ROWS)]
    return rows


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_bad_row_is_set_aside_once_with_its_place(
    command: str, fake: FakeOpenAI, tmp_path: Path
) -> None:
    rng = random.Random(f"fuzz-{command}")
    extra, good, _ = COMMANDS[command]
    bad = _bad_rows(command, rng)
    path = tmp_path / "in.jsonl"
    bad_at = _write(path, good[:10], bad, rng)
    rejects = tmp_path / "rejects.jsonl"
    args = [*command.split(), str(path), *extra, "-q"]
    if command != "stats":
        args += ["--skip-bad-rows", "--rejects", str(rejects)]
    if command in ENGINE:
        args += endpoint(fake)
        fake.responder = MistakeModels(fake.responder)  # type: ignore[arg-type]
    result = run(*args)
    if command == "stats":  # stats has no --skip-bad-rows: the first bad row stops it
        first = min(bad_at)
        assert result.exit_code == 1
        assert result.stderr.startswith(f"Error: {path}:{first}: ")
        assert result.stderr.count("\n") == 1
        return
    assert result.exit_code in (0, 4), result.stderr
    assert "Traceback" not in result.stderr
    written = [json.loads(line) for line in rejects.read_text(encoding="utf-8").splitlines()]
    bad_rejects = [r for r in written if r["reason"] in BAD_INPUT_REASONS]
    assert len(bad_rejects) == len(bad_at) == ROWS
    places = sorted(int(r["detail"].split(":", 2)[1]) for r in bad_rejects)
    assert places == sorted(bad_at)
    assert all(r["detail"].startswith(f"{path}:") for r in bad_rejects)
    assert all("\n" not in r["detail"] for r in bad_rejects)
    if command in ENGINE:  # no bad row reached the server; the good ones did
        assert 0 < len(fake.requests) <= 10 * 2


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_bad_row_stops_the_command_with_one_line(
    command: str, fake: FakeOpenAI, tmp_path: Path
) -> None:
    rng = random.Random(f"stop-{command}")
    extra = COMMANDS[command][0]
    rows = _bad_rows(command, rng)[:40] + BROKEN_LINES
    for i, row in enumerate(rows):
        path = tmp_path / f"bad{i}.jsonl"
        path.write_bytes(b"\n" + row + b"\n")
        args = [*command.split(), str(path), *extra, "-q"]
        if command in ENGINE:
            args += endpoint(fake)
            fake.responder = MistakeModels(fake.responder)  # type: ignore[arg-type]
        result = run(*args)
        assert result.exit_code == 1, (row[:200], result.stderr)
        assert result.stdout == ""
        assert result.stderr.startswith(f"Error: {path}:2: "), result.stderr
        assert result.stderr.count("\n") == 1, result.stderr
    assert fake.requests == []
