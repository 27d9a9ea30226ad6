"""--batch: provider Batch APIs through the loopback server's Files and Batches endpoints."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from lemagen.engine.store import STORE_FILE
from lemagen.errors import EXIT_BATCH_PENDING
from tests.conftest import EXAMPLES, endpoint, run
from tests.fake_batches import FakeBatches
from tests.fake_openai import FakeOpenAI, wait_until
from tests.mistake_models import MistakeModels
from tests.test_crosscheck import Coder
from tests.test_evolve import Evolver
from tests.test_smooth import Smoother

PROBLEMS = EXAMPLES / "gsm8k.jsonl"


@pytest.fixture
def batches(fake: FakeOpenAI) -> FakeBatches:
    return FakeBatches.on(fake)


def sample(fake: FakeOpenAI, cache: Path, *extra: str, path: Path = PROBLEMS) -> list[str]:
    return [
        "sample", str(path), "-m", "m", "-n", "2", "--seed", "1", "--keep", "all",
        "--base-url", fake.base_url, "--cache-dir", str(cache), "-q", *extra,
    ]  # fmt: skip


@pytest.mark.parametrize("api", ["chat", "completion"])
def test_submit_exit_then_collect_matches_a_synchronous_run(
    fake: FakeOpenAI, batches: FakeBatches, tmp_path: Path, api: str
) -> None:
    sync = run(*sample(fake, tmp_path / "sync", "--api", api, "--concurrency", "1"))
    assert sync.exit_code == 0, sync.stderr
    sent = len(fake.requests)
    assert sent > 0

    first = run(*sample(fake, tmp_path / "b", "--api", api, "--batch"))
    assert first.exit_code == EXIT_BATCH_PENDING, first.stderr
    assert first.stdout == ""
    assert "re-run the same command" in first.stderr
    assert (batches.uploads, batches.creates) == (1, 1)
    assert len(fake.requests) == sent  # nothing went synchronously
    assert batches.batches[batches.latest()]["request_counts"]["total"] == sent
    endpoints = {"chat": "/v1/chat/completions", "completion": "/v1/completions"}
    assert batches.batches[batches.latest()]["endpoint"] == endpoints[api]

    batches.finish()
    second = run(*sample(fake, tmp_path / "b", "--api", api, "--batch"))
    assert second.exit_code == 0, second.stderr
    assert second.stdout == sync.stdout
    assert second.stdout.count("\n") > 0
    assert (batches.uploads, batches.creates) == (1, 1)
    assert len(fake.requests) == sent


@pytest.mark.parametrize("operation", ["upload", "create", "content"])
def test_a_run_stopped_at_any_step_resumes_without_a_second_upload_or_batch(
    fake: FakeOpenAI, batches: FakeBatches, tmp_path: Path, operation: str
) -> None:
    """The run stops (the provider fails, --max-retries 0) before the upload is recorded,
    after the upload and before the create, or with the batch completed but its output not
    downloaded; the same command then picks the job up where it was."""
    cache = tmp_path / "c"
    args = sample(fake, cache, "--batch", "--max-retries", "0")
    if operation == "content":
        assert run(*args).exit_code == EXIT_BATCH_PENDING
        batches.finish()
    batches.fail_next[operation] = 1
    stopped = run(*args)
    assert stopped.exit_code == 3, stopped.stderr
    assert f"injected 500 on {operation}" in stopped.stderr
    expected = {"upload": (0, 0), "create": (1, 0), "content": (1, 1)}[operation]
    assert (batches.uploads, batches.creates) == expected
    again = run(*args)
    if operation != "content":
        assert again.exit_code == EXIT_BATCH_PENDING, again.stderr
        assert batches.batches[batches.latest()]["status"] == "validating"
        batches.step()  # in progress: a re-run finds it running, submits nothing
        assert run(*args).exit_code == EXIT_BATCH_PENDING
        batches.finish()
        again = run(*args)
    assert again.exit_code == 0, again.stderr
    assert (batches.uploads, batches.creates) == (1, 1)
    assert len(fake.requests) == 0
    assert len(again.stdout.splitlines()) == 2 * len(PROBLEMS.read_text().splitlines())
    assert max(batches.paid.values()) == 1


def test_failed_and_expired_lines_go_into_a_new_batch_and_nothing_is_paid_twice(
    fake: FakeOpenAI, batches: FakeBatches, tmp_path: Path
) -> None:
    sync = run(*sample(fake, tmp_path / "sync", "--concurrency", "1"))
    rows = len(sync.stdout.splitlines())
    args = sample(fake, tmp_path / "c", "--batch")
    assert run(*args).exit_code == EXIT_BATCH_PENDING
    first = batches.latest()
    total = batches.batches[first]["request_counts"]["total"]
    assert total >= 3
    broken: set[str] = set()

    def one_error(custom_id: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
        if not broken:
            broken.add(custom_id)
        if custom_id in broken and batches.submitted[custom_id] == 1:
            return 500, {"error": {"message": "server overloaded", "code": "server_error"}}
        return None

    batches.line_error = one_error
    batches.step()
    batches.expire(first, run=2)  # line 1 errors, line 2 runs, the rest expire
    assert batches.batches[first]["status"] == "expired"
    second = run(*args)
    assert second.exit_code == EXIT_BATCH_PENDING, second.stderr
    resubmitted = batches.latest()
    assert resubmitted != first
    assert batches.batches[resubmitted]["request_counts"]["total"] == total - 1
    batches.finish(resubmitted)
    done = run(*args)
    assert done.exit_code == 0, done.stderr
    assert done.stdout == sync.stdout
    assert len(done.stdout.splitlines()) == rows
    assert batches.creates == 2
    paid_ids = [k for k in batches.paid if k.startswith("lemagen-")]
    assert len(paid_ids) == total
    assert set(batches.paid.values()) == {1}  # per custom_id and per request


def test_only_requests_missing_from_the_store_go_into_the_batch(
    fake: FakeOpenAI, batches: FakeBatches, tmp_path: Path
) -> None:
    lines = PROBLEMS.read_text().splitlines(keepends=True)
    half = tmp_path / "half.jsonl"
    half.write_text("".join(lines[:2]))
    cache = tmp_path / "c"
    assert run(*sample(fake, cache, path=half)).exit_code == 0
    assert len(fake.requests) == 2
    assert run(*sample(fake, cache, "--batch")).exit_code == EXIT_BATCH_PENDING
    assert batches.batches[batches.latest()]["request_counts"]["total"] == len(lines) - 2
    sent = [json.loads(x)["body"] for x in batches.contents[batches.files_sent()[0]].splitlines()]
    asked = {json.dumps(b["messages"]) for b in sent}
    assert not asked & {json.dumps(r["body"]["messages"]) for r in fake.requests}


def test_batch_fallback_sync_sends_failed_lines_synchronously(
    fake: FakeOpenAI, batches: FakeBatches, tmp_path: Path
) -> None:
    target: list[str] = []

    def first_fails(custom_id: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
        if not target:
            target.append(custom_id)
        return (
            (500, {"error": {"message": "overloaded", "code": "x"}})
            if custom_id in target
            else None
        )

    batches.line_error = first_fails
    args = sample(fake, tmp_path / "c", "--batch", "--batch-fallback", "sync")
    assert run(*args).exit_code == EXIT_BATCH_PENDING
    batches.finish()
    done = run(*args)
    assert done.exit_code == 0, done.stderr
    assert batches.creates == 1
    assert len(fake.requests) == 1  # the failed line, sent synchronously
    assert len(done.stdout.splitlines()) == 2 * len(PROBLEMS.read_text().splitlines())


def test_lines_that_keep_failing_are_set_aside_after_max_retries(
    fake: FakeOpenAI, batches: FakeBatches, tmp_path: Path
) -> None:
    target: list[str] = []

    def always(custom_id: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
        if not target:
            target.append(custom_id)
        return (
            (500, {"error": {"message": "overloaded", "code": "x"}})
            if custom_id in target
            else None
        )

    batches.line_error = always
    rejects = tmp_path / "rejects.jsonl"
    args = sample(fake, tmp_path / "c", "--batch", "--max-retries", "1", "--rejects", str(rejects))
    for _ in range(2):  # the first batch and one retry
        assert run(*args).exit_code == EXIT_BATCH_PENDING
        batches.finish()
    done = run(*args)
    assert done.exit_code == 4, done.stderr
    assert batches.creates == 2
    assert batches.submitted[target[0]] == 2
    assert len(fake.requests) == 0
    (reject,) = [json.loads(x) for x in rejects.read_text().splitlines()]
    assert reject["reason"] == "request_failed"
    error = reject["record"]["error"]
    assert error == "batch line error: HTTP 500: overloaded (gave up after 2 batches)"


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_a_line_the_provider_refuses_with_a_4xx_is_set_aside_not_resubmitted(
    fake: FakeOpenAI, batches: FakeBatches, tmp_path: Path, status: int
) -> None:
    """The synchronous path never asks again after a 400-class answer; nor does a batch: a new
    batch would be refused the same way, after up to a completion window of waiting."""
    target: list[str] = []

    def refused(custom_id: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
        if not target:
            target.append(custom_id)
        error = {"error": {"message": "bad line", "code": "x"}}
        return (status, error) if custom_id in target else None

    batches.line_error = refused
    rejects = tmp_path / "rejects.jsonl"
    args = sample(fake, tmp_path / "c", "--batch", "--rejects", str(rejects))
    assert run(*args).exit_code == EXIT_BATCH_PENDING
    batches.finish()
    done = run(*args)
    assert done.exit_code == 4, done.stderr
    assert batches.creates == 1  # no second batch
    assert batches.submitted[target[0]] == 1
    assert len(fake.requests) == 0
    (reject,) = [json.loads(x) for x in rejects.read_text().splitlines()]
    assert reject["reason"] == "request_failed"
    assert reject["record"]["error"] == f"batch line error: HTTP {status}: bad line"


def test_wait_polls_until_done_and_reports_progress(
    fake: FakeOpenAI, batches: FakeBatches, tmp_path: Path
) -> None:
    batches.auto = True
    args = [a for a in sample(fake, tmp_path / "c", "--batch", "--wait") if a != "-q"]
    done = run(*args, "--poll-interval", "0")
    assert done.exit_code == 0, done.stderr
    assert batches.retrieves == 3  # in_progress, finalizing, completed
    assert "in_progress, 0/" in done.stderr
    assert "batch requests collected by this run" in done.stderr
    assert len(done.stdout.splitlines()) == 2 * len(PROBLEMS.read_text().splitlines())


@pytest.mark.parametrize("limit", ["requests", "bytes"])
def test_input_files_are_split_at_the_limits(
    fake: FakeOpenAI, batches: FakeBatches, tmp_path: Path, limit: str
) -> None:
    rows = len(PROBLEMS.read_text().splitlines())
    one_line = 0
    if limit == "bytes":  # the size of the longest line: files of one line, or two short ones
        assert run(*sample(fake, tmp_path / "probe", "--batch")).exit_code == EXIT_BATCH_PENDING
        probe = batches.contents[batches.files_sent()[0]].splitlines(keepends=True)
        one_line = max(len(x) for x in probe)
        batches.files.clear()
        batches.batches.clear()
        batches.creates = 0
    value = "2" if limit == "requests" else str(one_line)
    args = sample(fake, tmp_path / "c", "--batch", f"--batch-max-{limit}", value)
    assert run(*args).exit_code == EXIT_BATCH_PENDING
    sizes = sorted(b["request_counts"]["total"] for b in batches.batches.values())
    assert sum(sizes) == rows
    if limit == "requests":
        assert max(sizes) == 2
        assert batches.creates == (rows + 1) // 2
    else:
        assert batches.creates >= rows // 2
        assert all(len(batches.contents[f]) <= one_line for f in batches.files_sent())
    for batch_id in list(batches.batches):
        batches.finish(batch_id)
    assert run(*args).exit_code == 0


def test_batches_lists_and_cancels(fake: FakeOpenAI, batches: FakeBatches, tmp_path: Path) -> None:
    cache = tmp_path / "c"
    args = sample(fake, cache, "--batch")
    assert run(*args).exit_code == EXIT_BATCH_PENDING
    listed = [json.loads(x) for x in run("batches", "--cache-dir", str(cache)).stdout.splitlines()]
    assert len(listed) == 1
    assert listed[0]["batch_id"] == batches.latest()
    assert listed[0]["status"] == "validating"
    assert listed[0]["endpoint"] == "/v1/chat/completions"
    batches.step()
    refreshed = run("batches", "--cache-dir", str(cache), "--refresh").stdout
    assert json.loads(refreshed)["status"] == "in_progress"
    cancel = run("batches", "--cache-dir", str(cache), "cancel", "--all")
    assert cancel.exit_code == 0, cancel.stderr
    assert batches.batches[batches.latest()]["status"] == "cancelling"
    assert run("batches", "--cache-dir", str(cache), "cancel", "nope").exit_code == 2
    # The cancelled batch's requests go into a new batch on the next run.
    assert run(*args).exit_code == EXIT_BATCH_PENDING
    assert batches.creates == 2
    states = [
        json.loads(x)["status"]
        for x in run("batches", "--cache-dir", str(cache)).stdout.splitlines()
    ]
    assert states == ["cancelled", "validating"]


def test_a_store_made_before_batches_is_migrated_in_place_and_keeps_its_samples(
    fake: FakeOpenAI, batches: FakeBatches, tmp_path: Path
) -> None:
    cache = tmp_path / "c"
    assert run(*sample(fake, cache)).exit_code == 0
    sent = len(fake.requests)
    conn = sqlite3.connect(cache / STORE_FILE)  # back to a version 1 store
    conn.executescript(
        "DROP TABLE batch_jobs; DROP TABLE batch_requests; DROP TABLE batch_failures; "
        "DROP TABLE batch_keys; "
        "PRAGMA user_version = 0;"
    )
    conn.close()
    again = run(*sample(fake, cache, "--batch"))
    assert again.exit_code == 0, again.stderr
    assert len(again.stdout.splitlines()) == 2 * len(PROBLEMS.read_text().splitlines())
    assert (len(fake.requests), batches.creates) == (sent, 0)  # every sample came from the store
    conn = sqlite3.connect(cache / STORE_FILE)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
    assert conn.execute("SELECT count(*) FROM batch_jobs").fetchone()[0] == 0
    conn.execute("PRAGMA user_version = 3")  # a store from a newer lemagen is refused
    conn.commit()
    conn.close()
    newer = run(*sample(fake, cache))
    assert newer.exit_code == 1
    assert "made by a newer lemagen (store schema 3" in newer.stderr


@pytest.mark.parametrize("operation", ["upload", "create"])
def test_a_run_killed_while_the_provider_answers_adopts_what_it_made(
    fake: FakeOpenAI, batches: FakeBatches, tmp_path: Path, operation: str
) -> None:
    """kill -9 after the provider made the file (or the batch) and before its answer reached
    lemagen: the re-run finds it (by the file's name, or the batch's input file) and neither
    uploads nor submits again."""
    release = batches.hold[operation] = threading.Event()
    args = [sys.executable, "-m", "lemagen", *sample(fake, tmp_path / "c", "--batch")]
    env = {**os.environ, "LEMAGEN_CACHE_DIR": str(tmp_path / "c")}
    process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: operation in batches.arrived, f"the {operation} request")
        process.kill()
        process.wait(60)
    finally:
        if process.poll() is None:
            process.kill()
        release.set()
        assert process.stdout is not None
        assert process.stderr is not None
        process.stdout.close()
        process.stderr.close()
    assert (batches.uploads, batches.creates) == (1, 1 if operation == "create" else 0)
    del batches.hold[operation]
    again = run(*sample(fake, tmp_path / "c", "--batch"))
    assert again.exit_code == EXIT_BATCH_PENDING, again.stderr
    assert (batches.uploads, batches.creates) == (1, 1)
    batches.finish()
    done = run(*sample(fake, tmp_path / "c", "--batch"))
    assert done.exit_code == 0, done.stderr
    assert (batches.uploads, batches.creates) == (1, 1)
    assert len(done.stdout.splitlines()) == 2 * len(PROBLEMS.read_text().splitlines())


@pytest.mark.parametrize(
    "stage", ["correct", "evolve", "crosscheck", "analyze", "art ask", "smooth", "inject"]
)
def test_every_model_stage_writes_with_batch_what_it_writes_synchronously(
    fake: FakeOpenAI, batches: FakeBatches, tmp_path: Path, stage: str
) -> None:
    """Read from stdin, waited for (--wait): evolve needs two rounds of batches (the created
    questions, then the votes on them), each submitted once."""
    sampled = run(*sample(fake, tmp_path / "s"))
    records_in = sampled.stdout
    if stage in ("evolve", "crosscheck", "smooth"):
        records_in = run("correct", "-m", "c", *endpoint(fake), input=sampled.stdout).stdout
    if stage == "inject":  # a teacher's mistakes in the problems' gold solutions
        records_in = PROBLEMS.read_text()
    options = {
        "correct": ["correct", "-m", "c"],
        "evolve": ["evolve", "-m", "gpt-4o", "--samples", "6", "--seed", "5"],
        "crosscheck": ["crosscheck", "-m", "coder", "--program-timeout", "10"],
        "analyze": ["analyze", "-m", "analyser"],
        "art ask": ["art", "ask", "-m", "asker"],
        "smooth": ["smooth", "-m", "smoother"],
        "inject": ["inject", "-m", "teacher", "--types", "calculation_error", "--seed", "2"],
    }[stage]
    if stage == "evolve":
        fake.responder = Evolver(fake.responder)  # type: ignore[arg-type]
    if stage == "crosscheck":
        fake.responder = Coder(lambda q: "agree")
    if stage in ("analyze", "art ask", "inject"):
        fake.responder = MistakeModels(fake.responder)  # type: ignore[arg-type]
    if stage == "smooth":
        fake.responder = Smoother()
    before = len(fake.requests)
    sync = run(*options, *endpoint(fake), "--cache-dir", str(tmp_path / "a"), "--concurrency",
               "1", input=records_in)  # fmt: skip
    assert sync.exit_code == 0, sync.stderr
    sent = len(fake.requests) - before
    assert sent > 0
    batches.auto = True
    batched = run(*options, *endpoint(fake), "--cache-dir", str(tmp_path / "b"), "--batch",
                  "--wait", "--poll-interval", "0", input=records_in)  # fmt: skip
    assert batched.exit_code == 0, batched.stderr
    # Every line the same, byte for byte; not in the same order: lines are written as rows
    # finish, and rows with nothing to send come back while others are in flight, so their
    # place among the others depends on timing (docs/requests.md promises no order).
    assert sorted(batched.stdout.splitlines()) == sorted(sync.stdout.splitlines())
    assert len(batched.stdout.splitlines()) > 0
    assert len(fake.requests) - before == sent  # nothing more went synchronously
    assert batches.creates == (2 if stage == "evolve" else 1)
    lines = sum(b["request_counts"]["total"] for b in batches.batches.values())
    assert lines == sent
    assert set(batches.paid.values()) == {1}


def test_samples_a_running_batch_asks_for_are_not_asked_for_again(
    fake: FakeOpenAI, batches: FakeBatches, tmp_path: Path
) -> None:
    """-n raised from 2 to 4 while the first batch runs: the second batch asks only for
    samples 2-3, and the run waits for both."""
    cache = tmp_path / "c"
    assert run(*sample(fake, cache, "--batch")).exit_code == EXIT_BATCH_PENDING
    first = batches.latest()
    more = [a if a != "2" else "4" for a in sample(fake, cache, "--batch")]
    assert run(*more).exit_code == EXIT_BATCH_PENDING
    second = batches.latest()
    assert second != first
    bodies = [json.loads(x)["body"] for x in batches.contents[batches.files_sent()[1]].splitlines()]
    rows = len(PROBLEMS.read_text().splitlines())
    assert len(bodies) == rows
    assert {(b["n"], b["seed"]) for b in bodies} == {(2, 3)}  # samples 2-3 (seed 1 + index 2)
    batches.finish(second)
    assert run(*more).exit_code == EXIT_BATCH_PENDING  # the first still runs
    batches.finish(first)
    done = run(*more)
    assert done.exit_code == 0, done.stderr
    sync = run(*[a if a != str(cache) else str(tmp_path / "s") for a in more if a != "--batch"])
    assert len(done.stdout.splitlines()) == len(sync.stdout.splitlines()) > 2 * rows
    assert batches.creates == 2
    assert set(batches.paid.values()) == {1}


def test_no_credential_of_a_base_url_reaches_the_store(
    fake: FakeOpenAI, batches: FakeBatches, tmp_path: Path
) -> None:
    cache = tmp_path / "c"
    secret = fake.base_url.replace("http://", "http://user:hunter2-secret@")
    args = [a if a != fake.base_url else secret for a in sample(fake, cache, "--batch")]
    assert run(*args).exit_code == EXIT_BATCH_PENDING
    batches.finish()
    done = run(*args)
    assert done.exit_code == 0, done.stderr
    assert batches.creates == 1
    listed = json.loads(run("batches", "--cache-dir", str(cache)).stdout)
    assert listed["base_url"] == fake.base_url
    for path in cache.rglob("*"):
        if path.is_file():
            assert b"hunter2" not in path.read_bytes(), path
    no_store = run(*sample(fake, cache, "--batch", "--no-cache"))
    assert no_store.exit_code == 2
    assert "--batch needs the request store" in no_store.stderr


def test_a_line_with_fewer_choices_than_asked_is_completed_by_the_next_batch(
    fake: FakeOpenAI, batches: FakeBatches, tmp_path: Path
) -> None:
    """A server that ignores `n` (one choice a request): the synchronous engine asks again at
    once for the rest; with --batch the next batch asks for them. Both write the same."""
    fake.max_n = 1
    sync = run(*sample(fake, tmp_path / "sync", "--concurrency", "1"))
    assert sync.exit_code == 0, sync.stderr
    args = sample(fake, tmp_path / "c", "--batch")
    rows = len(PROBLEMS.read_text().splitlines())
    for round_ in (1, 2):
        assert run(*args).exit_code == EXIT_BATCH_PENDING
        latest = batches.latest()
        assert batches.batches[latest]["request_counts"]["total"] == rows
        sent = batches.contents[batches.files_sent()[-1]].splitlines()
        asked = {json.loads(x)["body"]["n"] for x in sent}
        assert asked == {3 - round_}  # n=2, then n=1 for the sample each line lacked
        batches.finish(latest)
    done = run(*args)
    assert done.exit_code == 0, done.stderr
    assert done.stdout == sync.stdout
    assert batches.creates == 2


def _blocked_on(path: Path) -> bool:
    """Whether a process waits for a flock on `path` (Linux: /proc/locks marks waiters ->)."""
    inode = f":{path.stat().st_ino} "
    locks = Path("/proc/locks").read_text()
    return any("->" in line and inode in line for line in locks.splitlines())


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="needs Linux /proc/locks")
def test_two_runs_on_one_store_submit_one_batch(
    fake: FakeOpenAI, batches: FakeBatches, tmp_path: Path
) -> None:
    """The second run starts while the first one's create is on its way to the provider: it
    waits for the first to record the batch, then follows that batch."""
    cache = tmp_path / "c"
    release = batches.hold_before["create"] = threading.Event()
    args = [sys.executable, "-m", "lemagen", *sample(fake, cache, "--batch")]
    env = {**os.environ, "LEMAGEN_CACHE_DIR": str(cache)}
    first = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    second = None
    try:
        wait_until(lambda: batches.arrivals["create"] == 1, "the first run's create")
        second = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        wait_until(
            lambda: batches.arrivals["create"] == 2 or _blocked_on(cache / "batches.lock"),
            "the second run to wait for the lock (or to send its own create)",
        )
    finally:
        release.set()
        outcomes = [p.communicate(timeout=120) and p.returncode for p in (first, second) if p]
    assert outcomes == [EXIT_BATCH_PENDING, EXIT_BATCH_PENDING]
    assert (batches.uploads, batches.creates) == (1, 1)


@pytest.mark.parametrize("retries", [0, 1])
def test_a_batch_that_fails_validation_is_resubmitted_or_set_aside(
    fake: FakeOpenAI, batches: FakeBatches, tmp_path: Path, retries: int
) -> None:
    batches.refuse_next = "too many tokens enqueued for this model"
    rejects = tmp_path / "rejects.jsonl"
    args = sample(fake, tmp_path / "c", "--batch", "--max-retries", str(retries),
                  "--rejects", str(rejects))  # fmt: skip
    # The batch fails at once; the run collects it and (retries=1) submits a new one.
    again = run(*args)
    rows = len(PROBLEMS.read_text().splitlines())
    assert batches.batches[sorted(batches.batches)[0]]["status"] == "failed"
    if retries == 0:
        assert again.exit_code == 4, again.stderr
        assert batches.creates == 1
        errors = [json.loads(x)["record"]["error"] for x in rejects.read_text().splitlines()]
        assert len(errors) == rows
        assert set(errors) == {
            "the batch failed: too many tokens enqueued for this model (gave up after 1 batch)"
        }
        return
    assert again.exit_code == EXIT_BATCH_PENDING, again.stderr
    assert batches.creates == 2
    batches.finish()
    done = run(*args)
    assert done.exit_code == 0, done.stderr
    assert len(done.stdout.splitlines()) == 2 * rows
    assert not rejects.read_text()


def test_batch_results_are_booked_at_the_batch_rate_with_their_cached_tokens(
    fake: FakeOpenAI, batches: FakeBatches, tmp_path: Path
) -> None:
    """--price-in 1000 / --price-out 2000 per M: the batch rates are half; cached prompt
    tokens (4 of each request's) are part of the input and priced at the batch input rate."""
    fake.cached_tokens = 4
    prices = ("--price-in", "1000", "--price-out", "2000")
    args = [a for a in sample(fake, tmp_path / "c", "--batch", *prices) if a != "-q"]
    assert run(*args).exit_code == EXIT_BATCH_PENDING
    batches.finish()
    done = run(*args)
    assert done.exit_code == 0, done.stderr
    output = batches.contents[batches.batches[batches.latest()]["output_file_id"]]
    usages = [json.loads(x)["response"]["body"]["usage"] for x in output.splitlines()]
    assert len(usages) == len(PROBLEMS.read_text().splitlines())
    prompt = sum(u["prompt_tokens"] for u in usages)
    completion = sum(u["completion_tokens"] for u in usages)
    cached = sum(u["prompt_tokens_details"]["cached_tokens"] for u in usages)
    assert cached == 4 * len(usages)
    cost = (prompt * 500 + completion * 1000) / 1e6
    assert f"tokens in {prompt} ({cached} cached), out {completion}" in done.stderr
    assert f"cost ${cost:.4f}" in done.stderr
    assert f"({len(usages)} batch requests collected by this run, ${cost:.4f} at the" in done.stderr
    store = sqlite3.connect(tmp_path / "c" / STORE_FILE)
    parts = store.execute("SELECT count(*), sum(cached_tokens) FROM usage_parts").fetchone()
    assert parts[0] > 0
    assert parts[1] == 4 * parts[0]
    store.close()


def test_a_provider_that_cannot_list_files_gets_the_file_again(
    fake: FakeOpenAI, batches: FakeBatches, tmp_path: Path
) -> None:
    args = sample(fake, tmp_path / "c", "--batch", "--max-retries", "0")
    batches.fail_next["upload"] = 1
    assert run(*args).exit_code == 3  # stopped during the upload: the job is "uploading"
    batches.fail_next["list-files"] = 1
    again = run(*args)
    assert again.exit_code == EXIT_BATCH_PENDING, again.stderr
    assert batches.fail_next["list-files"] == 0  # it looked, could not, and uploaded
    assert (batches.uploads, batches.creates) == (1, 1)
