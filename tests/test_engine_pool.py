"""The endpoint pool on its own, with a fake clock: rotation by load, a refusing endpoint
out of rotation with a doubling pause, strikes, and waiting when every endpoint is down."""

from __future__ import annotations

import asyncio

import pytest

from lemagen.engine.pool import MAX_PAUSE, EndpointPool
from tests.clock import FakeClock


def pool_of(*urls: str, concurrency: int = 4) -> tuple[EndpointPool, FakeClock]:
    clock = FakeClock()
    return EndpointPool(list(urls), concurrency, clock=clock, sleep=clock.sleep), clock


async def take(pool: EndpointPool, times: int) -> list[str]:
    """Where `times` requests go, one after the other (each released before the next)."""
    out = []
    for _ in range(times):
        endpoint = await pool.acquire()
        out.append(endpoint.url)
        pool.release(endpoint)
    return out


def test_requests_go_to_the_least_loaded_endpoint() -> None:
    async def main() -> None:
        pool, _ = pool_of("http://a/v1/", "http://b/v1", "http://c/v1")
        assert [e.url for e in pool.endpoints] == ["http://a/v1", "http://b/v1", "http://c/v1"]
        held = [await pool.acquire() for _ in range(6)]
        assert sorted(e.url for e in held) == sorted(["http://a/v1", "http://b/v1",
                                                      "http://c/v1"] * 2)  # fmt: skip
        assert [e.load for e in pool.endpoints] == [2, 2, 2]
        for endpoint in held:
            pool.release(endpoint)
        assert [e.load for e in pool.endpoints] == [0, 0, 0]

    asyncio.run(main())


def test_a_refusing_endpoint_leaves_rotation_for_a_doubling_pause() -> None:
    async def main() -> None:
        pool, clock = pool_of("http://dead", "http://live")
        dead, live = pool.endpoints
        pool.refused(dead, "connection refused")
        assert pool.up() == [live]
        assert set(await take(pool, 10)) == {"http://live"}  # not once to the dead one
        pauses = [dead.down_until - clock.now]
        for _ in range(8):  # it keeps refusing each time it is back
            clock.now = dead.down_until
            assert dead in pool.up()
            pool.refused(dead, "connection refused")
            pauses.append(dead.down_until - clock.now)
        assert pauses == [0.5, 1, 2, 4, 8, 16, MAX_PAUSE, MAX_PAUSE, MAX_PAUSE]
        clock.now = dead.down_until
        pool.succeeded(dead)
        assert dead.strikes == 0
        assert dead.refused is None
        held = [await pool.acquire(), await pool.acquire()]
        assert {e.url for e in held} == {"http://dead", "http://live"}  # back in rotation

    asyncio.run(main())


def test_every_endpoint_refusing_is_reported() -> None:
    pool, _ = pool_of("http://a", "http://b")
    a, b = pool.endpoints
    pool.refused(a, "connection refused")
    assert not pool.all_refused()
    pool.refused(b, "connection refused")
    assert pool.all_refused()
    pool.succeeded(a)
    assert not pool.all_refused()


def test_when_every_endpoint_is_down_acquire_waits_for_the_first_back() -> None:
    async def main() -> None:
        pool, clock = pool_of("http://a", "http://b")
        a, b = pool.endpoints
        pool.refused(a, "connection refused")
        pool.refused(a, "connection refused")  # a: out for 1 s
        pool.refused(b, "connection refused")  # b: out for 0.5 s
        start = clock.now
        endpoint = await pool.acquire()
        assert endpoint is b
        assert clock.now - start == pytest.approx(0.5)
        pool.release(endpoint)

    asyncio.run(main())


def test_a_single_refusing_endpoint_is_waited_for() -> None:
    async def main() -> None:
        pool, clock = pool_of("http://only")
        (only,) = pool.endpoints
        pool.refused(only, "connection refused")
        start = clock.now
        assert await pool.acquire() is only
        assert clock.now - start == pytest.approx(0.5)

    asyncio.run(main())


def test_three_strikes_take_an_endpoint_down_unless_it_is_the_last_one_up() -> None:
    pool, clock = pool_of("http://a", "http://b")
    a, b = pool.endpoints
    pool.strike(a)
    pool.strike(a)
    assert pool.up() == [a, b]
    pool.strike(a)
    assert pool.up() == [b]
    # The pause counts the strikes: the third strike's take-down is the fourth, 4 s.
    assert a.down_until - clock.now == pytest.approx(4.0)
    for _ in range(5):
        pool.strike(b)  # b is the only endpoint up: it stays
    assert pool.up() == [b]
    clock.now = a.down_until
    pool.succeeded(b)
    pool.strike(b)
    pool.strike(b)
    assert b in pool.up()  # a success started the count again


def test_per_endpoint_concurrency() -> None:
    async def main() -> None:
        pool, _ = pool_of("http://only", concurrency=2)
        first, second = await pool.acquire(), await pool.acquire()
        third = asyncio.ensure_future(pool.acquire())
        await asyncio.sleep(0)
        assert not third.done()  # both slots taken
        assert pool.endpoints[0].load == 3  # the waiting request counts as load
        pool.release(first)
        assert await third is first
        pool.release(second)
        pool.release(await third)
        assert pool.endpoints[0].load == 0

    asyncio.run(main())
