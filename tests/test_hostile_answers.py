"""No answer a server can send hangs, crashes or mis-files a paid run.

A reply cut at max_tokens can end in half an emoji (a lone surrogate escape, `"\\ud83d"`),
and a server can report token counts no SQLite integer holds. Either used to kill the
request store's writer thread, after which the run slept forever (or exited 0 with nothing
stored, so a re-run paid for everything again). These runs go through a subprocess with a far
backstop, so a regression fails instead of hanging the suite.
"""

from __future__ import annotations

import functools
import gzip
import json
import os
import random
import resource
import socket
import sqlite3
import subprocess
import sys
import threading
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lemagen.engine import store as store_module
from lemagen.engine.clients import make_transport
from lemagen.engine.engine import new_event_loop
from lemagen.engine.store import STORE_FILE, RequestStore, StoredSample
from lemagen.engine.transports import Kind, TransportError
from lemagen.redact import redact
from tests.conftest import EXAMPLES, load_jsonl, run
from tests.fake_openai import (
    Answerer,
    FakeOpenAI,
    HostileServer,
    Request,
    _last_question,
    completion,
    http_answer,
    prompt_of,
    unacked,
    wait_until,
)

GSM8K = str(EXAMPLES / "gsm8k.jsonl")
TRANSPORTS = ["http", "aiohttp", "openai"]
BACKSTOP = 300.0  # seconds: far past any healthy run, only so that a hang fails the test
HALF_EMOJI = "The answer is 72. \ud83d"  # cut in the middle of a surrogate pair


