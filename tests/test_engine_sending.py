"""The engine itself, driven directly (no CLI) against the loopback server: what it waits
after a 429 or 503 carrying Retry-After, the --tpm refund, and its lifecycle. Gaps are
measured on the server's clock from its log of exchanges."""

from __future__ import annotations

import time
from collections.abc import Iterator
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
    run_rows,
)
from lemagen.engine.calls import Api
from lemagen.errors import EndpointError
from tests.fake_openai import FakeOpenAI

SLOW_DOWN = {"error": {"message": "slow down"}}


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI(lambda prompt, n: [("four", "stop")] * n).start()
    yield fake
    fake.stop()


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
    assert refused.answered is not None
    assert retry.status == 200
    assert retry.arrived - refused.answered >= wait
    assert engine.stats.retries == 1
    assert engine.stats.rate_limited == (1 if status == 429 else 0)


def test_without_retry_after_the_retry_uses_the_backoff(server: FakeOpenAI) -> None:
    server.errors.append((429, SLOW_DOWN))
    with Engine(config(server, retry_delay=0.2)) as engine:
        send(engine, [ask("2 + 2?")])
    refused, retry = server.log
    assert refused.answered is not None
    assert retry.arrived - refused.answered >= 0.1  # at least half the first delay


# ---------------------------------------------------------------- --tpm


def test_tpm_gives_back_the_unused_part_of_each_reservation(server: FakeOpenAI) -> None:
    """Each call books its estimate (18 prompt + 100 completion tokens, 1.18 s at 100
    tokens a second) and uses 2 tokens. With the refund, five calls one after the other never
    wait; without it, the fifth could not start before 5 * 1.18 - 1 = 3.7 s."""
    with Engine(config(server, tpm=6000)) as engine:
        for i in range(5):
            (result,) = send(engine, [ask(f"{i:040d}", max_tokens=100)])
            assert isinstance(result, Generation)
            assert result.usage == {"prompt_tokens": 1, "completion_tokens": 1}
    assert len(server.log) == 5
    assert server.log[-1].arrived - server.log[0].arrived < 2.0


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
        assert again.cached_samples(calls[0]) == 3
        send(again, calls)
    assert len(server.requests) == 2
    assert again.stats.cached == 8


def test_a_rejected_key_stops_the_run_after_one_request(server: FakeOpenAI) -> None:
    server.api_key = "sk-right"
    with Engine(config(server, api_key="sk-wrong")) as engine, pytest.raises(EndpointError):
        send(engine, [ask(f"{i} + {i}?") for i in range(20)])
    assert len(server.requests) == 1


def test_a_400_fails_the_call_without_a_retry(server: FakeOpenAI) -> None:
    server.errors.append((400, {"error": {"message": "prompt too long"}}))
    with Engine(config(server)) as engine:
        (result,) = send(engine, [ask("2 + 2?")])
    assert isinstance(result, RequestFailed)
    assert str(result) == "HTTP 400: prompt too long"
    assert (engine.stats.failed, engine.stats.retries) == (1, 0)


def test_closing_with_calls_in_flight_cancels_them(server: FakeOpenAI) -> None:
    server.delay = 5.0
    outcomes: list[BaseException | object] = []
    engine = Engine(config(server)).__enter__()
    engine.submit_many([[ask("2 + 2?")]], lambda i, outcome: outcomes.append(outcome))
    deadline = time.monotonic() + 30
    while not server.log and time.monotonic() < deadline:
        time.sleep(0.002)
    start = time.monotonic()
    engine.close()
    engine.close()  # closing twice is harmless
    assert time.monotonic() - start < 4.0  # did not wait for the answer
    assert len(outcomes) == 1
    assert type(outcomes[0]).__name__ == "CancelledError"
