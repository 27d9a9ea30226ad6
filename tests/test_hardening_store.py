"""Paid work survives a full disk and a second run on the same store: a disk that cannot be
written is a one-line error (exit 6) that stops sending, and two processes on one cache
directory send each request once (a lease in the store, taken over when its owner died).

A full disk is made without root: the output goes to /dev/full (every write fails with
ENOSPC), and the store is stopped by RLIMIT_FSIZE in a subprocess (a write past the limit
fails with EFBIG, which SQLite reports as a disk I/O error; Python ignores SIGXFSZ). A
loopback-mounted tmpfs would need root."""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from lemagen.engine import store as store_module
from lemagen.engine.store import STORE_FILE, RequestStore, StoredSample
from tests.conftest import EXAMPLES, endpoint, run, write_jsonl
from tests.fake_openai import FakeOpenAI, wait_until

GSM8K = str(EXAMPLES / "gsm8k.jsonl")
PEER_WAIT = 120.0  # a newcomer's wait, in tests that must see it wait: a far backstop


def problems(tmp_path: Path, count: int) -> Path:
    rows = [
        {"id": f"q{i}", "question": f"Sam has {i} apples and buys {i} more. How many?",
         "answer": f"He has {i} + {i} = {2 * i}.\n#### {2 * i}"}
        for i in range(count)
    ]  # fmt: skip
    return write_jsonl(tmp_path / "p.jsonl", rows)


def stored(cache: Path) -> int:
    conn = sqlite3.connect(cache / STORE_FILE)
    try:
        return int(conn.execute("SELECT count(*) FROM samples").fetchone()[0])
    finally:
        conn.close()


def lemagen(*args: str) -> list[str]:
    return [sys.executable, "-m", "lemagen", *args]


def served_twice(fake: FakeOpenAI) -> list[str]:
    return [key for key, times in Counter(fake.served).items() if times > 1]


# ---------------------------------------------------------------- a full output disk


def test_a_full_output_disk_is_one_line_offline() -> None:
    result = run("inject", GSM8K, "-o", "/dev/full")
    assert result.exit_code == 6
    assert result.stderr == "Error: /dev/full: cannot write: No space left on device\n"


