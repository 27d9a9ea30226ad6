"""Under pressure: retries that cannot storm or stall, and adaptive concurrency.

Unit tests drive `limits.retry_wait`, `limits.rate_limit_reset` and `adaptive.Control` with
a fake clock; the rest drive the engine against the loopback server's token bucket (a limit
the way providers enforce it) and assert on what the server saw: counts, and the order of
arrivals in its log. Speed is measured in benchmarks/bench_engine.py, not here."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from pathlib import Path

import pytest

from lemagen.engine import Call, Engine, EngineConfig, Generation, RequestFailed, Sampling, run_rows
from lemagen.engine.adaptive import CONGESTED_SHARE, MIN_WINDOW, Control, Slots
from lemagen.engine.limits import duration, rate_limit_reset, retry_wait
from tests.clock import FakeClock
from tests.conftest import EXAMPLES, load_jsonl, records, run
from tests.fake_openai import TIMER_SLACK, FakeOpenAI, RandomFaults, TokenBucket

# ---------------------------------------------------------------- the wait before a retry


def test_the_servers_wait_is_a_floor_under_the_backoff_not_a_replacement() -> None:
    top = lambda a, b: b  # noqa: E731 - the jitter's upper end
    assert retry_wait(1.0, 1, 0.007, uniform=top) == 1.0  # "7 ms" does not cut the backoff
    assert retry_wait(1.0, 4, 0.007, uniform=top) == 8.0  # it keeps doubling
    assert retry_wait(0.01, 1, 3.0, uniform=top) == 3.0  # and never waits less than asked
    assert retry_wait(0.5, 2, None, uniform=top) == 1.0
    # ten retries against a server that keeps saying "7 ms" take minutes, not a few seconds
    low = lambda a, b: a  # noqa: E731
    assert sum(retry_wait(1.0, k, 0.007, uniform=low) for k in range(1, 11)) > 100


def test_rate_limit_reset_headers() -> None:
    assert [duration(t) for t in ("20ms", "1s", "6m0s", "1h2m3.5s", "0.5", "soon", "1x")] == [
        0.02, 1.0, 360.0, 3723.5, 0.5, None, None,
    ]  # fmt: skip
    exhausted = {
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "1.5s",
        "x-ratelimit-remaining-tokens": "4000",
        "x-ratelimit-reset-tokens": "20s",
    }
    assert rate_limit_reset(exhausted) == 1.5  # the tokens are not what ran out
    assert rate_limit_reset({**exhausted, "x-ratelimit-remaining-tokens": "0"}) == 20.0
    assert rate_limit_reset({"x-ratelimit-reset-requests": "2s"}) == 2.0  # no counts sent
    assert rate_limit_reset({**exhausted, "x-ratelimit-remaining-requests": "9"}) is None
    assert rate_limit_reset({}) is None


# ---------------------------------------------------------------- adaptive concurrency


def window(control: Control, answers: int, congested: int, pause: float | None = None) -> bool:
    """Feed one window's answers (the congested ones last); whether the limit went down."""
    epoch = control.epoch
    down = False
    for i in range(answers):
        down |= control.answered(epoch, congested=i >= answers - congested, pause=pause)
    return down


def test_random_429s_never_shrink_the_limit() -> None:
    control = Control(64, clock=FakeClock())
    for _ in range(50):
        window(control, 64, int(64 * (CONGESTED_SHARE - 0.05)))  # 20% of each window: noise
    assert control.concurrency == 64
    assert control.decreases == 0


def test_a_real_limit_cuts_by_the_share_refused_then_climbs_one_a_window() -> None:
    clock = FakeClock()
    control = Control(64, clock=clock)
    old = control.epoch
    assert window(control, 64, 48, pause=0.4)  # 75% refused: at most halved
    assert control.concurrency == 32
    assert control.paused_until == clock.now + 0.4  # the stage pauses as long as asked
    # answers to requests sent before the cut do not cut again, nor pause longer
    for _ in range(200):
        assert not control.answered(old, congested=True, pause=30.0)
    assert (control.concurrency, control.paused_until) == (32, clock.now + 0.4)
    assert window(control, 32, 10)  # 31% refused: down to 69%
    assert control.concurrency == 22
    for expected in range(23, 28):  # clean windows: one more each
        assert not window(control, max(MIN_WINDOW, control.concurrency), 0)
        assert control.concurrency == expected
    for _ in range(100):
        window(control, 64, 0)
    assert control.concurrency == 64  # never above --concurrency
    assert control.lowest == 22


def test_the_servers_stated_limit_paces_sends() -> None:
    async def main() -> None:
        clock = FakeClock()
        control = Control(256, clock=clock, sleep=clock.sleep)
        control.heard({"x-ratelimit-limit-requests": "6000"})  # 100 a second
        start = clock.now
        for _ in range(150):
            await control.ready()
        # a quarter second's worth at once, then 95 a second
        assert clock.now - start == pytest.approx((150 - 95 / 4) / 95, abs=0.02)
        control.heard({"x-ratelimit-limit-requests": "many"})
        assert control.server_rpm == 6000

    asyncio.run(main())


