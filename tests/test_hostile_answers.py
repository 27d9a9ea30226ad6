"""No answer a server can send hangs, crashes or mis-files a paid run.

A reply cut at max_tokens can end in half an emoji (a lone surrogate escape, `"\\ud83d"`),
and a server can report token counts no SQLite integer holds. Either used to kill the
request store's writer thread, after which the run slept forever (or exited 0 with nothing
stored, so a re-run paid for everything again). These runs go through a subprocess with a far
backstop, so a regression fails instead of hanging the suite.
"""

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

from lemagen.engine import store as store_module
from lemagen.engine.store import STORE_FILE, RequestStore, StoredSample
from tests.conftest import EXAMPLES, load_jsonl, run
from tests.fake_openai import FakeOpenAI

GSM8K = str(EXAMPLES / "gsm8k.jsonl")
TRANSPORTS = ["http", "aiohttp", "openai"]
BACKSTOP = 300.0  # seconds: far past any healthy run, only so that a hang fails the test
HALF_EMOJI = "The answer is 72. \ud83d"  # cut in the middle of a surrogate pair


def lemagen(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lemagen", *args],
        capture_output=True,
        text=True,
        timeout=BACKSTOP,
        env=os.environ.copy(),
        check=False,
    )


def stored_texts(cache: Path) -> list[str]:
    store = RequestStore(cache)
    try:
        conn = sqlite3.connect(cache / STORE_FILE)
        keys = [row[0] for row in conn.execute("SELECT key FROM samples")]
        conn.close()
        return sorted(sample.text for sample in store.get_many(keys).values())
    finally:
        store.close()


def reply(text: str, usage: dict[str, Any] | None = None) -> Any:
    def answer(body: dict[str, Any]) -> Any:
        choice = {"index": 0, "message": {"role": "assistant", "content": text},
                  "finish_reason": "stop"}  # fmt: skip
        n = int(body.get("n") or 1)
        payload: dict[str, Any] = {"choices": [dict(choice, index=i) for i in range(n)]}
        payload["usage"] = usage or {"prompt_tokens": 10, "completion_tokens": 5}
        return 200, payload

    return answer


# ------------------------------------------------- finding 1: the store's thread never dies


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_reply_cut_in_half_an_emoji_is_stored_as_it_came_and_never_paid_twice(
    fake: FakeOpenAI, tmp_path: Path, transport: str
) -> None:
    fake.rule = reply(HALF_EMOJI)
    cache = tmp_path / "c"
    args = ["sample", GSM8K, "-m", "r", "-n", "2", "--keep", "all", "--cache-dir", str(cache),
            "--transport", transport, "--base-url", fake.base_url, "-q"]  # fmt: skip
    first = lemagen(*args, "-o", str(tmp_path / "a.jsonl"))
    assert first.returncode == 0, first.stderr
    rows = load_jsonl(tmp_path / "a.jsonl")
    assert len({r["id"] for r in rows}) == 10  # every problem kept
    # The text is kept whole in the store, the half surrogate included (not dropped or
    # replaced), and written out as JSON's escape of it.
    assert stored_texts(cache) == [HALF_EMOJI] * 20
    assert "\\ud83d" in (tmp_path / "a.jsonl").read_text(encoding="utf-8")
    sent = len(fake.requests)
    again = lemagen(*args, "-o", str(tmp_path / "b.jsonl"))
    assert again.returncode == 0, again.stderr
    assert len(fake.requests) == sent  # served from the store
    lines = [
        sorted(p.read_text(encoding="utf-8").splitlines())
        for p in (tmp_path / "a.jsonl", tmp_path / "b.jsonl")
    ]
    assert lines[0] == lines[1]  # the same records (in completion order, so sorted)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("count", [2**63, 2**64, 10**30, 2**53])
