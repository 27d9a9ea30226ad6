"""The engine itself, driven directly (no CLI) against the loopback server: what it waits
after a 429 or 503 carrying Retry-After, the --tpm refund, and its lifecycle. Gaps are
measured on the server's clock from its log of exchanges."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from lemagen.engine import (
    TRANSPORTS,
    Call,
    Engine,
    EngineConfig,
    Generation,
    RequestFailed,
    Sampling,
    run_batches,
    run_rows,
)
from lemagen.engine.calls import Api, RequestShape
from lemagen.engine.runner import CALLLESS_GROUP
from lemagen.errors import EndpointError
from tests.fake_openai import TIMER_SLACK, FakeOpenAI, Reply, wait_until

SLOW_DOWN = {"error": {"message": "slow down"}}


def config(server: FakeOpenAI, **overrides: object) -> EngineConfig:
    cfg = EngineConfig(base_urls=[server.base_url], retry_delay=0.001, max_retries=3)
    for name, value in overrides.items():
        setattr(cfg, name, value)
    return cfg


def ask(prompt: str, n: int = 1, max_tokens: int | None = None) -> Call:
    return Call("m", prompt, n, Sampling(max_tokens=max_tokens))


def send(engine: Engine, calls: list[Call]) -> list[Generation | RequestFailed]:
    """Every call as its own row; results in the order of `calls`."""
    got = dict(run_rows(engine, range(len(calls)), lambda i: [calls[i]], max_pending=64))
    return [got[i][0] for i in range(len(calls))]


# ---------------------------------------------------------------- Retry-After


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    ("status", "headers", "wait"),
    [
        (429, {"retry-after-ms": "300"}, 0.3),
        (429, {"Retry-After": "1"}, 1.0),
        (503, {"retry-after-ms": "300"}, 0.3),
    ],
    ids=["429-retry-after-ms", "429-retry-after-seconds", "503-retry-after-ms"],
)
def test_the_retry_waits_as_long_as_retry_after_says(
    server: FakeOpenAI, transport: str, status: int, headers: dict[str, str], wait: float
) -> None:
    """With a 1 ms --retry-delay, only the header can make the engine wait this long."""
    server.errors.append((status, SLOW_DOWN, headers))
    with Engine(config(server, transport=transport)) as engine:
        (result,) = send(engine, [ask("2 + 2?")])
    assert isinstance(result, Generation)
    refused, retry = server.log
    assert refused.status == status
    assert refused.writing is not None
    assert retry.status == 200
    assert retry.arrived - refused.writing >= wait - TIMER_SLACK
    assert engine.stats.retries == 1
    assert engine.stats.rate_limited == (1 if status == 429 else 0)


def test_without_retry_after_the_retry_uses_the_backoff(server: FakeOpenAI) -> None:
    server.errors.append((429, SLOW_DOWN))
    with Engine(config(server, retry_delay=0.2)) as engine:
        send(engine, [ask("2 + 2?")])
    refused, retry = server.log
    assert refused.writing is not None
    assert retry.arrived - refused.writing >= 0.1 - TIMER_SLACK  # at least half the first delay


# ---------------------------------------------------------------- --tpm


def test_tpm_gives_back_the_unused_part_of_each_reservation(server: FakeOpenAI) -> None:
    """Each call books its estimate (18 prompt + 100 completion tokens, 11.8 s at 10 tokens
    a second) and uses 2 tokens (0.2 s). With the refund, five calls one after the other
    never wait (they fit the second of burst); without it, the fifth could not start before
    4 * 11.8 - 1 = 46.2 s. The bound between is a backstop no loaded machine comes near."""
    with Engine(config(server, tpm=600)) as engine:
        for i in range(5):
            (result,) = send(engine, [ask(f"{i:040d}", max_tokens=100)])
            assert isinstance(result, Generation)
            assert result.usage == {"prompt_tokens": 1, "completion_tokens": 1}
    assert len(server.log) == 5
    assert server.log[-1].arrived - server.log[0].arrived < 30.0


def test_tpm_holds_back_a_request_that_would_pass_the_limit(server: FakeOpenAI) -> None:
    """At 30 tokens a minute (0.5 a second) the first call goes at once and, refunded down to
    the 2 tokens it used, holds the next one back until 2 / 0.5 - 1 = 3 s after it started.
    Only a lower bound on the server's clock is asserted: a slow machine widens the gap."""
    with Engine(config(server, tpm=30)) as engine:
        for i in range(2):
            (result,) = send(engine, [ask(f"{i:040d}", max_tokens=100)])
            assert isinstance(result, Generation)
    first, second = server.log
    assert second.arrived - first.arrived >= 1.5


# ---------------------------------------------------------------- lifecycle and errors


