"""lemagen's own HTTP/1.1 client (`--transport http`, the default) against what servers send:
keep-alive connections reused and replaced when the server closes them, chunked, gzip and
read-until-close bodies, answers that are not HTTP, a stall mid-answer, TLS with a trusted and
an untrusted certificate, a proxy (handed to aiohttp), a host name, and a cancelled request.

The canned answers come from a raw socket server (bytes as written, nothing smoothed over);
the rest from the loopback OpenAI server."""

from __future__ import annotations

import asyncio
import gzip
import json
import shutil
import socket
import ssl
import subprocess
import threading
import zlib
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from lemagen.engine import http1
from lemagen.engine.engine import new_event_loop
from lemagen.engine.http1 import Http1Transport, parse_origin
from lemagen.engine.transports import TransportError
from tests.fake_openai import FakeOpenAI

BODY = {"model": "m", "n": 1, "messages": [{"role": "user", "content": "2 + 2?"}]}
T = TypeVar("T")


def run(main: Callable[[Http1Transport], Awaitable[T]], *, timeout: float = 10.0,
        api_key: str | None = None) -> T:  # fmt: skip
    async def wrapped() -> T:
        transport = Http1Transport(api_key, timeout)
        try:
            return await main(transport)
        finally:
            await transport.close()

    loop = new_event_loop()
    try:
        return loop.run_until_complete(wrapped())
    finally:
        loop.close()


def post_once(base_url: str, **options: Any) -> tuple[int, dict[str, str], bytes]:
    async def main(t: Http1Transport) -> tuple[int, dict[str, str], bytes]:
        status, headers, data = await t.post(base_url, "/chat/completions", BODY)
        return status, dict(headers), data

    return run(main, **options)


class RawServer:
    """Answers the n-th request with the n-th canned bytes, then closes the connection if
    told to; keeps every request's bytes."""

    def __init__(self, answers: list[tuple[bytes, bool]], *, greet: bytes | None = None) -> None:
        self.answers = list(answers)
        self.greet = greet  # sent as soon as a connection is taken, then it is closed
        self.requests: list[bytes] = []
        self.connections = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._connection, args=(conn,), daemon=True).start()

    def _connection(self, conn: socket.socket) -> None:
        with conn:
            if self.greet is not None:
                conn.sendall(self.greet)
                return
            buffer = b""
            while self.answers:
                while b"\r\n\r\n" not in buffer:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                head, _, rest = buffer.partition(b"\r\n\r\n")
                length = int(
                    next(
                        line.split(b":")[1]
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    )
                )
                while len(rest) < length:
                    rest += conn.recv(65536)
                self.requests.append(head + b"\r\n\r\n" + rest[:length])
                buffer = rest[length:]
                answer, close = self.answers.pop(0)
                conn.sendall(answer)
                if close:
                    return

    def close(self) -> None:
        self.sock.close()


def ok_body(text: str = "4") -> bytes:
    return json.dumps({"choices": [{"message": {"content": text}}]}).encode()


def response(body: bytes, *headers: str, status: str = "200 OK") -> bytes:
    head = "\r\n".join([f"HTTP/1.1 {status}", *headers]) + "\r\n\r\n"
    return head.encode() + body


def answered(answer: bytes, *, close: bool = False) -> tuple[int, dict[str, str], bytes]:
    """What the client makes of `answer` from a raw server (which closes after it if told)."""
    server = RawServer([(answer, close)])
    try:
        return post_once(server.url)
    finally:
        server.close()