def test_token_counts_no_integer_column_holds_are_booked_at_the_estimate(
    fake: FakeOpenAI, tmp_path: Path, transport: str, count: int
) -> None:
    fake.rule = reply("The answer is 5.", {"prompt_tokens": count, "completion_tokens": count})
    cache = tmp_path / "c"
    args = ["sample", GSM8K, "-m", "r", "-n", "1", "--keep", "all", "--cache-dir", str(cache),
            "--max-tokens", "100", "--transport", transport,
            "--base-url", fake.base_url]  # fmt: skip
    first = lemagen(*args, "-o", str(tmp_path / "a.jsonl"))
    assert first.returncode == 0, first.stderr
    assert "10 responses gave no usable token usage: booked at the estimate" in first.stderr
    assert len(load_jsonl(tmp_path / "a.jsonl")) == 10
    assert len(stored_texts(cache)) == 10
    again = lemagen(*args, "-o", str(tmp_path / "b.jsonl"))
    assert again.returncode == 0, again.stderr
    assert len(fake.requests) == 10  # nothing paid twice


def test_a_writer_that_fails_in_any_way_ends_the_run_with_exit_6_and_one_line(
    fake: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever goes wrong in the writer thread (here: an error no one foresaw, raised while
    one sample is written) ends the run with the store's exit code and one line; the rows
    that arrived are still written out, and nothing waits on the dead commit."""
    storable = store_module._storable
    target = "The answer is 72."

    def breaks(text: str | None) -> Any:
        if text == target:
            raise RuntimeError("an unforeseen failure")
        return storable(text)

    monkeypatch.setattr(store_module, "_storable", breaks)
    fake.rule = reply(target)
    cache = tmp_path / "c"
    outcome: dict[str, Any] = {}

    def go() -> None:
        outcome["result"] = run(
            "sample", GSM8K, "-m", "r", "-n", "1", "--keep", "all", "--cache-dir", str(cache),
            "--base-url", fake.base_url, "-q",
        )  # fmt: skip

    worker = threading.Thread(target=go, daemon=True)
    worker.start()
    worker.join(BACKSTOP)
    assert not worker.is_alive(), "the run hung on a failed store write"
    result = outcome["result"]
    assert result.exit_code == 6, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "cannot write the request store" in lines[0]
    assert "RuntimeError('an unforeseen failure')" in lines[0]
    assert len(fake.requests) >= 1
    assert len([line for line in result.stdout.splitlines() if line.strip()]) >= 1


def test_a_store_whose_thread_fails_still_closes_and_counts_what_it_could_not_keep(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store alone: a put that cannot be written marks it failed, `close` returns (a
    last try in the closing thread), and what it could not keep is counted."""

    def breaks(conn: Any, rows: Any, now: float) -> None:
        raise OverflowError("Python int too large to convert to SQLite INTEGER")

    store = RequestStore(tmp_path / "c")
    monkeypatch.setattr(store_module, "insert_samples", breaks)
    woken = threading.Event()
    store.on_commit = woken.set
    store.put([(b"k" * 32, StoredSample("text", "stop", "r1", 1, 1))])
    assert woken.wait(BACKSTOP)
    assert store.failed is not None
    assert "OverflowError" in store.failed
    closer = threading.Thread(target=store.close, daemon=True)
    closer.start()
    closer.join(BACKSTOP)
    assert not closer.is_alive(), "close waited on a dead writer"
    assert store.unwritten == 1


def test_a_sample_stored_by_the_writer_reads_back_identical(tmp_path: Path) -> None:
    texts = [HALF_EMOJI, "\udc80 low first", "plain", "ünïcode ✓", "", "\ud83d\ude00 whole"]
    store = RequestStore(tmp_path / "c")
    rows = [
        (bytes([i]) * 32, StoredSample(text, "stop\ud800" if i == 1 else "stop", f"r{i}", 1, 2))
        for i, text in enumerate(texts)
    ]
    store.put(rows)
    store.close()
    assert store.failed is None
    store = RequestStore(tmp_path / "c")
    try:
        got = store.get_many([key for key, _ in rows])
    finally:
        store.close()
    assert got == dict(rows)
    assert json.dumps(got[bytes([1]) * 32].finish_reason) == '"stop\\ud800"'