def lemagen(
    *args: str, preexec_fn: Callable[[], None] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lemagen", *args],
        capture_output=True,
        text=True,
        timeout=BACKSTOP,
        env=os.environ.copy(),
        check=False,
        preexec_fn=preexec_fn,
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


# ------------------------------------- finding 4, point 2: every body is read within bounds

MEMORY = 4 << 30  # the run's address space: an unbounded read fails fast (MemoryError) here


def bounded_lemagen(*args: str) -> subprocess.CompletedProcess[str]:
    """`lemagen` in a process whose address space is limited, so a read without a bound ends
    in a MemoryError (a failure the test sees) instead of taking the machine's memory."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))

    return lemagen(*args, preexec_fn=limit)


def two_problems(tmp_path: Path) -> Path:
    path = tmp_path / "two.jsonl"
    path.write_text("".join(Path(GSM8K).read_text().splitlines(keepends=True)[:2]))
    return path


def forever(conn: socket.socket, head: bytes, piece: bytes) -> bool:
    """Write `head`, then `piece` again and again until the client goes away."""
    conn.sendall(head)
    while True:
        conn.sendall(piece)


OPEN_TEXT = b'{"choices": [{"index": 0, "message": {"content": "'
CLOSE_TEXT = b'"}, "finish_reason": "stop"}]}'


@functools.cache
def gzip_bomb() -> bytes:
    """64 MiB of a completion's text, gzipped into about 64 KiB."""
    return gzip.compress(OPEN_TEXT + b"a" * (64 << 20) + CLOSE_TEXT, compresslevel=9)


def words(size: int, seed: int = 0) -> bytes:
    """Text that compresses as prose does (a few times), `size` bytes of it."""
    rng = random.Random(seed)
    vocabulary = [f"w{rng.randrange(10**6)}" for _ in range(5000)]
    text = " ".join(rng.choice(vocabulary) for _ in range(size // 4))
    return text.encode()[:size]


@dataclass(frozen=True)
class Bound:
    """A hostile answer, the --max-response-mb it meets, and the error a call given up on
    gets, by transport (`*`: every transport)."""

    answer: Answerer
    mb: int
    error: dict[str, str]

    def expected(self, transport: str, url: str) -> str:
        return self.error.get(transport, self.error.get("*", "")).format(url=url)


def once(data: bytes) -> Answerer:
    def answer(conn: socket.socket, request: Request) -> bool:
        conn.sendall(data)
        return True

    return answer


def endless(head: bytes, piece: bytes) -> Answerer:
    return lambda conn, request: forever(conn, head, piece)


TOO_LARGE = "{url}: answer refused: body over 1 MiB (--max-response-mb)"
BOUNDS = {
    "endless body": Bound(
        endless(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000000\r\n\r\n" + OPEN_TEXT,
                b"a" * 65536),
        1, {"*": TOO_LARGE},
    ),
    "endless chunked body": Bound(
        endless(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                b"10000\r\n" + b"a" * 65536 + b"\r\n"),
        1, {"*": TOO_LARGE},
    ),
    "endless body until close": Bound(
        endless(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", b"a" * 65536),
        1, {"*": TOO_LARGE},
    ),
    "5 MiB body": Bound(
        once(http_answer(OPEN_TEXT + b"a" * (5 << 20) + CLOSE_TEXT)), 1, {"*": TOO_LARGE}
    ),
    "gzip bomb": Bound(
        lambda conn, request: once(http_answer(gzip_bomb(), "Content-Encoding: gzip"))(
            conn, request
        ),
        64, {"*": "{url}: answer refused: gzip body inflates more than 100-fold"},
    ),
    "deflate past the limit": Bound(
        once(http_answer(zlib.compress(OPEN_TEXT + words(3 << 20) + CLOSE_TEXT),
                         "Content-Encoding: deflate")),
        2, {"*": "{url}: answer refused: deflate body inflates past 2 MiB (--max-response-mb)"},
    ),
    "endless header": Bound(
        endless(b"HTTP/1.1 200 OK\r\nX-Pad: ", b"a" * 65536), 1,
        {"http": "{url}: answer refused: headers over 64 KiB",
         "aiohttp": "{url}: unreadable answer: Got more than 8190 bytes when reading",
         "openai": "{url}: connection dropped: Receive buffer too long"},
    ),
    "endless headers": Bound(
        endless(b"HTTP/1.1 200 OK\r\n", b"X-Pad: aaaaaaaaaa\r\n" * 1000), 1,
        {"http": "{url}: answer refused: headers over 64 KiB",
         "aiohttp": "{url}: unreadable answer: Too many headers received",
         "openai": "{url}: connection dropped: Receive buffer too long"},
    ),
    "JSON nested 1000 deep": Bound(
        once(http_answer(b"[" * 1000 + b"]" * 1000)), 1,
        {"*": "unreadable response from {url}: JSON nested deeper than 512 levels"},
    ),
    "101 Switching Protocols": Bound(
        once(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
             b"Connection: Upgrade\r\n\r\n"), 1,
        {"http": "{url}: answer refused: the server switched protocols (HTTP 101)",
         "aiohttp": "{url}: answer refused: the server switched protocols (HTTP 101)",
         "openai": "{url}: connection dropped: Received server _SWITCH_UPGRADE event"},
    ),
}  # fmt: skip


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("case", list(BOUNDS))
def test_an_answer_past_a_bound_is_retried_then_set_aside_never_a_traceback(
    tmp_path: Path, transport: str, case: str
) -> None:
    bound = BOUNDS[case]
    server = HostileServer(bound.answer)
    try:
        result = bounded_lemagen(
            "sample", str(two_problems(tmp_path)), "-m", "r", "-n", "1", "--keep", "all",
            "--transport", transport, "--base-url", server.base_url,
            "--max-response-mb", str(bound.mb), "--max-retries", "1", "--retry-delay", "0.01",
            "--cache-dir", str(tmp_path / "c"), "--rejects", str(tmp_path / "rejects.jsonl"),
            "-o", str(tmp_path / "out.jsonl"), "-q",
        )  # fmt: skip
    finally:
        server.close()
    assert "Traceback" not in result.stderr, result.stderr
    assert "MemoryError" not in result.stderr, result.stderr
    assert result.returncode == 4, result.stderr
    assert load_jsonl(tmp_path / "out.jsonl") == []
    rejects = load_jsonl(tmp_path / "rejects.jsonl")
    assert len(rejects) == 2
    expected = bound.expected(transport, server.base_url)
    for aside in rejects:
        assert aside["reason"] == "request_failed"
        error = aside["record"]["error"]
        assert error.startswith(expected), error
        assert error.endswith(" (gave up after 2 attempts)"), error
    assert len(server.requests) == 4  # each call asked twice: a failed attempt, retried


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_large_compressed_answer_within_the_bounds_is_read(
    tmp_path: Path, transport: str
) -> None:
    """1.5 MiB of text gzipped about three times: past the point where the ratio is looked
    at, within every bound, so it is an answer like any other."""
    text = words(3 << 19, seed=1)
    body = gzip.compress(OPEN_TEXT + text + CLOSE_TEXT)
    assert len(text) / len(body) < 10
    server = HostileServer(once(http_answer(body, "Content-Encoding: gzip")))
    try:
        result = bounded_lemagen(
            "sample", str(two_problems(tmp_path)), "-m", "r", "-n", "1", "--keep", "all",
            "--transport", transport, "--base-url", server.base_url, "--max-response-mb", "2",
            "--cache-dir", str(tmp_path / "c"), "-o", str(tmp_path / "out.jsonl"), "-q",
        )  # fmt: skip
    finally:
        server.close()
    assert result.returncode == 0, result.stderr
    out = load_jsonl(tmp_path / "out.jsonl")
    assert [r["response"] for r in out] == [text.decode()] * 2


# ------------------------------------- finding 7, point 5: an answer belongs to its request


def own_answer(prompt: str) -> str:
    """What `answering_own` answers to `prompt`: its question (or its start), and a number."""
    question = _last_question(prompt) if "Question: " in prompt else prompt[:40]
    return f"{question}\nThe answer is 1."


def answering_own(extra: bytes = b"") -> Answerer:
    """Answers each request with its own question, then `extra` in the same write."""

    def answer(conn: socket.socket, request: Request) -> bool:
        conn.sendall(completion(own_answer(prompt_of(request.body))) + extra)
        return True

    return answer


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_second_answer_to_one_request_is_nobodys_and_every_prompt_keeps_its_text(
    tmp_path: Path, transport: str
) -> None:
    """The server writes each answer followed by one no request asked for, in one write."""
    server = HostileServer(answering_own(completion("an answer no request asked for")))
    try:
        result = lemagen(
            "sample", GSM8K, "-m", "r", "-n", "1", "--keep", "all", "--transport", transport,
            "--base-url", server.base_url, "--concurrency", "2", "--retry-delay", "0.01",
            "--cache-dir", str(tmp_path / "c"), "-o", str(tmp_path / "out.jsonl"), "-q",
        )  # fmt: skip
    finally:
        server.close()
    assert result.returncode == 0, result.stderr
    out = load_jsonl(tmp_path / "out.jsonl")
    assert len(out) == 10
    for record in out:
        assert record["response"] == f"{record['question']}\nThe answer is 1.", record
    # Each connection that carried a second answer was closed, not asked again.
    assert len(server.requests) == 10
    assert server.connections == 10


def peer_closed(conn: socket.socket) -> bool:
    """Whether the client has closed its end of `conn` (what it sent already read)."""
    try:
        return conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def post_in_turn(
    transport: str, base_url: str, prompts: list[str], between: Callable[[int], Awaitable[None]]
) -> list[str]:
    """Post each prompt over one transport, awaiting `between(i)` after the i-th; each
    result is the answer's text, or the error."""

    async def main() -> list[str]:
        kinds: dict[str, Kind] = {"http": "http", "aiohttp": "aiohttp", "openai": "openai"}
        client = make_transport(kinds[transport], None, 60.0)
        await client.start()
        got: list[str] = []
        try:
            for i, prompt in enumerate(prompts):
                body = {"model": "m", "n": 1, "messages": [{"role": "user", "content": prompt}]}
                try:
                    _, _, data = await client.post(base_url, "/chat/completions", body)
                    got.append(json.loads(data)["choices"][0]["message"]["content"])
                except TransportError as exc:
                    got.append(f"{exc} (sent: {exc.sent})")
                await between(i)
        finally:
            await client.close()
        return got

    loop = new_event_loop()
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_answer_on_an_idle_keep_alive_connection_is_nobodys(transport: str) -> None:
    """After the first answer, while the connection is idle, the server writes an answer no
    request asked for; the next request gets its own answer (on another connection). Where
    the stray answer was read while idle, the connection was closed; where it waits unread,
    the connection is looked at before it is reused. (The SDK's transport keeps no
    connection alive: the stray answer comes on one already closed.)"""
    stray = threading.Event()
    waiting = threading.Event()

    def answer(conn: socket.socket, request: Request) -> bool:
        answering_own()(conn, request)
        if request.index == 0:
            assert stray.wait(BACKSTOP)
            if transport == "openai":
                wait_until(lambda: peer_closed(conn), "the client to close its connection")
            else:
                conn.sendall(completion("an answer no request asked for"))
                wait_until(lambda: unacked(conn) == 0, "the stray answer to reach the client")
            waiting.set()
        return True

    async def between(i: int) -> None:
        if i == 0:  # the connection is idle now: the server may misbehave
            stray.set()
            # Waited for without letting the event loop run: the stray answer is in the
            # client's socket, unread, when the next request takes the connection (the
            # hardest case: a loop that had run would have seen it come).
            assert waiting.wait(BACKSTOP)

    server = HostileServer(answer)
    try:
        got = post_in_turn(transport, server.base_url, ["first", "second"], between)
    finally:
        server.close()
    assert got == [own_answer("first"), own_answer("second")]
    assert [r.connection for r in server.requests] == [0, 1]


@pytest.mark.filterwarnings("ignore:Sending a large body:ResourceWarning")  # aiohttp's, 16 MiB
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_answer_before_the_request_is_sent_whole_is_nobodys(transport: str) -> None:
    """A request too large for the socket buffers (16 MiB), answered as soon as its head is
    read: the server cannot have read the prompt it answers. That attempt fails (may have
    been sent: it was, in part), the next gets its own answer."""

    def early(conn: socket.socket, connection: int) -> None:
        if connection == 0:
            conn.sendall(completion("an answer to a request not yet read"))

    server = HostileServer(answering_own(), early=early, small_buffer=True)
    prompt = "long " + "x" * (16 << 20)

    async def between(i: int) -> None:
        pass

    try:
        got = post_in_turn(transport, server.base_url, [prompt, prompt], between)
    finally:
        server.close()
    assert got == [
        "answer refused: the server answered before the request was sent whole (sent: True)",
        own_answer(prompt),
    ]


# ------------------------------------- finding 8, point 7: credentials in a URL, ALL_PROXY

PASSWORD = "s3cret-pw-4711"


def with_user(url: str) -> str:
    return url.replace("http://", f"http://alice:{PASSWORD}@")


BASIC = "Basic YWxpY2U6czNjcmV0LXB3LTQ3MTE="  # alice:s3cret-pw-4711


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_user_and_password_in_the_url_log_in_and_are_written_nowhere(
    fake: FakeOpenAI, tmp_path: Path, transport: str
) -> None:
    """They go as HTTP Basic authentication, on every transport; -v logs every request's URL,
    a 401 names the endpoint, and a careless server echoes the Authorization header: each
    shows `[redacted]` where the credentials were."""
    base_url = with_user(fake.base_url)
    out = tmp_path / "out.jsonl"
    fine = run(
        "-v", "sample", GSM8K, "-m", "r", "-n", "1", "--keep", "all", "--transport", transport,
        "--base-url", base_url, "--no-cache", "-o", str(out),
    )  # fmt: skip
    assert fine.exit_code == 0, fine.stderr
    assert {r["authorization"] for r in fake.requests} == {BASIC}
    assert f"POST http://[redacted]@127.0.0.1:{fake.base_url.split(':')[2]}" in fine.stderr
    fake.api_key, fake.echo_auth = "sk-another-key-0000", "401"
    refused = run(
        "-v", "sample", GSM8K, "-m", "r", "-n", "1", "--transport", transport,
        "--base-url", base_url, "--no-cache",
    )  # fmt: skip
    assert refused.exit_code == 3
    last = refused.stderr.strip().splitlines()[-1]
    assert last.startswith(f"Error: endpoint {fake.base_url.replace('//', '//[redacted]@')}")
    assert "'Authorization: Basic [redacted]'" in last
    assert last.endswith("; check the user name and password in --base-url")
    # A server that names the credentials as they were decoded, in no shape of a key.
    fake.api_key, fake.echo_auth = None, None
    fake.rule = lambda body: (400, {"error": {"message": f"user alice:{PASSWORD} is locked"}})
    rejects = tmp_path / "rejects.jsonl"
    echoed = run(
        "sample", GSM8K, "-m", "r", "-n", "1", "--transport", transport, "--base-url", base_url,
        "--no-cache", "--rejects", str(rejects), "-q",
    )  # fmt: skip
    assert echoed.exit_code == 4
    errors = {r["record"]["error"] for r in load_jsonl(rejects)}
    assert errors == {"HTTP 400: user [redacted] is locked"}
    for text in (fine.stderr, refused.stderr, out.read_text(), echoed.stderr):
        assert PASSWORD not in text
        assert BASIC.split()[1] not in text


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("POST https://bob:hunter2@gw.example/v1", "POST https://[redacted]@gw.example/v1"),
        ("via http://token-only@10.0.0.1:3128 down", "via http://[redacted]@10.0.0.1:3128 down"),
        ("sent 'Authorization: Basic Ym9iOmh1bnRlcjI='", "sent 'Authorization: Basic [redacted]'"),
        ("mail bob@example.com, see https://example.com/a@b", None),
        ("basic arithmetic: 2 + 2 = 4", None),
        ("the basic concepts first", None),
        ("Basic Arithmetic, Chapter 2", None),
    ],
)  # fmt: skip
def test_credentials_of_any_url_and_basic_tokens_are_redacted_by_shape(
    text: str, shown: str | None
) -> None:
    """Credentials lemagen was never given (a server echoing another URL) by their shape;
    an address or the word "basic" stay as they are."""
    assert redact(text) == (text if shown is None else shown)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_user_in_the_url_and_an_api_key_are_one_usage_error(
    fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, transport: str
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-the-key-0000000")
    result = run(
        "sample", GSM8K, "-m", "r", "--transport", transport, "--no-cache",
        "--base-url", with_user(fake.base_url),
    )  # fmt: skip
    assert result.exit_code == 2
    error = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert error == [
        "Error: a --base-url with a user name (HTTP Basic authentication) and an API key (from "
        "$OPENAI_API_KEY) cannot go together: both would be the Authorization header; drop the "
        "user from the URL, or unset the key"
    ]
    assert "Traceback" not in result.stderr
    assert PASSWORD not in result.stderr
    assert fake.requests == []


@pytest.mark.parametrize("transport", ["http", "aiohttp"])
@pytest.mark.parametrize("variable", ["ALL_PROXY", "all_proxy"])
def test_all_proxy_is_not_honoured_and_says_so(
    fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, transport: str, variable: str
) -> None:
    """aiohttp reads HTTP_PROXY and HTTPS_PROXY only (and no SOCKS): ALL_PROXY, pointing at
    nothing here, is passed over with a warning, and requests go direct."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, "socks5://127.0.0.1:9")
    result = run(
        "sample", GSM8K, "-m", "r", "-n", "1", "--keep", "all", "--transport", transport,
        "--base-url", fake.base_url, "--no-cache", "-q",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert len(fake.requests) == 10
    assert result.stderr.splitlines() == [
        f"lemagen: {variable} is set, but --transport {transport} does not honour it (only "
        "HTTP_PROXY and HTTPS_PROXY): requests go direct; --transport openai honours it"
    ]


# ------------------------------------- finding 5, point 4: a stated rate limit has a floor


@pytest.mark.parametrize("transport", ["http", "aiohttp"])  # the SDK gives no 200's headers
@pytest.mark.parametrize("stated", ["0.001", "1e-300"])
def test_a_stated_rate_limit_under_one_a_minute_is_ignored_with_a_warning(
    fake: FakeOpenAI, tmp_path: Path, transport: str, stated: str
) -> None:
    """Believed, 0.001 requests a minute would space the requests 17 hours apart (1e-300:
    for ever); the run ends as if nothing had been stated."""

    def limited(body: dict[str, Any]) -> Any:
        status, payload = reply("The answer is 5.")(body)
        return status, payload, {"x-ratelimit-limit-requests": stated}

    fake.rule = limited
    result = lemagen(
        "sample", GSM8K, "-m", "r", "-n", "1", "--keep", "all", "--transport", transport,
        "--base-url", fake.base_url, "--no-cache", "--concurrency", "1",
        "-o", str(tmp_path / "out.jsonl"), "-q",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert len(load_jsonl(tmp_path / "out.jsonl")) == 10
    assert result.stderr.splitlines() == [
        f"lemagen: endpoint {fake.base_url} states a limit of {stated} requests per minute "
        "(x-ratelimit-limit-requests), below 1: not believed, ignored"
    ]