def count_lookups(calls: list[str], before: Callable[[int], Awaitable[None]]) -> None:
    """Wrap the running loop's resolver: each lookup's host goes to `calls`, and `before(n)`
    runs before the n-th (from 1) goes to the real one."""
    loop = asyncio.get_running_loop()
    real = loop.getaddrinfo

    async def lookup(host: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(host)
        await before(len(calls))
        return await real(host, *args, **kwargs)

    loop.getaddrinfo = lookup  # type: ignore[method-assign, assignment]


@pytest.fixture
def keep_alive() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI(lambda prompt, n: [("four", "stop")] * n, keep_alive=True).start()
    yield server
    server.stop()


# ---------------------------------------------------------------- connections


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_keep_alive_connections_are_reused(
    keep_alive: FakeOpenAI, loop: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if loop == "asyncio":
        monkeypatch.setenv("LEMAGEN_EVENT_LOOP", "asyncio")

    async def main(t: Http1Transport) -> list[int]:
        statuses = []
        for _ in range(3):
            status, _, data = await t.post(keep_alive.base_url, "/chat/completions", BODY)
            assert json.loads(data)["choices"][0]["message"]["content"] == "four"
            statuses.append(status)
        return statuses

    assert run(main) == [200, 200, 200]
    assert len(keep_alive.peers) == 3
    assert len(set(keep_alive.peers)) == 1  # one connection carried all three


def test_a_server_that_closes_each_connection_gets_a_new_one_each_time() -> None:
    server = FakeOpenAI(lambda prompt, n: [("four", "stop")] * n).start()  # HTTP/1.0
    try:

        async def main(t: Http1Transport) -> list[int]:
            return [(await t.post(server.base_url, "/chat/completions", BODY))[0] for _ in "abc"]

        assert run(main) == [200, 200, 200]
        assert len(set(server.peers)) == 3
    finally:
        server.stop()


def test_a_connection_the_server_closed_while_idle_is_replaced() -> None:
    server = FakeOpenAI(
        lambda prompt, n: [("four", "stop")] * n, keep_alive=True, idle_timeout=0.2
    ).start()
    try:

        async def main(t: Http1Transport) -> list[int]:
            first = (await t.post(server.base_url, "/chat/completions", BODY))[0]
            while server.closed < 1:  # the server drops the idle connection meanwhile
                await asyncio.sleep(0.01)
            second = (await t.post(server.base_url, "/chat/completions", BODY))[0]
            return [first, second]

        assert run(main) == [200, 200]
        assert len(set(server.peers)) == 2
    finally:
        server.stop()


def test_concurrent_requests_open_connections_side_by_side(keep_alive: FakeOpenAI) -> None:
    """The server answers none of 8 requests until all 8 are in: sent one after another, the
    first would wait in vain (until the barrier's backstop breaks it, failing them all)."""
    together = threading.Barrier(8, timeout=120)

    def answer(prompt: str, n: int) -> list[tuple[str, str]]:
        together.wait()
        return [("four", "stop")] * n

    keep_alive.responder = answer

    async def main(t: Http1Transport) -> list[int]:
        posts = [t.post(keep_alive.base_url, "/chat/completions", BODY) for _ in range(8)]
        return [status for status, _, _ in await asyncio.gather(*posts)]

    assert run(main, timeout=300) == [200] * 8
    assert len(set(keep_alive.peers)) == 8


def test_a_host_name_is_resolved(keep_alive: FakeOpenAI) -> None:
    url = keep_alive.base_url.replace("127.0.0.1", "localhost")
    status, _, _ = post_once(url)
    assert status == 200


def test_a_cancelled_request_closes_its_connection(keep_alive: FakeOpenAI) -> None:
    cancelled = threading.Event()

    def held(prompt: str, n: int) -> list[tuple[str, str]]:  # answered once it was cancelled
        cancelled.wait(120)
        return [("four", "stop")] * n

    keep_alive.responder = held

    async def main(t: Http1Transport) -> int:
        task = asyncio.ensure_future(t.post(keep_alive.base_url, "/chat/completions", BODY))
        while not keep_alive.log:  # the request is at the server
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        cancelled.set()
        status, _, _ = await t.post(keep_alive.base_url, "/chat/completions", BODY)
        return status

    assert run(main) == 200
    # The second request did not go down the cancelled one's connection (its answer would
    # have been taken for the second's).
    assert len(set(keep_alive.peers)) == 2


# ---------------------------------------------------------------- what is sent


def test_the_request_as_written() -> None:
    server = RawServer([(response(ok_body(), f"Content-Length: {len(ok_body())}"), True)])
    try:
        status, _, _ = post_once(server.url, api_key="sk-test")
    finally:
        server.close()
    assert status == 200
    head, _, body = server.requests[0].partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /v1/chat/completions HTTP/1.1"
    fields = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    assert fields["host"] == server.url.split("/")[2]
    assert fields["authorization"] == "Bearer sk-test"
    assert fields["content-type"] == "application/json"
    assert int(fields["content-length"]) == len(body)
    assert json.loads(body) == BODY


@pytest.mark.parametrize(
    ("url", "handled"),
    [
        ("http://127.0.0.1:8000/v1", True),
        ("https://api.openai.com/v1/", True),
        ("http://[::1]:8000/v1", True),
        ("http://user:secret@127.0.0.1:8000/v1", False),  # aiohttp sends the user's credentials
        ("https://example.com/openai?api-version=1", False),
    ],
)
def test_which_base_urls_it_carries_itself(url: str, handled: bool) -> None:
    origin = parse_origin(url, None)
    assert (origin is not None) == handled
    if origin is not None:
        host_line = origin.head.split(b"\r\n")[0].decode()
        assert host_line == "Host: " + url.split("/")[2]
        assert origin.prefix == "/v1"


# ---------------------------------------------------------------- what comes back


def test_a_chunked_body_is_joined() -> None:
    data = ok_body("chunked four")
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (data[:10], data[10:]))
    status, _, got = answered(response(chunked + b"0\r\n\r\n", "Transfer-Encoding: chunked"))
    assert (status, got) == (200, data)


@pytest.mark.parametrize("coding", ["gzip", "deflate", "raw-deflate"])
def test_a_compressed_body_is_decoded(coding: str) -> None:
    data = ok_body("compressed four")
    if coding == "gzip":
        packed = gzip.compress(data)
    elif coding == "deflate":
        packed = zlib.compress(data)
    else:  # deflate without the zlib wrapper, as some servers send it
        packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        packed = packer.compress(data) + packer.flush()
    name = "deflate" if coding == "raw-deflate" else coding
    answer = response(packed, f"Content-Encoding: {name}", f"Content-Length: {len(packed)}")
    status, headers, got = answered(answer)
    assert (status, got) == (200, data)
    assert headers["content-encoding"] == name


def test_a_body_that_ends_with_the_connection_is_read_whole() -> None:
    data = ok_body("until close")
    server = RawServer(
        [(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" + data, True)]
    )
    try:
        status, _, got = post_once(server.url)
    finally:
        server.close()
    assert (status, got) == (200, data)


def test_an_interim_answer_is_passed_over() -> None:
    data = ok_body("after early hints")
    interim = b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
    status, headers, got = answered(interim + response(data, f"Content-Length: {len(data)}"))
    assert (status, got) == (200, data)
    assert "link" not in headers


def test_headers_come_back_lowercased_with_an_error_status() -> None:
    body = b'{"error": {"message": "slow down"}}'
    answer = response(
        body, "Retry-After-Ms: 250", f"Content-Length: {len(body)}", status="429 Too Many"
    )
    status, headers, got = answered(answer)
    assert status == 429
    assert headers["retry-after-ms"] == "250"
    assert json.loads(got) == {"error": {"message": "slow down"}}


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(b"SSH-2.0-OpenSSH_9.6\r\n", id="not-http"),
        pytest.param(b'HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{"cho', id="cut-short"),
        pytest.param(b"", id="closed-at-once"),
        pytest.param(
            response(b"xx", "Content-Encoding: br", "Content-Length: 2"), id="not-asked-br"
        ),
    ],
)
def test_what_is_not_a_whole_answer_may_have_been_sent(answer: bytes) -> None:
    with pytest.raises(TransportError) as failed:
        answered(answer, close=True)
    assert failed.value.sent
    assert not failed.value.refused
    assert str(failed.value).startswith(("connection dropped: ", "unreadable answer: "))


def test_a_stall_mid_answer_times_out_and_the_connection_is_not_reused() -> None:
    stalled = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"
    whole = response(ok_body(), f"Content-Length: {len(ok_body())}")
    server = RawServer([(stalled, False), (whole, False)])

    async def main(t: Http1Transport) -> int:
        with pytest.raises(TransportError) as failed:
            await t.post(server.url, "/chat/completions", BODY)
        assert str(failed.value) == "timed out after 1 s"
        assert failed.value.sent
        server.answers.insert(0, (whole, False))
        t._timeout = 300  # the stall never ends; this answer must not be cut short
        return (await t.post(server.url, "/chat/completions", BODY))[0]

    try:
        assert run(main, timeout=1.0) == 200
    finally:
        server.close()
    assert server.connections == 2  # the stalled connection was dropped, not asked again


# ---------------------------------------------------------------- TLS and proxies


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl (the command) makes the test certificate")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def tls_server(certificate: tuple[Path, Path]) -> Iterator[FakeOpenAI]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    server = FakeOpenAI(lambda prompt, n: [("secure four", "stop")] * n, tls=context)
    server.keep_alive = True
    yield server.start()
    server.stop()


def test_https_with_a_trusted_certificate(
    tls_server: FakeOpenAI, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    assert tls_server.base_url.startswith("https://")

    async def main(t: Http1Transport) -> list[str]:
        texts = []
        for _ in range(2):
            _, _, data = await t.post(tls_server.base_url, "/chat/completions", BODY)
            texts.append(json.loads(data)["choices"][0]["message"]["content"])
        return texts

    assert run(main) == ["secure four", "secure four"]
    assert len(set(tls_server.peers)) == 1


def test_https_with_an_untrusted_certificate_is_refused_unsent(tls_server: FakeOpenAI) -> None:
    with pytest.raises(TransportError) as failed:
        post_once(tls_server.base_url)
    assert failed.value.refused
    assert not failed.value.sent
    assert "CERTIFICATE_VERIFY_FAILED" in str(failed.value)
    assert tls_server.requests == []


def test_a_proxy_variable_sends_requests_through_the_proxy(
    keep_alive: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as sock:  # nothing listens at the target: only the proxy answers
        sock.bind(("127.0.0.1", 0))
        target = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    monkeypatch.setenv("HTTP_PROXY", keep_alive.base_url.removesuffix("/v1"))
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    status, _, _ = post_once(target)
    assert status == 200
    assert keep_alive.requests[0]["path"] == target + "/chat/completions"  # a proxy's request


# ---------------------------------------------------------------- what review found


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_an_answer_sent_on_accept_is_never_a_crash(
    loop: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server shedding load answers 503 and closes as soon as it accepts. Seen before the
    request is written, that answer is no request's: the connection is dropped, unsent; seen
    after (the server cannot be told from one that read the request), it is the answer."""
    if loop == "asyncio":
        monkeypatch.setenv("LEMAGEN_EVENT_LOOP", "asyncio")
    body = b'{"error": {"message": "overloaded"}}'
    shed = response(
        body, f"Content-Length: {len(body)}", "Connection: close", status="503 Unavailable"
    )
    server = RawServer([], greet=shed)

    async def main(t: Http1Transport) -> list[int | tuple[str, bool]]:
        got: list[int | tuple[str, bool]] = []
        for _ in range(5):
            try:
                got.append((await t.post(server.url, "/chat/completions", BODY))[0])
            except TransportError as exc:  # the close beat the answer: a drop, never a crash
                got.append((str(exc), exc.sent))
        return got

    try:
        got = run(main, timeout=60)
    finally:
        server.close()
    unsent = ("connection dropped: the server answered before the request was sent", False)
    dropped = [g for g in got if g != 503 and g != unsent]
    assert all(isinstance(g, tuple) and g[0].startswith("connection dropped: ") for g in dropped)
    assert len(got) == 5


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_a_server_that_closes_on_accept_fails_each_request_at_once(
    loop: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if loop == "asyncio":
        monkeypatch.setenv("LEMAGEN_EVENT_LOOP", "asyncio")
    server = RawServer([], greet=b"")

    async def main(t: Http1Transport) -> list[TransportError]:
        failures = []
        for _ in range(5):
            with pytest.raises(TransportError) as failed:
                await t.post(server.url, "/chat/completions", BODY)
            failures.append(failed.value)
        return failures

    try:
        failures = run(main, timeout=300)
    finally:
        server.close()
    # Each at once: not a timeout each (which would say "timed out after 300 s").
    assert [str(f).split(": ")[0] for f in failures] == ["connection dropped"] * 5
    assert not any(f.refused for f in failures)


def test_a_drop_after_a_bodiless_answer_is_not_that_answer_again() -> None:
    """A keep-alive 204 with no length, then the next request's connection drops: the second
    request fails; it does not get the 204's status and headers back."""
    server = RawServer([(b"HTTP/1.1 204 No Content\r\n\r\n", False), (b"", True)])

    async def main(t: Http1Transport) -> int:
        status = (await t.post(server.url, "/chat/completions", BODY))[0]
        with pytest.raises(TransportError):
            await t.post(server.url, "/chat/completions", BODY)
        return status

    try:
        assert run(main) == 204
    finally:
        server.close()


def test_a_cut_chunked_body_named_in_capitals_is_not_taken_whole() -> None:
    cut = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n40\r\n" + ok_body()[:20]
    with pytest.raises(TransportError) as failed:
        answered(cut, close=True)
    assert failed.value.sent


@pytest.mark.parametrize("name", ["gzip", "GZIP"])
def test_every_gzip_member_is_read_whatever_the_case(name: str) -> None:
    data = ok_body("two members")
    packed = gzip.compress(data[:15]) + gzip.compress(data[15:])
    answer = response(packed, f"Content-Encoding: {name}", f"Content-Length: {len(packed)}")
    status, _, got = answered(answer)
    assert (status, got) == (200, data)


def test_a_failed_lookup_is_asked_again(keep_alive: FakeOpenAI) -> None:
    url = keep_alive.base_url.replace("127.0.0.1", "localhost")
    calls: list[str] = []

    async def fail_first(n: int) -> None:
        if n == 1:
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    async def main(t: Http1Transport) -> int:
        count_lookups(calls, fail_first)
        with pytest.raises(TransportError) as failed:
            await t.post(url, "/chat/completions", BODY)
        assert failed.value.refused
        assert "Temporary failure" in str(failed.value)
        return (await t.post(url, "/chat/completions", BODY))[0]

    assert run(main) == 200
    assert calls == ["localhost", "localhost"]


def test_a_request_that_gives_up_on_a_slow_lookup_leaves_it_to_the_others(
    keep_alive: FakeOpenAI,
) -> None:
    url = keep_alive.base_url.replace("127.0.0.1", "localhost")
    calls: list[str] = []

    async def slow(n: int) -> None:
        await asyncio.sleep(0.3)

    async def main(t: Http1Transport) -> int:
        count_lookups(calls, slow)
        first = asyncio.ensure_future(t.post(url, "/chat/completions", BODY))
        await asyncio.sleep(0.05)
        first.cancel()
        status = (await t.post(url, "/chat/completions", BODY))[0]
        status2 = (await t.post(url, "/chat/completions", BODY))[0]
        assert first.cancelled()
        return status + status2

    assert run(main) == 400
    assert calls == ["localhost"]  # one lookup, not cut short by the cancelled request


def test_a_base_url_no_request_can_go_to_is_refused_with_why() -> None:
    with pytest.raises(TransportError) as failed:
        post_once("http://127.0.0.1:99999/v1")
    assert failed.value.refused
    assert not failed.value.sent
    assert "Port out of range" in str(failed.value)
    with pytest.raises(TransportError) as failed:
        post_once(f"http://{'a' * 70}.example/v1")
    assert failed.value.refused
    assert "label" in str(failed.value)


def test_non_ascii_paths_and_hosts_go_out_encoded() -> None:
    server = RawServer([(response(ok_body(), f"Content-Length: {len(ok_body())}"), True)])
    try:
        status, _, _ = post_once(server.url.replace("/v1", "/v\u00e9"))
    finally:
        server.close()
    assert status == 200
    assert server.requests[0].split(b"\r\n")[0] == b"POST /v%C3%A9/chat/completions HTTP/1.1"
    origin = parse_origin("https://\u043f\u0440\u0438\u043c\u0435\u0440.com/v1", None)
    assert origin is not None
    assert origin.head.split(b"\r\n")[0] == b"Host: xn--e1afmkfd.com"


@pytest.mark.parametrize("key", ["sk-a\nX-Injected: 1", "sk-\u20ac"])
def test_a_key_that_would_break_the_header_is_never_written(key: str) -> None:
    with pytest.raises(ValueError, match="API key"):
        parse_origin("http://127.0.0.1:8000/v1", key)


def test_a_proxy_that_refuses_is_named_as_the_one_refusing(
    keep_alive: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{sock.getsockname()[1]}"
    monkeypatch.setenv("HTTP_PROXY", nowhere)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with pytest.raises(TransportError) as failed:
        post_once(keep_alive.base_url)
    assert str(failed.value) == "the proxy (from HTTP_PROXY/HTTPS_PROXY): connection refused"
    assert failed.value.refused
    assert keep_alive.requests == []


@pytest.mark.parametrize("said", [True, False])
def test_a_connection_idle_too_long_is_not_used_again(
    said: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Servers close idle connections (uvicorn after 5 s): one idle for about that long is
    replaced before a request can cross the close. How long: what `Keep-Alive: timeout=N`
    says (here 1 s: reused for 0.5 s), else IDLE_REUSE."""
    if not said:
        monkeypatch.setattr(http1, "IDLE_REUSE", 0.5)
    extra = ["Keep-Alive: timeout=1"] if said else []
    whole = response(ok_body(), f"Content-Length: {len(ok_body())}", *extra)
    server = RawServer([(whole, False)] * 3)

    async def main(t: Http1Transport) -> list[int]:
        statuses = [(await t.post(server.url, "/chat/completions", BODY))[0]]
        statuses.append((await t.post(server.url, "/chat/completions", BODY))[0])  # at once
        await asyncio.sleep(0.8)
        statuses.append((await t.post(server.url, "/chat/completions", BODY))[0])
        return statuses

    try:
        assert run(main) == [200, 200, 200]
    finally:
        server.close()
    assert server.connections == 2  # the first reused at once, replaced after 0.8 s idle
