"""Every transport on its own against the loopback server: answers of every status come
back with their headers (Retry-After must survive the trip), and what has no answer says
whether it may have been sent and whether the endpoint refused."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator, Mapping

import pytest

from lemagen.engine.clients import make_transport
from lemagen.engine.engine import new_event_loop
from lemagen.engine.responses import error_message, read_choices
from lemagen.engine.transports import TRANSPORTS, Kind, TransportError
from tests.fake_openai import FakeOpenAI

BODY = {"model": "m", "n": 2, "messages": [{"role": "user", "content": "2 + 2?"}]}


def post(
    kind: str, base_url: str, *, timeout: float = 30.0, api_key: str | None = None
) -> tuple[int, Mapping[str, str], bytes]:
    async def main() -> tuple[int, Mapping[str, str], bytes]:
        transport = make_transport(_kind(kind), api_key, timeout)
        await transport.start()
        try:
            status, headers, data = await transport.post(base_url, "/chat/completions", BODY)
            return status, dict(headers.items()), data
        finally:
            await transport.close()

    loop = new_event_loop()  # the engine's (uvloop)
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


def _kind(name: str) -> Kind:
    kinds: dict[str, Kind] = {"http": "http", "aiohttp": "aiohttp", "openai": "openai"}
    assert set(kinds) == set(TRANSPORTS)
    return kinds[name]


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # closed again: nothing listens there


@pytest.fixture
def echo() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI(lambda prompt, n: [(f"answer {i}", "stop") for i in range(n)]).start()
    yield server
    server.stop()


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_a_200_comes_back_as_bytes(echo: FakeOpenAI, kind: str) -> None:
    echo.api_key = "sk-test"
    status, _, data = post(kind, echo.base_url, api_key="sk-test")
    assert status == 200
    payload = json.loads(data)
    assert [c["message"]["content"] for c in payload["choices"]] == ["answer 0", "answer 1"]
    assert echo.requests[0]["body"] == BODY


@pytest.mark.parametrize("kind", TRANSPORTS)
@pytest.mark.parametrize(
    ("status", "headers"),
    [(429, {"retry-after-ms": "250"}), (429, {"Retry-After": "3"}), (503, {"Retry-After": "7"})],
)
def test_error_statuses_come_back_with_their_headers(
    echo: FakeOpenAI, kind: str, status: int, headers: dict[str, str]
) -> None:
    echo.errors.append((status, {"error": {"message": "slow down"}}, headers))
    got, got_headers, data = post(kind, echo.base_url)
    assert got == status
    lowered = {k.lower(): v for k, v in got_headers.items()}
    for name, value in headers.items():
        assert lowered[name.lower()] == value
    assert json.loads(data) == {"error": {"message": "slow down"}}


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_a_refused_connection_was_not_sent(kind: str) -> None:
    with pytest.raises(TransportError) as failed:
        post(kind, f"http://127.0.0.1:{unused_port()}/v1")
    assert failed.value.refused
    assert not failed.value.sent
    if kind != "openai":  # the SDK's wording is httpx's ("All connection attempts failed")
        assert str(failed.value) == "connection refused"


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_a_dropped_connection_may_have_been_sent(echo: FakeOpenAI, kind: str) -> None:
    echo.faults = lambda body: "drop"
    with pytest.raises(TransportError) as failed:
        post(kind, echo.base_url)
    assert failed.value.sent
    assert not failed.value.refused
    assert str(failed.value).startswith("connection dropped: ")
    assert "refused" not in str(failed.value)  # a drop is never reported as a refusal


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_a_timeout_may_have_been_sent(echo: FakeOpenAI, kind: str) -> None:
    """The server holds the answer past the deadline (a second: connecting and sending on
    loopback fit in it on any machine, so the request went)."""
    over = threading.Event()
    responder = echo.responder

    def held(prompt: str, n: int) -> list[tuple[str, str]]:
        over.wait(120)
        return responder(prompt, n)

    echo.responder = held
    try:
        with pytest.raises(TransportError) as failed:
            post(kind, echo.base_url, timeout=1.0)
    finally:
        over.set()
    assert failed.value.sent
    assert not failed.value.refused
    assert str(failed.value) == "timed out after 1 s"
    assert len(echo.log) == 1  # it reached the server


# ---------------------------------------------------------------- reading what came back


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(b'{"error": {"message": "slow down"}}', "slow down", id="openai-error"),
        pytest.param(b'{"error": "overloaded"}', "overloaded", id="error-string"),
        pytest.param(
            b"<html>502 Bad Gateway</html>\n<p>nginx</p>",
            "<html>502 Bad Gateway</html>",
            id="html-first-line",
        ),
        pytest.param(b"\n  upstream timed out \n", "upstream timed out", id="text-stripped"),
        pytest.param(b"bad \xff byte", "bad \ufffd byte", id="not-utf-8"),
        pytest.param(b"x" * 300, "x" * 200, id="long-line-cut"),
        pytest.param(b"", "(empty body)", id="empty"),
    ],
)
def test_error_message_of_any_body(data: bytes, message: str) -> None:
    """The message in an error body, whatever a server or a proxy in front of it sent."""
    assert error_message(data) == message


def test_choices_come_in_index_order_with_or_without_an_index() -> None:
    def body(*choices: dict[str, object]) -> bytes:
        return json.dumps({"choices": list(choices), "usage": {"prompt_tokens": 3}}).encode()

    a: dict[str, object] = {"message": {"content": "a"}}
    b: dict[str, object] = {"message": {"content": "b"}}
    read = read_choices(body({**b, "index": 1}, {**a, "index": 0}), "chat")
    assert read is not None
    assert (read.texts, read.prompt_tokens, read.completion_tokens) == (["a", "b"], 3, None)
    read = read_choices(body(a, b), "chat")  # servers that leave `index` out
    assert read is not None
    assert read.texts == ["a", "b"]
    completion = read_choices(body({"text": "x"}, {"text": None}), "completion")
    assert completion is not None
    assert completion.texts == ["x", ""]


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_thinking_returned_apart_is_put_back_as_a_think_block(field: str) -> None:
    message = {"content": "The answer is 4.", field: "2 + 2 = 4"}
    read = read_choices(json.dumps({"choices": [{"message": message}]}).encode(), "chat")
    assert read is not None
    assert read.texts == ["<think>2 + 2 = 4</think>The answer is 4."]
    blank = {"content": "The answer is 4.", field: "  "}
    read = read_choices(json.dumps({"choices": [{"message": blank}]}).encode(), "chat")
    assert read is not None
    assert read.texts == ["The answer is 4."]


def test_the_engine_runs_on_uvloop_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvloop

    monkeypatch.delenv("LEMAGEN_EVENT_LOOP", raising=False)
    loop = new_event_loop()
    assert isinstance(loop, uvloop.Loop)
    loop.close()
    monkeypatch.setenv("LEMAGEN_EVENT_LOOP", "asyncio")
    loop = new_event_loop()
    assert not isinstance(loop, uvloop.Loop)
    assert isinstance(loop, asyncio.AbstractEventLoop)
    loop.close()
