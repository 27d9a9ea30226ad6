"""A real OpenAI-compatible HTTP server on 127.0.0.1 for tests: chat and plain completions,
the `n` parameter, token usage, error statuses, API-key checks and unknown models, plus fault
injection: a delay before answering, queued or rule-based errors (with headers if wanted),
random 429 (with `Retry-After`) / 500 / dropped connections, a provider's rate limit (a token
bucket answering 429 with `retry-after-ms` until the next token, and `x-ratelimit-*` headers
on every answer), and logs: every response fully
written (`served`), and every exchange with its arrival and answer times on the server's
clock (`log`), so tests assert on order and gaps the server saw, not on their own sleeps.

Replies come from a `responder(prompt, n) -> [(text, finish_reason), ...]`; `MathTutor` is a
responder that knows the gold answers of a set of problems and answers sampling prompts (half
right, half wrong) and LEMA correction prompts (a fix that reaches gold), as LEMA text or, for a
request with `response_format`, as the `correct --json` object (`json_responder`).
`tests/mistake_models.MistakeModels` wraps a `MathTutor` and answers `analyze`, `inject
--model` and `art ask` prompts as real analysers, teachers and askers do (and as bad ones).

A rule's answer may carry `bytes` instead of a JSON payload: they are sent as the body as they
are (a 200 that is not JSON). What no well-behaved server sends at all (endless bodies and
headers, gzip bombs, two answers to one request, an answer before the request is read, a 101)
comes from `HostileServer`, a raw socket server that writes each answer's bytes as given.

`echo_auth` makes the server echo the Authorization header it got in the body of a 400, 500
or 401, or in the text of every choice of a 200, as careless servers do.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import random
import re
import socket
import ssl
import struct
import termios
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = tuple[str, str]  # (text, finish_reason)
Responder = Callable[[str, int], list[Reply]]
Fault = str  # "429", "500" or "drop"
# A rule's or a queued error's answer: (status, payload) or (status, payload, headers).
Payload = dict[str, Any] | bytes  # bytes: the body as is
Answer = tuple[int, Payload] | tuple[int, Payload, dict[str, str]]


@dataclass
class Exchange:
    """One request as the server saw it (times from time.monotonic, shared by every process
    on the machine)."""

    arrived: float
    key: str  # request_key(body)
    # Set just before the answer is written (so a client that has it finds it set); None: no
    # answer (yet), or the connection dropped before it was written.
    status: int | None = None
    # Just before the answer was written: no client can have had it sooner (a lower bound for
    # "waited at least so long after the answer"; `answered` may be taken late on a busy
    # machine, when this thread waits for the interpreter lock after writing).
    writing: float | None = None
    answered: float | None = None  # when the answer was fully written


# How much sooner than asked a wait may end, seen on the server's clock: the engine's event
# loop (uvloop) reads its clock in whole milliseconds, so its timers can fire up to that early.
TIMER_SLACK = 0.005


def _whole(value: object) -> int:
    return value if type(value) is int else 0


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Poll `condition` until it holds; fail after a generous `timeout` (a loaded machine is
    slow, never this slow)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.002)


def request_key(body: dict[str, Any]) -> str:
    """What identifies a paid request: the prompt, model, n and seed."""
    prompt = body.get("prompt") or [m.get("content") for m in body.get("messages", [])]
    return json.dumps([body.get("model"), prompt, body.get("n"), body.get("seed")])


@dataclass
class RandomFaults:
    """Each request independently: 429, 500 or a dropped connection at the given rates."""

    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_drop: float = 0.0
    seed: int = 0
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def __call__(self, body: dict[str, Any]) -> Fault | None:
        x = self._rng.random()
        for fault, rate in (
            ("429", self.rate_429),
            ("500", self.rate_500),
            ("drop", self.rate_drop),
        ):
            if x < rate:
                return fault
            x -= rate
        return None


@dataclass
class TokenBucket:
    """A request limit the way providers enforce it: `rate` requests a second, up to `burst`
    at once (default: one second's worth). A request that finds the bucket empty gets 429 with
    `retry-after-ms` until the next token; with `headers`, every answer carries
    `x-ratelimit-limit-requests` (per minute), `-remaining-requests` and `-reset-requests`."""

    rate: float
    burst: float | None = None
    headers: bool = True
    _tokens: float = field(init=False)
    _at: float = field(init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.burst is None:
            self.burst = self.rate
        self._tokens = self.burst
        self._at = time.monotonic()

    def take(self) -> tuple[bool, dict[str, str]]:
        """Admit one request or not, and the headers of its answer."""
        assert self.burst is not None
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            admitted = self._tokens >= 1.0
            if admitted:
                self._tokens -= 1.0
            wait = max(0.0, (1.0 - self._tokens) / self.rate)
            remaining = int(self._tokens)
        headers: dict[str, str] = {}
        if not admitted:
            headers["retry-after-ms"] = str(max(1, round(wait * 1000)))
        if self.headers:
            headers["x-ratelimit-limit-requests"] = f"{self.rate * 60:g}"
            headers["x-ratelimit-remaining-requests"] = str(remaining)
            headers["x-ratelimit-reset-requests"] = f"{round(wait * 1000)}ms"
        return admitted, headers


@dataclass
class FakeOpenAI:
    responder: Responder
    responders: dict[str, Responder] = field(default_factory=dict)  # by model, over `responder`
    api_key: str | None = None  # when set, other keys get 401
    models: set[str] | None = None  # when set, other models get 404
    max_n: int | None = None  # return at most this many choices (servers that ignore `n`)
    requests: list[dict[str, Any]] = field(default_factory=list)
    errors: deque[Answer] = field(default_factory=deque)
    rule: Callable[[dict[str, Any]], Answer | None] | None = None
    faults: Callable[[dict[str, Any]], Fault | None] | None = None
    delay: float = 0.0  # seconds before answering
    retry_after_ms: int = 20  # sent with injected 429s
    bucket: TokenBucket | None = None  # a provider's rate limit, checked before anything else
    # request_key of each 200 written (counted just before it goes out, so that a client
    # that has it finds it counted; taken back when the write fails), and below its usage
    served: list[str] = field(default_factory=list)
    injected: list[Fault] = field(default_factory=list)
    log: list[Exchange] = field(default_factory=list)  # every request, in arrival order
    active: int = 0  # handlers running (from reading the request to logging the answer)
    in_flight: int = 0
    max_in_flight: int = 0  # the most requests handled at once
    tag_samples: bool = False  # prefix each sample with "Sample <seed>-<index>." so all differ
    # Answers requests that carry `response_format` (json_schema or json_object) with JSON;
    # None: such requests get a 400, as from an endpoint that does not support them.
    json_responder: Responder | None = None
    ignore_response_format: bool = False  # answer it with `responder`, as if never sent
    # A reply `<think>X</think>Y` is sent as content Y with X in this message field
    # (`reasoning_content` as vLLM, SGLang and DeepSeek do; `reasoning` as OpenRouter does).
    reasoning_field: str | None = None
    echo_auth: str | None = None  # "400", "500", "401": that error echoing the Authorization
    # header; "200": every choice's text starts with it
    batches: Any = None  # a tests.fake_batches.FakeBatches: the Files and Batches endpoints
    # Usage as OpenAI reports it: this many of each request's prompt tokens (at most all of
    # them) read from the prompt cache (`prompt_tokens_details.cached_tokens`), and this many
    # hidden reasoning tokens per choice, counted in `completion_tokens` as OpenAI counts them
    # and reported in `completion_tokens_details.reasoning_tokens`.
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    # What the server billed: the usage of every 200 written (as `served`).
    billed_prompt_tokens: int = 0
    billed_completion_tokens: int = 0
    billed_cached_tokens: int = 0
    # HTTP/1.1 keep-alive connections (the default is HTTP/1.0: one connection per request),
    # closed by the server after `idle_timeout` seconds without a request.
    keep_alive: bool = False
    idle_timeout: float | None = None
    tls: ssl.SSLContext | None = None  # serve HTTPS with this context
    peers: list[int] = field(default_factory=list)  # the client port of each request
    closed: int = 0  # connections the server has closed (after an answer, or idle)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base_url(self) -> str:
        assert self._server is not None
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}/v1"

    def start(self) -> FakeOpenAI:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if fake.keep_alive else "HTTP/1.0"
            timeout = fake.idle_timeout

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                with fake._lock:
                    fake.active += 1
                try:
                    self.exchange()
                finally:
                    with fake._lock:
                        fake.active -= 1

            def do_GET(self) -> None:
                self.files_or_batches("GET", b"")

            def do_DELETE(self) -> None:
                self.files_or_batches("DELETE", b"")

            def files_or_batches(self, method: str, raw: bytes) -> None:
                if fake.batches is None:
                    status, data = 404, json.dumps(_error("no route", "not_found")).encode()
                else:
                    status, data = fake.batches.handle(method, self.path, self.headers, raw)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                self.wfile.flush()

            def exchange(self) -> None:
                with fake._lock:
                    fake.peers.append(self.client_address[1])
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                if self.path.startswith(("/v1/files", "/v1/batches")):
                    self.files_or_batches("POST", raw)
                    return
                body = json.loads(raw or b"{}")
                entry = Exchange(time.monotonic(), request_key(body))
                with fake._lock:
                    fake.log.append(entry)
                admitted, limit_headers = True, dict[str, str]()
                if fake.bucket is not None:
                    admitted, limit_headers = fake.bucket.take()
                fault = fake.faults(body) if fake.faults is not None and admitted else None
                with fake._lock:
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                try:
                    if fake.delay and admitted:  # providers refuse at once
                        time.sleep(fake.delay)
                finally:
                    with fake._lock:
                        fake.in_flight -= 1
                headers: dict[str, str] = dict(limit_headers)
                payload: Payload
                if not admitted:
                    with fake._lock:
                        fake.requests.append({"path": self.path, "body": body, "fault": "limit"})
                    status, payload = 429, _error("Rate limit reached for requests", "rate_limit")
                elif fault is not None:
                    with fake._lock:
                        fake.requests.append({"path": self.path, "body": body, "fault": fault})
                        fake.injected.append(fault)
                    if fault == "drop":
                        self.close_connection = True
                        return  # no status line: the client sees the connection drop
                    status = int(fault)
                    payload = _error(f"injected {fault}", "injected")
                    if status == 429:
                        headers["retry-after-ms"] = str(fake.retry_after_ms)
                else:
                    status, payload, answer_headers = fake.handle(
                        self.path, body, self.headers.get("Authorization")
                    )
                    headers.update(answer_headers)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                # Logged and billed before the answer goes out, so that no client can have it
                # (and finish its run) before the test can read it here; taken back if the
                # answer cannot be written.
                usage = payload.get("usage") if isinstance(payload, dict) else None
                billed = status == 200
                if billed:
                    fake._bill(request_key(body), usage, +1)
                entry.writing = time.monotonic()
                entry.status = status
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                    self.wfile.flush()
                except BaseException:
                    entry.status = None
                    if billed:
                        fake._bill(request_key(body), usage, -1)
                    raise
                entry.answered = time.monotonic()

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # socketserver's 5 drops bursts of connections

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that went away mid-response (killed in a test) is expected

            def shutdown_request(self, request: Any) -> None:
                super().shutdown_request(request)
                with fake._lock:
                    fake.closed += 1

        self._server = Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if self.tls is not None:
            self._server.socket = self.tls.wrap_socket(self._server.socket, server_side=True)
        thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        thread.start()
        return self

    def _bill(self, key: str, usage: Any, sign: int) -> None:
        """Count a 200 as served and its usage as billed (sign +1), or take it back (-1)."""
        with self._lock:
            if sign > 0:
                self.served.append(key)
            else:  # the latest of its kind
                del self.served[len(self.served) - 1 - self.served[::-1].index(key)]
            if isinstance(usage, dict):  # what a rule sends may be anything: whole numbers count
                details = usage.get("prompt_tokens_details")
                cached = details.get("cached_tokens") if isinstance(details, dict) else 0
                self.billed_prompt_tokens += sign * _whole(usage.get("prompt_tokens"))
                self.billed_completion_tokens += sign * _whole(usage.get("completion_tokens"))
                self.billed_cached_tokens += sign * _whole(cached)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def handle(
        self, path: str, body: dict[str, Any], auth: str | None
    ) -> tuple[int, Payload, dict[str, str]]:
        with self._lock:
            self.requests.append({"path": path, "body": body, "authorization": auth})
            queued = self.errors.popleft() if self.errors else None
        if queued is None and self.rule is not None:
            queued = self.rule(body)
        if queued is not None:
            return (*queued, {}) if len(queued) == 2 else queued
        return self.reply(path, body, auth)

    def reply(
        self, path: str, body: dict[str, Any], auth: str | None
    ) -> tuple[int, Payload, dict[str, str]]:
        """The answer to a completion request (also to each line of a batch)."""
        if self.echo_auth in ("400", "500", "401"):
            token = (auth or "").removeprefix("Bearer ")
            message = (
                f"Incorrect API key provided: {token}. Your request had 'Authorization: {auth}'"
            )
            return int(self.echo_auth), _error(message, "echo"), {}
        if self.api_key is not None and auth != f"Bearer {self.api_key}":
            return 401, _error("Incorrect API key provided.", "invalid_api_key"), {}
        model = body.get("model", "")
        if self.models is not None and model not in self.models:
            return 404, _error(f"The model `{model}` does not exist.", "model_not_found"), {}
        n = int(body.get("n") or 1)
        if path.endswith("/chat/completions"):
            prompt = "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
        elif path.endswith("/completions"):
            prompt = str(body.get("prompt", ""))
        else:
            return 404, _error(f"no route {path}", "not_found"), {}
        response_format = body.get("response_format")
        if response_format is not None and not self.ignore_response_format:
            if self.json_responder is None:
                return 400, _error("response_format is not supported", "unsupported_parameter"), {}
            replies = self.json_responder(prompt, n)[: min(n, self.max_n or n)]
            _check_json(replies, response_format)
        else:
            responder = self.responders.get(model, self.responder)
            replies = responder(prompt, n)[: min(n, self.max_n or n)]
        if self.tag_samples and "Original Solution:" not in prompt:  # not corrector replies
            seed = body.get("seed") or 0
            replies = [
                (f"Sample {seed}-{i}.\n{text}", fin) for i, (text, fin) in enumerate(replies)
            ]
        if self.echo_auth == "200":
            replies = [(f"(you sent Authorization: {auth})\n{text}", fin) for text, fin in replies]
        choices: list[dict[str, Any]] = []
        for index, (text, finish) in enumerate(replies):
            if path.endswith("/chat/completions"):
                choices.append(
                    {
                        "index": index,
                        "message": _message(text, self.reasoning_field),
                        "finish_reason": finish,
                        "logprobs": None,
                    }
                )
            else:
                choices.append(
                    {"index": index, "text": text, "finish_reason": finish, "logprobs": None}
                )
        prompt_tokens = len(prompt.split())
        completion_tokens = sum(len(text.split()) for text, _ in replies)
        usage: dict[str, Any] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        if self.cached_tokens or self.reasoning_tokens:
            reasoning = self.reasoning_tokens * len(replies)
            usage["completion_tokens"] = completion_tokens + reasoning
            usage["total_tokens"] = prompt_tokens + completion_tokens + reasoning
            usage["prompt_tokens_details"] = {
                "cached_tokens": min(self.cached_tokens, prompt_tokens),
                "audio_tokens": 0,
            }
            usage["completion_tokens_details"] = {
                "reasoning_tokens": reasoning,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            }
        return (
            200,
            {
                "id": f"fake-{len(self.requests)}",
                "object": "chat.completion" if "chat" in path else "text_completion",
                "created": int(time.time()),
                "model": model,
                "choices": choices,
                "usage": usage,
            },
            {},
        )


# ---------------------------------------------------------------- a server that misbehaves


def completion(text: str, *headers: str, n: int = 1) -> bytes:
    """A whole HTTP 200 with a chat completion of `n` choices of `text` (and `headers`)."""
    choice = {"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
    body = json.dumps(
        {
            "choices": [dict(choice, index=i) for i in range(n)],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5},
        }
    ).encode()
    return http_answer(body, "Content-Type: application/json", *headers)


def http_answer(body: bytes, *headers: str, status: str = "200 OK") -> bytes:
    """An HTTP/1.1 answer: `headers`, a Content-Length unless one of them sets the framing."""
    framed = any(h.lower().startswith(("content-length", "transfer-encoding")) for h in headers)
    lines = [f"HTTP/1.1 {status}", *headers]
    if not framed:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def prompt_of(body: dict[str, Any]) -> str:
    """The user message of a chat request."""
    return str(body["messages"][-1]["content"])


def unacked(conn: socket.socket) -> int:
    """Bytes written on `conn` that the peer's kernel has not acknowledged (Linux): 0 once
    everything sent sits in the peer's socket, read by it or not."""
    raw = fcntl.ioctl(conn.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
    return int(struct.unpack("i", raw)[0])


@dataclass
class Request:
    """A request as `HostileServer` read it: its JSON body, the connection it came on (its
    number, from 0), and the request's number on that connection and on the server."""

    body: dict[str, Any]
    connection: int
    on_connection: int
    index: int


# Answers a request on the raw socket; returns False to close the connection after it.
Answerer = Callable[[socket.socket, Request], bool]
# Called with a request's head before its body is read (an answer the server does not wait for).
Early = Callable[[socket.socket, int], None]


class HostileServer:
    """A raw HTTP/1.1 server on 127.0.0.1: each request is read whole (head, then the body by
    its Content-Length) and handed to `answer(conn, request)`, which writes on the socket
    whatever it likes, as it likes; nothing is smoothed over. `early(conn, connection)` is
    called with each new connection's first request head, before its body is read. A client
    that goes away mid-answer ends that connection's thread quietly. `small_buffer` keeps the
    receive buffer at 64 KiB, so a large request cannot be taken in whole by the kernel before
    the server reads it."""

    def __init__(
        self, answer: Answerer, *, early: Early | None = None, small_buffer: bool = False
    ) -> None:
        self.answer = answer
        self.early = early
        self.requests: list[Request] = []
        self.connections = 0
        self.closed_by_client: set[int] = set()  # connections the client closed
        self._lock = threading.Lock()
        self.sock = socket.socket()
        if small_buffer:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.base_url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self._lock:
                number = self.connections
                self.connections += 1
            threading.Thread(target=self._connection, args=(conn, number), daemon=True).start()

    def _connection(self, conn: socket.socket, number: int) -> None:
        with conn:
            with contextlib.suppress(OSError):  # the client went away mid-answer: expected
                self._exchanges(conn, number)
            with self._lock:
                self.closed_by_client.add(number)

    def _exchanges(self, conn: socket.socket, number: int) -> None:
        buffer = b""
        on_connection = 0
        while True:
            while b"\r\n\r\n" not in buffer:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buffer += chunk
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            if self.early is not None and on_connection == 0:
                self.early(conn, number)
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while len(buffer) < length:
                chunk = conn.recv(1 << 20)
                if not chunk:
                    return
                buffer += chunk
            body, buffer = json.loads(buffer[:length]), buffer[length:]
            with self._lock:
                request = Request(body, number, on_connection, len(self.requests))
                self.requests.append(request)
            on_connection += 1
            if not self.answer(conn, request):
                return

    def close(self) -> None:
        self.sock.close()


def _check_json(replies: list[Reply], response_format: dict[str, Any]) -> None:
    """What the server returns for `response_format`: a JSON object, with the schema's
    required fields (a fake that returned anything else would be a broken test)."""
    schema = response_format.get("json_schema", {}).get("schema", {})
    for text, _ in replies:
        data = json.loads(text)
        assert isinstance(data, dict), text
        missing = set(schema.get("required", [])) - set(data)
        assert not missing, f"reply lacks {missing}: {text}"


def _message(text: str, reasoning_field: str | None) -> dict[str, Any]:
    if reasoning_field is not None and text.startswith("<think>") and "</think>" in text:
        thinking, content = text[len("<think>") :].split("</think>", 1)
        return {"role": "assistant", "content": content, reasoning_field: thinking}
    return {"role": "assistant", "content": text}


def _error(message: str, code: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "code": code}}


# ---------------------------------------------------------------- a responder that knows answers


def _wrong(task: str, gold: str) -> str:
    if task == "gsm8k":
        return str(int(float(gold)) + 7) if re.fullmatch(r"-?\d+(\.\d+)?", gold) else gold + "1"
    return f"{gold} + 1"


@dataclass
class MathTutor:
    """Knows `question -> (task, gold)`. Sampling prompts get a right solution for every
    `right_every`-th choice of a request (the first, then every `right_every`-th: by default
    alternately right and wrong) and the same wrong solution for the others; correction
    prompts get a fix of the final step that reaches gold."""

    answers: dict[str, tuple[str, str]]
    right_every: int = 2
    # How its solutions are written: `plain` (LEMA's layout) or one of `STYLES`, the layouts
    # real chat and reasoning models use (markdown lists, preambles, chatter, `\boxed{}`).
    style: str = "plain"

    def __call__(self, prompt: str, n: int) -> list[Reply]:
        if "Original Solution:" in prompt:
            return [self.correct(prompt) for _ in range(n)]
        question = _last_question(prompt)
        task, gold = self.answers.get(question, ("gsm8k", "1"))
        return [self.solve(task, gold, right=i % self.right_every == 0) for i in range(n)]

    def as_json(self, prompt: str, n: int) -> list[Reply]:
        """Correction prompts answered as the `--json` object (the same fix as `correct`)."""
        return [self.correct_json(prompt) for _ in range(n)]

    def correct_json(self, prompt: str) -> Reply:
        query = prompt.rsplit("Question: ", 1)[1]
        question = query.split("\nOriginal Solution:", 1)[0]
        task, gold = self.answers.get(question, ("gsm8k", "1"))
        last = int(re.findall(r"(?m)^Step (\d+): ", query)[-1])
        shown = f"${gold}$" if task == "math" else gold
        data = {
            "incorrect_step": last,
            "explanation": "The final step does not follow from the work before it.",
            "corrected_steps": [f"The answer is {shown}."],
        }
        return json.dumps(data), "stop"

    def solve(self, task: str, gold: str, *, right: bool) -> Reply:
        answer = gold if right else _wrong(task, gold)
        if self.style != "plain":
            return STYLES[self.style](task, answer), "stop"
        if task == "gsm8k":
            text = f"We work through it.\nThe total comes to {answer}.\nThe answer is {answer}."
        else:
            text = f"We work through the problem.\nSo the result is $\\boxed{{{answer}}}$."
        return text, "stop"

    def correct(self, prompt: str) -> Reply:
        query = prompt.rsplit("Question: ", 1)[1]
        question = query.split("\nOriginal Solution:", 1)[0]
        task, gold = self.answers.get(question, ("gsm8k", "1"))
        steps = re.findall(r"(?m)^Step (\d+): ", query)
        last = int(steps[-1])
        shown = f"${gold}$" if task == "math" else gold
        return (
            f" Step {last}.\nExplanation: The final step does not follow from the work before it."
            f"\nCorrect Solution:\n{{\n...\nStep {last}: The answer is {shown}.\n}}",
            "stop",
        )


def _last_question(prompt: str) -> str:
    tail = prompt.rsplit("Question: ", 1)[1]
    return tail.split("\nAnswer: Let's think step by step.", 1)[0]


# ---------------------------------------------------------------- how real models write solutions
# Each style writes the two steps of MathTutor's plain solution ("We work through it.", "The
# total comes to X.") as a kind of model does; `lemagen` must make the same steps of all of them.


def _markdown(task: str, answer: str) -> str:
    """A chat model's markdown: a preamble, a numbered list with bold labels, a final answer."""
    shown = f"$\\boxed{{{answer}}}$" if task == "math" else f"**{answer}**"
    return (
        "Let's break this problem down step by step.\n\n"
        "1. **Setting up:** We work through it.\n"
        f"2. **Total:**\n   - The total comes to {answer}.\n\n"
        f"---\n\n### Final Answer\n\n**Final Answer:** {shown}"
    )


def _chatty(task: str, answer: str) -> str:
    """A chatty reasoner: bullets, the answer stated twice, `\\boxed`, and a goodbye."""
    if task == "math":
        end = f"The final answer is $\\boxed{{{answer}}}$. I hope it is correct."
    else:
        end = f"Therefore, {answer} is the answer. The answer is {answer}.\n\nI hope this helps!"
    return (
        "Sure! Here's how to solve it.\n\n"
        f"* We work through it.\n* The total comes to *{answer}*.\n\n{end}"
    )


def _thinking(task: str, answer: str) -> str:
    """A reasoning model: thinking, then a markdown answer with a boxed closing line."""
    return (
        f"<think>Let me see. Working it out, I get {answer}. Yes.</think>\n\n"
        "**Solution:**\n\n"
        f"**Step 1:** We work through it.\n**Step 2:** The total comes to `{answer}`.\n\n"
        f"$$\\boxed{{{answer}}}$$"
    )


STYLES: dict[str, Callable[[str, str], str]] = {
    "markdown": _markdown,
    "chatty": _chatty,
    "thinking": _thinking,
}