def test_a_full_output_disk_stops_sample_and_keeps_what_arrived(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    cache = tmp_path / "c"
    args = ["sample", GSM8K, "-m", "r", "-n", "2", "--keep", "all", "--cache-dir", str(cache)]
    result = run(*args, "-o", "/dev/full", *endpoint(fake))
    assert result.exit_code == 6
    assert re.fullmatch(
        r"Error: /dev/full: cannot write: No space left on device; \d+ requests? in flight were "
        r"answered and stored: nothing billed is lost \(a re-run writes their rows without "
        r"paying again\)\n",
        result.stderr,
    ), result.stderr
    # The requests the first run had in flight when it stopped were answered and stored
    # before it exited: every answer the server gave is in the store.
    wait_until(lambda: fake.active == 0, "the server's last answers")
    first = len(fake.requests)
    kept = stored(cache)
    assert kept >= 2  # at least the row whose output failed
    assert kept == 2 * len(fake.served)
    again = run(*args, "-o", str(tmp_path / "out.jsonl"), *endpoint(fake))
    assert again.exit_code == 0
    # Nothing stored is asked for again (a request's two samples may have been stored apart,
    # so count the samples asked for, not the requests).
    assert sum(int(r["body"]["n"]) for r in fake.requests[first:]) == 20 - kept


def test_stdout_on_a_full_disk_is_one_line_without_a_traceback(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    for args in (["inject", GSM8K], ["sample", GSM8K, "-m", "r", *endpoint(fake)]):
        with open("/dev/full", "w") as full:
            done = subprocess.run(
                lemagen(*args), stdout=full, stderr=subprocess.PIPE, timeout=120, check=False
            )
        assert done.returncode == 6, done.stderr
        error = done.stderr.decode()
        assert error.startswith("Error: <stdout>: cannot write: No space left on device"), error
        assert error.count("\n") == 1, error
        if args[0] == "sample":  # the requests in flight are counted (stored: --no-cache absent)
            assert re.search(r"; \d+ requests? in flight were answered and stored", error), error


# ---------------------------------------------------------------- a full store disk


def test_a_store_that_cannot_be_written_stops_sending_and_loses_nothing_stored(
    tmp_path: Path,
) -> None:
    """The store's files may not grow past 64 KiB (its shared-memory file needs 32 KiB), and
    each sample is 2 KB: a few requests are stored, then a commit fails. Nothing more is sent;
    every answer is in the output; a re-run pays only for what could not be stored, and that
    is at most two rounds of requests (four in flight, four waiting to be written)."""
    fake = FakeOpenAI(
        lambda prompt, n: [("We add. " * 250 + "The answer is 5.", "stop")] * n, tag_samples=True
    ).start()
    path = problems(tmp_path, 60)
    cache = tmp_path / "cache"

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    cmd = lemagen(
        "sample", str(path), "-m", "r", "-n", "2", "--keep", "all", "--concurrency", "4",
        "--cache-dir", str(cache), "--base-url", fake.base_url,
    )  # fmt: skip
    try:
        first = subprocess.run(cmd, capture_output=True, preexec_fn=limit, timeout=120, check=False)
        assert first.returncode == 6, first.stderr
        assert b"Traceback" not in first.stderr
        error = first.stderr.decode().strip().splitlines()[-1]
        assert error.startswith(f"Error: {cache / STORE_FILE}: cannot write the request store (")
        match = re.search(r"(\d+) samples that arrived could not be stored", error)
        assert match or "every sample that arrived is stored" in error
        unstored = int(match.group(1)) if match else 0
        answered = len(fake.served)
        assert answered < 60  # it stopped sending
        kept = stored(cache)
        assert kept + unstored == 2 * answered  # every answer is stored or counted as not
        assert unstored <= 2 * (4 + 4)
        assert len(first.stdout.splitlines()) == 2 * answered  # and in the output

        again = subprocess.run(cmd, capture_output=True, timeout=120, check=False)
        assert again.returncode == 0, again.stderr
        assert len(fake.served) - answered == 60 - kept // 2
        assert len(served_twice(fake)) == unstored // 2  # only what could not be stored
    finally:
        fake.stop()


# ---------------------------------------------------------------- two runs on one store


def test_a_lease_is_held_while_its_owner_lives(tmp_path: Path) -> None:
    keys = [bytes([i]) * 32 for i in range(3)]
    first = RequestStore(tmp_path, leasing=True)
    second = RequestStore(tmp_path, leasing=True)
    try:
        assert first.claim(keys) == ({}, [])
        assert second.claim(keys) == ({}, keys)  # the first owner lives: wait for it
        first.put([(keys[0], StoredSample("a", "stop", "r", 1, 1))])
        first.release(keys[1:2])
        first.close()  # commits, drops the rest of its leases, and its owner lock
        found, theirs = second.claim(keys)
        assert list(found) == [keys[0]]
        assert theirs == []
    finally:
        first.close()
        second.close()


def test_a_newcomer_waits_until_the_run_alone_leases_what_it_fetches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store opened beside a run that leases nothing (it is alone) waits, before it can
    claim anything, until that run leases the samples it is fetching and says so."""
    monkeypatch.setattr(store_module, "PEER_WAIT", PEER_WAIT)
    key = bytes([7]) * 32
    first = RequestStore(tmp_path)
    assert not first.leasing
    opened: list[RequestStore] = []
    newcomer = threading.Thread(target=lambda: opened.append(RequestStore(tmp_path)))
    newcomer.start()
    try:
        # The newcomer's owner lock is in place before it waits (for at most PEER_WAIT, far
        # beyond this test): it is waiting now.
        wait_until(lambda: len(first.peers()) == 1, "the newcomer's owner lock")
        assert opened == []  # still waiting for the first run to lease
        first.publish([key])  # what the first run's engine does on seeing the newcomer
        newcomer.join(timeout=PEER_WAIT)
        (second,) = opened
        assert second.leasing
        assert second.claim([key]) == ({}, [key])  # the first run's: wait for it
    finally:
        newcomer.join(timeout=PEER_WAIT)
        first.close()
        for store in opened:
            store.close()


def test_a_newcomer_does_not_wait_forever_for_a_silent_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "PEER_WAIT", 1.0)
    first = RequestStore(tmp_path)
    started = time.monotonic()
    second = RequestStore(tmp_path)  # the first never says it leases (suspended, say)
    try:
        # It waited its PEER_WAIT, then went on (a far backstop: not for ever).
        assert 1.0 <= time.monotonic() - started < PEER_WAIT
        assert second.leasing
    finally:
        first.close()
        second.close()


def test_two_runs_on_one_cache_send_each_request_once(fake: FakeOpenAI, tmp_path: Path) -> None:
    """Run A (one request at a time) has its first request held by the server until run B
    sends one too: both are then surely running at once. B finds A's rows leased and waits
    for them, so B's first request is for another row; then both finish the input."""
    fake.tag_samples = True
    path = problems(tmp_path, 100)
    env = {**os.environ, "LEMAGEN_CACHE_DIR": str(tmp_path / "cache")}
    arrived: list[str] = []
    both = threading.Event()
    lock = threading.Lock()

    def hold(body: dict[str, object]) -> None:
        with lock:
            arrived.append(json.dumps(body.get("messages")))
            if len(arrived) == 2:
                both.set()
        both.wait(120)

    fake.rule = hold

    def start(concurrency: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            lemagen(
                "sample", str(path), "-m", "r", "-n", "2", "--keep", "all",
                "--concurrency", concurrency, "--base-url", fake.base_url, "-q",
            ),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        )  # fmt: skip

    a = start("1")
    try:
        wait_until(lambda: len(arrived) == 1, "run A's first request")
        b = start("8")
        out_a, err_a = a.communicate(timeout=120)
        out_b, err_b = b.communicate(timeout=120)
    finally:
        both.set()
        a.kill()
    assert a.returncode == 0, err_a
    assert b.returncode == 0, err_b
    assert arrived[0] != arrived[1]  # B did not send what A was sending
    assert served_twice(fake) == []
    assert len(fake.served) == 100
    assert len(out_a.splitlines()) == len(out_b.splitlines()) == 200
    assert sorted(out_a.splitlines()) == sorted(out_b.splitlines())


def test_a_run_alone_takes_no_leases(fake: FakeOpenAI, tmp_path: Path) -> None:
    """Leases are for runs that share the store: one alone sends without them."""
    fake.tag_samples = True
    path = problems(tmp_path, 20)
    env = {**os.environ, "LEMAGEN_CACHE_DIR": str(tmp_path / "cache")}
    released = threading.Event()
    held: list[bool] = []

    def hold(body: dict[str, object]) -> None:
        held.append(True)
        released.wait(120)

    fake.rule = hold
    cmd = lemagen("sample", str(path), "-m", "r", "--keep", "all", "--base-url", fake.base_url)
    a = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        # A lease is committed before its request is sent (`RequestStore.claim`).
        wait_until(lambda: len(held) >= 1, "the run's first request")
        conn = sqlite3.connect(tmp_path / "cache" / STORE_FILE)
        leases = conn.execute("SELECT count(*) FROM leases").fetchone()[0]
        conn.close()
    finally:
        released.set()
        _, err = a.communicate(timeout=120)
    assert a.returncode == 0, err
    assert leases == 0
    assert len(fake.served) == 20


def test_a_dead_runs_leases_are_taken_over(fake: FakeOpenAI, tmp_path: Path) -> None:
    """Run A, started beside another owner of the store (so leasing), is killed (-9) with its
    first request held by the server: its leases stay in the store, but its owner lock died
    with it, so run B (leasing too) takes them over, sends everything and finishes."""
    fake.tag_samples = True
    path = problems(tmp_path, 20)
    env = {**os.environ, "LEMAGEN_CACHE_DIR": str(tmp_path / "cache")}
    (tmp_path / "cache").mkdir()
    other = RequestStore(tmp_path / "cache", leasing=True)  # another run on the store
    released = threading.Event()
    held: list[bool] = []

    def hold(body: dict[str, object]) -> tuple[int, dict[str, object]] | None:
        if released.is_set():
            return None
        held.append(True)
        released.wait(120)
        return 503, {"error": {"message": "gone"}}  # never paid

    fake.rule = hold
    cmd = lemagen("sample", str(path), "-m", "r", "--keep", "all", "--base-url", fake.base_url)
    a = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        wait_until(lambda: len(held) == 1, "run A's first request")
        a.send_signal(signal.SIGKILL)
        a.wait(timeout=60)
    finally:
        released.set()
    conn = sqlite3.connect(tmp_path / "cache" / STORE_FILE)
    leases = conn.execute("SELECT count(*) FROM leases").fetchone()[0]
    conn.close()
    assert leases > 0  # A died holding them
    try:
        b = subprocess.run(cmd, capture_output=True, env=env, timeout=120, check=False)
    finally:
        other.close()
    assert b.returncode == 0, b.stderr
    assert len(fake.served) == 20
    assert served_twice(fake) == []
