"""The limits on their own, with a fake clock: the rate limiter and its refund, the budget,
the backoff and the Retry-After forms (how retries use them: test_engine_pressure.py)."""

from __future__ import annotations

import asyncio
import email.utils

import pytest

from lemagen.engine.calls import RequestFailed
from lemagen.engine.limits import (
    MAX_BACKOFF,
    Budget,
    RateLimit,
    backoff,
    retry_after,
)
from tests.clock import FakeClock

# ---------------------------------------------------------------- rate


def test_rate_limit_allows_a_seconds_burst_then_spaces() -> None:
    clock = FakeClock()
    limit = RateLimit(per_minute=600, clock=clock)  # 10 a second
    waits = [limit.reserve(1) for _ in range(15)]
    assert waits == pytest.approx([0.0] * 11 + [0.1, 0.2, 0.3, 0.4])  # now, a second's worth
    clock.now += 10  # idle: the burst is back, not ten seconds of credit
    assert [limit.reserve(1) for _ in range(12)][-1] == pytest.approx(0.1)


def test_tpm_refund_gives_back_what_a_request_did_not_use() -> None:
    clock = FakeClock()
    tokens = RateLimit(per_minute=6000, clock=clock)  # 100 tokens a second
    assert tokens.reserve(150) == 0.0  # booked 1.5 s
    assert tokens.reserve(100) == pytest.approx(0.5)
    tokens.settle(booked=150, used=30)  # the first used 30: 1.2 s given back
    assert tokens.reserve(100) == pytest.approx(0.3)
    before = tokens.reserve(0)
    tokens.settle(booked=100, used=400)  # used more than booked: nothing given back, or taken
    assert tokens.reserve(0) == before


def test_refund_after_each_response_keeps_sequential_requests_unthrottled() -> None:
    clock = FakeClock()
    tokens = RateLimit(per_minute=6000, clock=clock)  # 100 tokens a second
    waits = []
    for _ in range(20):  # each books 118 tokens and uses 2, one after the other
        waits.append(tokens.reserve(118))
        clock.now += 0.01
        tokens.settle(118, 2)
    assert max(waits) < 1e-9


# ---------------------------------------------------------------- budget


def test_budget_waits_for_in_flight_and_stops_only_when_nothing_could_fit() -> None:
    async def scenario() -> None:
        budget = Budget(1.0)
        spent = [0.1]
        await budget.reserve(0.4, lambda: spent[0])
        await budget.reserve(0.4, lambda: spent[0])
        assert budget.in_flight == pytest.approx(0.8)
        waiting = asyncio.ensure_future(budget.reserve(0.2, lambda: spent[0]))  # 1.1 > 1
        await asyncio.sleep(0)
        assert not waiting.done()  # waits for what is in flight, does not stop
        spent[0] = 0.2  # the first came back, having cost 0.1 of its 0.4
        budget.release(0.4)
        await asyncio.wait_for(waiting, 1)  # 0.2 + 0.4 + 0.2 fits
        assert budget.in_flight == pytest.approx(0.6)
        assert not budget.stopped
        budget.release(0.4)
        budget.release(0.2)
        spent[0] = 0.85
        with pytest.raises(RequestFailed) as failed:
            await budget.reserve(0.2, lambda: spent[0])  # nothing in flight: 1.05 > 1
        assert failed.value.reason == "budget_exhausted"
        assert str(failed.value) == (
            "not sent: spent $0.8500 plus this request's worst case would pass --max-cost $1"
        )
        assert budget.stopped
        with pytest.raises(RequestFailed):
            await budget.reserve(0.01, lambda: spent[0])  # stopped: nothing more

    asyncio.run(scenario())


def test_a_stop_refuses_the_requests_waiting_too() -> None:
    async def scenario() -> None:
        budget = Budget(1.0)
        await budget.reserve(0.6, lambda: 0.0)
        waiting = asyncio.ensure_future(budget.reserve(0.6, lambda: 0.5))
        await asyncio.sleep(0)
        budget.release(0.6)  # it cost 0.5: 0.5 + 0.6 cannot fit with nothing in flight
        with pytest.raises(RequestFailed):
            await asyncio.wait_for(waiting, 1)
        assert budget.stopped

    asyncio.run(scenario())


def test_no_budget_never_refuses() -> None:
    async def scenario() -> None:
        budget = Budget(None)
        for _ in range(100):
            await budget.reserve(1e6, lambda: 1e9)
        assert not budget.stopped

    asyncio.run(scenario())


# ---------------------------------------------------------------- backoff


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    low = [backoff(0.5, attempt, uniform=lambda a, b: a) for attempt in range(1, 12)]
    high = [backoff(0.5, attempt, uniform=lambda a, b: b) for attempt in range(1, 12)]
    assert high[:5] == [0.5, 1, 2, 4, 8]
    assert low[:5] == [0.25, 0.5, 1, 2, 4]
    assert max(high) == MAX_BACKOFF
    assert 0.25 <= backoff(0.5, 1) <= 0.5


# ---------------------------------------------------------------- Retry-After


def test_retry_after_forms() -> None:
    assert retry_after({"retry-after-ms": "250"}) == 0.25
    assert retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25  # ms wins
    assert retry_after({"retry-after-ms": "soon", "retry-after": "2"}) == 2.0
    assert retry_after({"retry-after": "1.5"}) == 1.5
    assert retry_after({"retry-after": "-3"}) == 0.0
    assert retry_after({"retry-after-ms": "999999999"}) == 120.0  # capped
    date = email.utils.formatdate(1_000_030, usegmt=True)
    assert retry_after({"retry-after": date}, now=lambda: 1_000_000) == 30.0
    assert retry_after({"retry-after": date}, now=lambda: 1_000_100) == 0.0  # in the past
    assert retry_after({"retry-after": "soon"}) is None
    assert retry_after({}) is None