@pytest.mark.parametrize("stated", ["0.001", "1e-300", "0.999"])
def test_a_stated_limit_under_one_a_minute_is_not_believed(
    stated: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Believed, it would hold every send for hours, or for ever; it is ignored (with one
    warning however often it is said), and a limit at the floor is still believed."""

    async def main() -> None:
        clock = FakeClock()
        control = Control(256, clock=clock, sleep=clock.sleep)
        for _ in range(3):
            control.heard({"x-ratelimit-limit-requests": stated}, "http://h/v1")
        start = clock.now
        for _ in range(10):
            await control.ready()
        assert clock.now == start  # nothing held back
        assert (control.server_rpm, control.pace) == (None, None)
        control.heard({"x-ratelimit-limit-requests": "1"}, "http://h/v1")
        assert control.server_rpm == 1

    with caplog.at_level(logging.WARNING, logger="lemagen"):
        asyncio.run(main())
    assert [r.getMessage() for r in caplog.records] == [
        f"endpoint http://h/v1 states a limit of {stated} requests per minute "
        "(x-ratelimit-limit-requests), below 1: not believed, ignored"
    ]


def test_slots_shrink_while_held() -> None:
    async def main() -> None:
        slots = Slots(4)
        for _ in range(4):
            await slots.acquire()
        slots.resize(2)
        waiter = asyncio.ensure_future(slots.acquire())
        await asyncio.sleep(0)
        for released in range(1, 3):
            slots.release()
            await asyncio.sleep(0)
            assert not waiter.done(), released  # 3, then 2 held: not below the new limit
        slots.release()
        await asyncio.sleep(0)
        assert waiter.done()
        assert slots.used == 2
        more = [asyncio.ensure_future(slots.acquire()) for _ in range(2)]
        await asyncio.sleep(0)
        slots.resize(3)  # raised: a waiter gets in at once
        await asyncio.sleep(0)
        assert [f.done() for f in more] == [True, False]
        more[1].cancel()  # a waiter that gives up holds no slot
        await asyncio.gather(more[1], return_exceptions=True)
        slots.release()
        await asyncio.wait_for(slots.acquire(), 1)  # a free slot: taken at once
        for _ in range(3):
            slots.release()
        assert slots.used == 0

    asyncio.run(main())


# ---------------------------------------------------------------- against the loopback server


def config(server: FakeOpenAI, **overrides: object) -> EngineConfig:
    cfg = EngineConfig(base_urls=[server.base_url], retry_delay=0.05, max_retries=10)
    for name, value in overrides.items():
        setattr(cfg, name, value)
    return cfg


def send_all(engine: Engine, count: int) -> list[Generation | RequestFailed]:
    calls = [Call("m", f"question {i}", 1, Sampling()) for i in range(count)]
    got = dict(run_rows(engine, range(count), lambda i: [calls[i]], max_pending=512))
    return [got[i][0] for i in range(count)]


def failures(results: list[Generation | RequestFailed]) -> list[str]:
    return [str(r) for r in results if isinstance(r, RequestFailed)]


def test_429s_slow_the_stage_without_stopping_it(server: FakeOpenAI) -> None:
    """10% of requests get 429 with a 3 s retry-after-ms. Each refused call waits at least
    that long, but the others go on meanwhile: on the server's clock, in the 3 s after a 429
    more requests arrive than could have been in flight when it was answered. (A pause every
    sender takes lets only the 15 others in flight arrive; going on takes only 6 requests a
    second, which the busiest machine does.)"""
    server.faults = RandomFaults(rate_429=0.10, seed=3)
    server.retry_after_ms = 3000
    server.delay = 0.01
    with Engine(config(server, concurrency=16)) as engine:
        results = send_all(engine, 400)
    assert failures(results) == []
    refused = [e for e in server.log if e.status == 429]
    assert len(refused) >= 20
    busy = 0
    for limited in refused:
        assert limited.answered is not None
        assert limited.writing is not None
        retry = next(e for e in server.log if e.key == limited.key and e.arrived > limited.arrived)
        assert retry.arrived - limited.writing >= 3.0 - TIMER_SLACK  # never sooner than asked
        end = limited.answered + 3.0
        busy += sum(limited.answered < e.arrived < end for e in server.log) > 16
    assert busy >= len(refused) // 2, (busy, len(refused))
    assert engine.stats.rate_limited == len(refused)
    assert engine.pool.endpoints[0].control.lowest >= 10  # random 429s: no collapse


def test_a_few_random_500s_are_retried_after_the_first_step_not_a_doubling_one(
    server: FakeOpenAI,
) -> None:
    """15% of answers are 500 while the rest are good: a call's second and third 500 in a row
    are retried after the first backoff step (between half and all of --retry-delay), not 2x
    and 4x it, so an unlucky call does not hold up the end of the run. On the server's clock
    a wait is never shorter than the engine's (a busy machine only lengthens it): the second
    step could never retry within --retry-delay, and the first retries most within it."""
    server.faults = RandomFaults(rate_500=0.15, seed=5)
    server.delay = 0.01
    with Engine(config(server, concurrency=16, retry_delay=1.0)) as engine:
        results = send_all(engine, 600)
    assert failures(results) == []
    by_key: dict[str, list[tuple[float, int | None, float | None]]] = {}
    for e in server.log:
        by_key.setdefault(e.key, []).append((e.arrived, e.status, e.writing))
    repeats = []  # the gap after a 500 that followed another 500 of the same call
    for tries in by_key.values():
        for (_, first, _), (_, second, writing), (arrived, _, _) in zip(
            tries, tries[1:], tries[2:], strict=False
        ):
            if first == second == 500:
                assert writing is not None
                repeats.append(arrived - writing)
    assert len(repeats) >= 3, repeats  # seeded: enough calls with two 500s in a row
    assert min(repeats) < 1.0, repeats  # the second step would be 1-2 s


def test_a_server_failing_everything_gets_a_doubling_backoff(server: FakeOpenAI) -> None:
    """Nothing succeeds meanwhile: each 500 in a row doubles the wait (at least half of
    0.2, 0.4, 0.8 s)."""
    for _ in range(3):
        server.errors.append((500, {"error": {"message": "down"}}))
    with Engine(config(server, retry_delay=0.2)) as engine:
        (result,) = send_all(engine, 1)
    assert isinstance(result, Generation)
    log = server.log
    assert [e.status for e in log] == [500, 500, 500, 200]
    gaps = []
    for failed, retry in itertools.pairwise(log):
        assert failed.writing is not None
        gaps.append(retry.arrived - failed.writing)
    least = [half - TIMER_SLACK for half in (0.1, 0.2, 0.4)]
    assert [gap >= low for gap, low in zip(gaps, least, strict=True)] == [True] * 3


def test_concurrency_converges_under_a_limit_without_headers(server: FakeOpenAI) -> None:
    """A 200 requests/s bucket that says nothing of its limit, 20 ms per answer: about 4 in
    flight get through. From --concurrency 64, the limit comes down, and in the second half
    of the run far fewer requests are refused than go through."""
    server.bucket = TokenBucket(rate=200, burst=10, headers=False)
    server.delay = 0.02
    with Engine(config(server, concurrency=64)) as engine:
        results = send_all(engine, 600)
    assert failures(results) == []
    control = engine.pool.endpoints[0].control
    assert control.decreases >= 1
    assert control.lowest < 32
    assert control.concurrency < 64
    late = server.log[len(server.log) // 2 :]
    refused = sum(e.status == 429 for e in late)
    assert refused < len(late) * 0.35, (refused, len(late))
    assert "concurrency" in engine.adaptation()


def test_a_stated_limit_is_met_without_hitting_it(server: FakeOpenAI) -> None:
    """A 150 requests/s bucket with x-ratelimit headers, at --concurrency 256: the first
    answer states the limit, sends are paced by it, and under 10% of requests are refused."""
    server.bucket = TokenBucket(rate=150, burst=75)
    server.delay = 0.02
    with Engine(config(server, concurrency=256)) as engine:
        results = send_all(engine, 300)
    assert failures(results) == []
    refused = sum(e.status == 429 for e in server.log)
    assert refused < 30, refused
    assert len(server.served) == 300
    assert engine.pool.endpoints[0].control.server_rpm == 9000
    assert "paced under the server's 150 req/s" in engine.adaptation()


def test_no_call_gives_up_while_the_server_answers_others(server: FakeOpenAI) -> None:
    """A tight limit and one retry allowed: calls are refused many times over, but none gives
    up, since other calls keep getting through."""
    server.bucket = TokenBucket(rate=100, burst=5, headers=False)
    with Engine(config(server, concurrency=64, max_retries=1, retry_delay=0.01)) as engine:
        results = send_all(engine, 200)
    assert failures(results) == []
    assert len(server.served) == 200
    assert engine.stats.rate_limited > 200  # many calls were refused more than once


def test_a_server_that_answers_nothing_but_429_is_given_up_on(server: FakeOpenAI) -> None:
    server.rule = lambda body: (429, {"error": {"message": "quota"}}, {"retry-after-ms": "1"})
    with Engine(config(server, concurrency=4, max_retries=2, retry_delay=0.001)) as engine:
        results = send_all(engine, 3)
    assert failures(results) == ["HTTP 429: quota (gave up after 3 attempts)"] * 3


def test_a_refusing_endpoint_sends_the_retry_to_a_live_one(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    """With the dead endpoint first and the default retry delay, every row still completes
    (a retry used to come back to the dead endpoint just as its pause ended, 11 times over)."""
    problems = tmp_path / "p.jsonl"
    rows = load_jsonl(EXAMPLES / "gsm8k.jsonl") * 4
    problems.write_text("".join(json.dumps({**r, "id": str(i)}) + "\n" for i, r in enumerate(rows)))
    result = run(
        "sample", str(problems), "-m", "r", "-n", "2", "--no-cache", "--max-retries", "2",
        "--base-url", "http://127.0.0.1:9/v1", "--base-url", fake.base_url, "-q",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert len({r["id"] for r in records(result)}) == 40
    assert len(fake.requests) == 10  # the same question asked 4 times is sent once
