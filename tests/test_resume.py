"""A re-run is served from the request store and the grades kept beside it: its output is
byte for byte a fresh run's, and other grading code grades again."""

from __future__ import annotations

import ast
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from lemagen.engine.store import STORE_FILE
from lemagen.math import grading
from lemagen.math.gradebook import GRADES_FILE, GradeBook
from lemagen.math.grading import Grade, Grader
from lemagen.records.rows import Encoded
from lemagen.stage import base, templates
from lemagen.stage.rowbook import ROWS_FILE, Kept, pack, unpack
from tests.conftest import EXAMPLES, endpoint, run
from tests.correctors import Corrector
from tests.fake_openai import Answer, FakeOpenAI, MathTutor, Reply

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


def edited_grading(tmp_path: Path, module: str | None) -> str:
    """`grader_digest` of a copy of lemagen.math with one byte of `module` changed (none:
    an exact copy)."""
    copy = tmp_path / f"math-{module}"
    shutil.copytree(Path(grading.__file__).parent, copy)
    if module is not None:
        source = bytearray((copy / module).read_bytes())
        source[len(source) // 2] ^= 1
        (copy / module).write_bytes(bytes(source))
    return grading.grader_digest(copy)


def test_the_grading_digest_follows_every_byte_of_the_grading_code(tmp_path: Path) -> None:
    """The grade book's key changes with any edit of a module that decides a verdict, so no
    grade of other code is served; an exact copy keeps it."""
    assert edited_grading(tmp_path, None) == grading.grader_digest()
    book = GradeBook(tmp_path / "cache")
    item = ("math", "\\frac{1}{2}", "so $\\boxed{0.5}$")
    book.add(item, Grade("0.5", "correct", "boxed"))
    book.flush()
    book.close()
    digests = {grading.grader_digest()}
    for module in grading.GRADING_MODULES:
        edited = edited_grading(tmp_path, module)
        assert edited not in digests
        digests.add(edited)
        stale = GradeBook(tmp_path / "cache", grader=edited)
        assert stale.get_many([item]) == {}
        stale.close()
    same = GradeBook(tmp_path / "cache")
    assert same.get_many([item]) == {item: Grade("0.5", "correct", "boxed")}
    same.close()


def test_the_grading_modules_include_every_module_they_import() -> None:
    """A module of lemagen.math that the grading code imports decides verdicts too."""
    here = Path(grading.__file__).parent

    def imported(node: ast.AST) -> list[str]:
        if isinstance(node, ast.Import):
            return [alias.name for alias in node.names]
        if isinstance(node, ast.ImportFrom) and node.module == "lemagen.math":
            return [f"lemagen.math.{alias.name}" for alias in node.names]
        if isinstance(node, ast.ImportFrom):
            return [node.module or ""]
        return []

    modules = {
        name.removeprefix("lemagen.math.") + ".py"
        for module in grading.GRADING_MODULES
        for node in ast.walk(ast.parse((here / module).read_text(encoding="utf-8")))
        for name in imported(node)
        if name.startswith("lemagen.math.")
    }
    assert "answers.py" in modules  # grading's own import is seen
    assert modules <= set(grading.GRADING_MODULES)


def test_grades_are_kept_until_the_grading_code_changes(
    fake: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Grades that needed the symbolic checker are kept (MATH answers that are not equal as
    written); the rest are graded again, which costs less than looking them up."""
    cache = tmp_path / "cache"
    fresh = sample(fake, PROBLEMS[1], cache)
    book = cache / GRADES_FILE
    samples = [json.loads(line) for line in fresh]
    with sqlite3.connect(book) as conn:
        kept = conn.execute("SELECT count(*) FROM grades").fetchone()[0]
        assert 0 < kept < len({(s["id"], s["response"]) for s in samples})
        conn.execute("UPDATE grades SET pred = 'kept', extracted_by = 'kept'")
    conn.close()
    # The kept grades are used as they are (with the finished rows gone): those answers are
    # not checked again.
    (cache / ROWS_FILE).unlink()
    again = sample(fake, PROBLEMS[1], cache)
    assert len(again) == len(fresh)
    used = sum('"pred":"kept","extracted_by":"kept"' in line for line in again)
    assert 0 < used < len(again)
    # Other grading code checks everything again (and keeps those grades too).
    edited = edited_grading(tmp_path, "answers.py")
    monkeypatch.setattr(grading, "grader_digest", lambda: edited)
    (cache / ROWS_FILE).unlink()
    assert sample(fake, PROBLEMS[1], cache) == fresh
    with sqlite3.connect(book) as conn:
        assert conn.execute("SELECT count(*) FROM grades").fetchone()[0] == 2 * kept
    conn.close()


def test_no_grade_is_kept_that_needed_no_symbolic_check(fake: FakeOpenAI, tmp_path: Path) -> None:
    """GSM8K answers are numbers: graded again on a re-run, never looked up."""
    cache = tmp_path / "cache"
    assert sample(fake, PROBLEMS[0], cache)
    with sqlite3.connect(cache / GRADES_FILE) as conn:
        assert conn.execute("SELECT count(*) FROM grades").fetchone()[0] == 0
    conn.close()


# ---------------------------------------------------------------- finished rows kept


def sample_run(
    fake: FakeOpenAI, problems: Path, cache: Path, *extra: str
) -> tuple[list[str], list[str], str]:
    """`sample` with --rejects: sorted output lines, sorted reject lines, the summary."""
    rejects = cache.parent / f"rejects-{cache.name}.jsonl"
    result = run(
        "sample", str(problems), "-m", "reasoner", "-n", "3", "--seed", "7",
        "--cache-dir", str(cache), "--concurrency", "4", "--base-url", fake.base_url,
        "--rejects", str(rejects), *extra,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    summary = result.stderr.strip().splitlines()[-1]
    return sorted(result.stdout.splitlines()), sorted(rejects.read_text().splitlines()), summary


def kept_rows(cache: Path) -> dict[bytes, Kept]:
    with sqlite3.connect(cache / ROWS_FILE) as conn:
        found = {key: unpack(blob) for key, blob in conn.execute("SELECT key, entry FROM rows")}
    conn.close()
    return found


def tamper(cache: Path) -> str:
    """Every kept row's records get `"tampered":true`: what a run that writes kept rows as
    they are shows. Returns the marker."""
    with sqlite3.connect(cache / ROWS_FILE) as conn:
        for key, blob in list(conn.execute("SELECT key, entry FROM rows")):
            kept = unpack(blob)
            lines = [
                Encoded('{"tampered":true,' + line.text[1:], line.reason, line.about)
                for line in kept.lines
            ]
            new = pack(Kept(kept.keys, kept.sources, lines, kept.counts))
            conn.execute("UPDATE rows SET entry = ? WHERE key = ?", (new, key))
    conn.close()
    return '{"tampered":true,'


def test_a_rerun_writes_each_finished_row_as_it_was(fake: FakeOpenAI, tmp_path: Path) -> None:
    problems = PROBLEMS[1]  # MATH: graded by Math-Verify
    tutor = fake.responder

    def cut(prompt: str, n: int) -> list[Reply]:  # every third sample runs out of tokens
        return [
            (text, "length" if i == 2 else end) for i, (text, end) in enumerate(tutor(prompt, n))
        ]

    fake.responder = cut
    cache = tmp_path / "cache"
    fresh, fresh_rejects, _ = sample_run(fake, problems, cache, "--keep", "all")
    sent = len(fake.requests)
    rows = len(problems.read_text(encoding="utf-8").splitlines())
    assert len(kept_rows(cache)) == rows
    assert len(fresh) == 2 * rows  # both kinds of line are kept and written again
    assert len(fresh_rejects) == rows
    # Served from the store with the rows rebuilt, then with the kept rows: the same lines,
    # the same summary, nothing sent.
    copy = tmp_path / "copy"
    shutil.copytree(cache, copy)
    (copy / ROWS_FILE).unlink()
    rebuilt = sample_run(fake, problems, copy, "--keep", "all")
    replayed = sample_run(fake, problems, cache, "--keep", "all")
    assert rebuilt == replayed
    assert replayed[:2] == (fresh, fresh_rejects)
    assert f"{3 * rows} samples from the request store" in replayed[2]
    assert len(fake.requests) == sent
    # The kept lines are what a re-run writes (not rebuilt behind them).
    marker = tamper(cache)
    again, again_rejects, _ = sample_run(fake, problems, cache, "--keep", "all")
    assert all(line.startswith(marker) for line in again + again_rejects)


def test_kept_rows_follow_every_option_that_changes_a_record(
    fake: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    problems = PROBLEMS[0]
    cache = tmp_path / "cache"
    sample_run(fake, problems, cache, "--keep", "all")
    marker = tamper(cache)
    sent = len(fake.requests)
    # Another --keep, --thinking or checker is another row: made from the store, not the book.
    for option, other in (
        (["--keep", "wrong"], tmp_path / "wrong"),
        (["--keep", "all", "--thinking", "drop"], tmp_path / "drop"),
    ):
        made = sample_run(fake, problems, cache, *option)
        assert not any(marker in line for line in made[0])
        assert made[:2] == sample_run(fake, problems, other, *option)[:2]
    edited = edited_grading(tmp_path, "grading.py")
    monkeypatch.setattr(grading, "grader_digest", lambda: edited)
    made = sample_run(fake, problems, cache, "--keep", "all")
    assert made[0]
    assert not any(marker in line for line in made[0])
    monkeypatch.undo()
    # Another prompt (--seed changes every call's identity) asks the server again.
    sample_run(fake, problems, cache, "--keep", "all", "--seed", "8")
    assert len(fake.requests) > sent
    assert all(line.startswith(marker) for line in sample_run(fake, problems, cache, "--keep",
                                                              "all")[0])  # fmt: skip


def test_a_kept_row_needs_its_samples_in_the_store(fake: FakeOpenAI, tmp_path: Path) -> None:
    problems = PROBLEMS[0]
    cache = tmp_path / "cache"
    fresh = sample_run(fake, problems, cache, "--keep", "all")
    marker = tamper(cache)
    rows = len(problems.read_text(encoding="utf-8").splitlines())
    sent = len(fake.requests)
    (cache / STORE_FILE).unlink()  # the store is gone, the row book stays
    again = sample_run(fake, problems, cache, "--keep", "all")
    assert len(fake.requests) == sent + rows  # asked for again: nothing came from the book
    assert not any(marker in line for line in again[0])
    assert again[:2] == fresh[:2]  # the loopback server answers the same again


def test_a_row_with_a_failed_call_is_not_kept(fake: FakeOpenAI, tmp_path: Path) -> None:
    problems = PROBLEMS[0]
    first = json.loads(problems.read_text(encoding="utf-8").splitlines()[0])["question"]

    def refuse(body: dict[str, Any]) -> Answer | None:
        text = json.dumps(body["messages"])
        return (400, {"error": {"message": "no"}}) if json.dumps(first)[1:-1] in text else None

    fake.rule = refuse
    cache = tmp_path / "cache"
    result = run(
        "sample", str(problems), "-m", "reasoner", "-n", "3", "--seed", "7", "--keep", "all",
        "--cache-dir", str(cache), *endpoint(fake),
    )  # fmt: skip
    assert result.exit_code == 4
    rows = len(problems.read_text(encoding="utf-8").splitlines())
    assert len(kept_rows(cache)) == rows - 1
    fake.rule = None
    sent = len(fake.requests)
    resumed = sample(fake, problems, cache)
    assert len(fake.requests) == sent + 1  # the failed row only, tried again
    assert resumed == sample(fake, problems, tmp_path / "fresh")
    assert len(kept_rows(cache)) == rows


def test_kept_rows_never_hold_the_api_key(
    fake: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model that echoes the key, an input row that holds it: the lines kept are the
    redacted lines written."""
    fake.echo_auth = "200"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-echoed-secret-5678")
    problems = tmp_path / "problems.jsonl"
    lines = PROBLEMS[0].read_text(encoding="utf-8").splitlines()
    row = {**json.loads(lines[0]), "note": "sk-echoed-secret-5678"}
    problems.write_text("\n".join([json.dumps(row), *lines[1:]]) + "\n", encoding="utf-8")
    cache = tmp_path / "cache"
    fresh = sample(fake, problems, cache)
    assert all("Bearer [redacted]" in line for line in fresh)
    assert sum('"note":"[redacted]"' in line for line in fresh) == 3
    assert len(kept_rows(cache)) == len(lines)
    for path in cache.glob(ROWS_FILE + "*"):  # the file, and its log if one is left
        assert b"sk-echoed-secret" not in path.read_bytes()
    assert sample(fake, problems, cache) == fresh


def correct_run(
    fake: FakeOpenAI, samples: Path, cache: Path, *extra: str
) -> tuple[list[str], list[str], str]:
    """`correct` with --rejects: sorted output lines, sorted reject lines, the summary."""
    rejects = cache.parent / f"correct-rejects-{cache.name}.jsonl"
    result = run(
        "correct", str(samples), "-m", "corrector", "--cache-dir", str(cache),
        "--base-url", fake.base_url, "--rejects", str(rejects), *extra,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    summary = result.stderr.strip().splitlines()[-1]
    return sorted(result.stdout.splitlines()), sorted(rejects.read_text().splitlines()), summary


def sampled(fake: FakeOpenAI, tmp_path: Path) -> Path:
    """Samples of both datasets, right and wrong ones (`correct` passes the right ones on)."""
    path = tmp_path / "samples.jsonl"
    lines = [line for problems in PROBLEMS for line in sample(fake, problems, tmp_path / "s")]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_correct_rerun_writes_each_finished_row_as_it_was(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    samples = sampled(fake, tmp_path)
    wrong = sum('"verdict":"wrong"' in line for line in samples.read_text().splitlines())
    cache = tmp_path / "cache"
    fresh = correct_run(fake, samples, cache)
    sent = len(fake.requests)
    assert len(kept_rows(cache)) == wrong > 0  # the wrong samples; passed-on ones are not kept
    copy = tmp_path / "copy"
    shutil.copytree(cache, copy)
    (copy / ROWS_FILE).unlink()
    rebuilt = correct_run(fake, samples, copy)
    replayed = correct_run(fake, samples, cache)
    assert rebuilt == replayed
    assert replayed[:2] == fresh[:2]
    assert len(fake.requests) == sent
    marker = tamper(cache)
    again = correct_run(fake, samples, cache)[0]
    assert sum(line.startswith(marker) for line in again) == len(fresh[0]) - (
        len(samples.read_text().splitlines()) - wrong
    )  # every correction, none of the samples passed on
    # Another sampling parameter is another call: asked, not taken from the book.
    other = correct_run(fake, samples, cache, "--temperature", "0.3")[0]
    assert not any(marker in line for line in other)
    assert len(fake.requests) == sent + wrong


def test_a_correct_row_asked_again_is_not_kept(fake: FakeOpenAI, tmp_path: Path) -> None:
    samples = sampled(fake, tmp_path)
    assert isinstance(fake.responder, MathTutor)
    fake.responder = Corrector(fake.responder, "lema", first="unparseable")
    cache = tmp_path / "cache"
    first = correct_run(fake, samples, cache, "--reask", "1")
    assert "asked again" in first[2]
    assert kept_rows(cache) == {}  # every row's first reply was asked again
    assert correct_run(fake, samples, cache, "--reask", "1")[:2] == first[:2]


# ---------------------------------------------------------------- what a kept row depends on


def test_a_correct_row_whose_check_timed_out_is_not_kept(
    fake: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    samples = sampled(fake, tmp_path)
    real = Grader.grade

    def out_of_time(self: Grader, task: str, gold: str, text: str) -> Grade:
        return Grade(real(self, task, gold, text).pred, "timeout")

    monkeypatch.setattr(Grader, "grade", out_of_time)
    cache = tmp_path / "cache"
    timed_out = correct_run(fake, samples, cache)
    assert any('"verdict":"timeout"' in line for line in timed_out[0])
    assert kept_rows(cache) == {}  # every wrong sample's check ran out of time
    monkeypatch.undo()
    again = correct_run(fake, samples, cache)
    assert not any('"verdict":"timeout"' in line for line in again[0])
    assert again[:2] == correct_run(fake, samples, tmp_path / "fresh")[:2]


def test_a_correct_row_follows_the_prompt_name(fake: FakeOpenAI, tmp_path: Path) -> None:
    """The same prompt text under another name is another record (`meta.prompt`)."""
    samples = sampled(fake, tmp_path)
    text = templates.load("correct.gsm8k").text
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text(text, encoding="utf-8")
    second.write_text(text, encoding="utf-8")
    cache = tmp_path / "cache"
    correct_run(fake, samples, cache, "--prompt", str(first))
    again = correct_run(fake, samples, cache, "--prompt", str(second))[0]
    named = [json.loads(line)["meta"]["prompt"] for line in again if '"correction_id"' in line]
    assert named
    assert set(named) == {str(second)}


def test_other_code_makes_every_row_again(
    fake: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An upgrade (or any edit) of lemagen changes `code_digest`: nothing kept is used."""
    cache = tmp_path / "cache"
    sample_run(fake, PROBLEMS[0], cache, "--keep", "all")
    marker = tamper(cache)
    assert all(line.startswith(marker) for line in sample_run(fake, PROBLEMS[0], cache,
                                                              "--keep", "all")[0])  # fmt: skip
    monkeypatch.setattr(base, "code_digest", lambda: "another lemagen")
    again = sample_run(fake, PROBLEMS[0], cache, "--keep", "all")[0]
    assert again
    assert not any(marker in line for line in again)


def test_a_voted_row_whose_comparison_timed_out_is_not_kept(
    fake: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [json.loads(line) for line in PROBLEMS[0].read_text(encoding="utf-8").splitlines()]
    path = tmp_path / "q.jsonl"
    path.write_text("".join(json.dumps({"question": r["question"]}) + "\n" for r in rows))
    monkeypatch.setattr(Grader, "compare", lambda self, task, gold, pred: "timeout")
    cache = tmp_path / "cache"
    sample_run(fake, path, cache, "--task", "gsm8k", "--gold", "vote", "--keep", "all")
    assert kept_rows(cache) == {}  # no vote could be trusted
    monkeypatch.undo()
    sample_run(fake, path, cache, "--task", "gsm8k", "--gold", "vote", "--keep", "all")
    assert len(kept_rows(cache)) == len(rows)