@pytest.mark.parametrize("api", ["chat", "completion"])
def test_results_usage_and_the_store(server: FakeOpenAI, tmp_path: Path, api: Api) -> None:
    calls = [ask("2 + 2?", n=3), ask("3 + 3?", n=2), ask("2 + 2?", n=3)]
    with Engine(config(server, api=api, cache_dir=tmp_path)) as engine:
        results = send(engine, calls)
    assert [len(r.choices) for r in results if isinstance(r, Generation)] == [3, 2, 3]
    assert len(server.requests) == 2  # the duplicate was joined to the first
    assert engine.stats.requests == 2
    assert engine.stats.prompt_tokens == 3 + 3  # words of each prompt sent
    assert engine.stats.completion_tokens == 3 + 2
    with Engine(config(server, api=api, cache_dir=tmp_path)) as again:
        assert len(again.stored(calls[0].keys(api))) == 3
        send(again, calls)
    assert len(server.requests) == 2
    assert again.stats.cached == 8


def test_a_rejected_key_stops_the_run_after_one_request(server: FakeOpenAI) -> None:
    server.api_key = "sk-right"
    with Engine(config(server, api_key="sk-wrong")) as engine, pytest.raises(EndpointError):
        send(engine, [ask(f"{i} + {i}?") for i in range(20)])
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("setup", "api_key", "message"),
    [
        pytest.param(
            {"api_key": "sk-right"},
            "sk-wrong",
            "API key rejected (HTTP 401: Incorrect API key provided.)",
            id="401-wrong-key",
        ),
        pytest.param(
            {"api_key": "sk-right"},
            None,
            "API key rejected (HTTP 401: Incorrect API key provided.); set OPENAI_API_KEY",
            id="401-no-key-hints-the-variable",
        ),
        pytest.param(
            {"errors": [(403, {"error": {"message": "no access to m"}})]},
            None,
            "access denied (HTTP 403: no access to m)",
            id="403-no-key-no-hint",
        ),
        pytest.param(
            {"models": {"other"}},
            None,
            "model or route not found (HTTP 404: The model `m` does not exist.)",
            id="404",
        ),
    ],
)
def test_fatal_statuses_stop_the_run_with_one_line(
    server: FakeOpenAI, setup: dict[str, object], api_key: str | None, message: str
) -> None:
    for name, value in setup.items():
        if name == "errors":
            assert isinstance(value, list)
            server.errors.extend(value)
        else:
            setattr(server, name, value)
    with Engine(config(server, api_key=api_key)) as engine, pytest.raises(EndpointError) as stop:
        send(engine, [ask("2 + 2?")])
    assert str(stop.value) == f"endpoint {server.base_url}, model 'm': {message}"
    assert len(server.requests) == 1


def test_the_request_shape_reaches_the_server(server: FakeOpenAI) -> None:
    """--system and --extra-body go out with every call; a stage's own extra (`correct
    --json`'s response_format) is merged over --extra-body."""
    shape = RequestShape(system="Be brief.", extra={"top_k": 5, "mode": "shape"})
    call = shape.call("m", "2 + 2?", 1, Sampling(), {"mode": "stage"})
    with Engine(config(server)) as engine:
        (result,) = send(engine, [call])
    assert isinstance(result, Generation)
    body = server.requests[0]["body"]
    assert (body["top_k"], body["mode"]) == (5, "stage")
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "2 + 2?"},
    ]


def test_a_400_fails_the_call_without_a_retry(server: FakeOpenAI) -> None:
    server.errors.append((400, {"error": {"message": "prompt too long"}}))
    with Engine(config(server)) as engine:
        (result,) = send(engine, [ask("2 + 2?")])
    assert isinstance(result, RequestFailed)
    assert str(result) == "HTTP 400: prompt too long"
    assert (engine.stats.failed, engine.stats.retries) == (1, 0)


def test_closing_with_calls_in_flight_cancels_them(server: FakeOpenAI) -> None:
    """The server holds the answer until the engine is closed: closing does not wait for it
    (if it did, the answer would come after the backstop, and be served)."""
    closed = threading.Event()
    responder = server.responder

    def held(prompt: str, n: int) -> list[Reply]:
        closed.wait(120)
        return responder(prompt, n)

    server.responder = held
    outcomes: list[tuple[int, BaseException | object]] = []
    engine = Engine(config(server)).__enter__()
    try:
        engine.submit_many([[ask("2 + 2?")]], lambda i, outcome: outcomes.append((i, outcome)))
        wait_until(lambda: len(server.log) > 0, "the request at the server")
        engine.close()
        engine.close()  # closing twice is harmless
        answered = len(server.served)
    finally:
        closed.set()
    assert answered == 0  # did not wait for the answer
    assert [(i, type(outcome).__name__) for i, outcome in outcomes] == [(0, "CancelledError")]


# ---------------------------------------------------------------- reading rows


def test_rows_with_nothing_to_send_come_back_in_small_groups(server: FakeOpenAI) -> None:
    """Rows with no calls (a sample `correct` passes on, a chunk of rows written from the row
    book) are handed back at once in groups of at most CALLLESS_GROUP, so what they hold is
    written before more is read, and every one comes back."""
    with Engine(config(server)) as engine:
        batches = list(run_batches(engine, range(100), lambda i: [], max_pending=64))
    assert [row for batch in batches for row, _ in batch] == list(range(100))
    assert max(len(batch) for batch in batches) == CALLLESS_GROUP
    assert server.requests == []
