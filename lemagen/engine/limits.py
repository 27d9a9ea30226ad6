"""What holds sends back: client-side rate limits (`--rpm`, `--tpm`), the budget
(`--max-cost`), and how long a call waits before its retry.

* `RateLimit` is a generic cell rate with one second's worth of burst; `--tpm` books each
  request's estimated tokens and gives back the unused part once the usage is known.
* `Budget` counts the worst case of the requests really in flight; a send waits while spent
  plus in flight plus its own worst case would pass the limit, and the run stops only when
  that holds with nothing in flight.
* `retry_wait`: a retry waits the exponential backoff of its attempt, and at least what the
  server asked (`retry-after-ms`, `Retry-After`, or on a 429 the `x-ratelimit-reset-*` of
  the exhausted limit): the server's figure bounds the wait from below and never replaces
  the backoff, so a call's retries are spread over time even when the server says "7 ms".
  How the whole stage slows down under 429s is `adaptive`'s part.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import re
import time
from collections.abc import Callable, Mapping

from lemagen.engine.calls import RequestFailed

MAX_BACKOFF = 60.0
MAX_RETRY_AFTER = 120.0

Clock = Callable[[], float]


class RateLimit:
    """Generic cell rate: `rate` units a second, with `burst` seconds' worth of burst."""

    def __init__(
        self, per_minute: float, clock: Clock = time.monotonic, *, burst: float = 1.0
    ) -> None:
        self.rate = per_minute / 60.0
        self.burst = burst
        self._clock = clock
        self._tat = clock()

    def reserve(self, amount: float) -> float:
        """Book `amount`; return how long to wait before using it."""
        now = self._clock()
        start = max(now, self._tat - self.burst)
        self._tat = max(self._tat, now) + amount / self.rate
        return start - now

    def refund(self, amount: float) -> None:
        self._tat -= amount / self.rate

    def settle(self, booked: float, used: float) -> None:
        """Give back what a request booked but did not use (never more than it booked)."""
        if used < booked:
            self.refund(booked - used)


class Budget:
    """`--max-cost`: a request's worst case (its prompt and every token it may produce) is
    reserved right before it goes out, once it holds an endpoint slot (never while it waits
    for a slot, a lease or a rate limit), and released when its answer is in; what it really
    cost is counted by the engine meanwhile. A request whose worst case does not fit beside
    what was spent and what is in flight waits for the requests in flight to come back
    (they usually cost less than their worst case); only when nothing is in flight and it
    still does not fit has the budget run out: then nothing more is sent."""

    def __init__(self, limit: float | None) -> None:
        self.limit = limit
        self.in_flight = 0.0
        self.calls = 0  # requests holding a reservation
        self.stopped = False  # the budget ran out: send nothing more
        self.refused = 0  # requests not sent for it
        self._released: asyncio.Event | None = None

    async def reserve(self, cost: float, spent: Callable[[], float]) -> None:
        """Count `cost` as in flight once spent plus in flight plus `cost` fits the limit;
        raise `budget_exhausted` (and stop for good) when it cannot fit even with nothing
        in flight."""
        limit = self.limit
        while limit is not None:
            if self.stopped:
                raise self._refusal(spent(), limit)
            if spent() + self.in_flight + cost <= limit:
                break
            if self.calls == 0:
                self.stopped = True
                if self._released is not None:
                    self._released.set()  # the others waiting refuse too
                raise self._refusal(spent(), limit)
            if self._released is None:
                self._released = asyncio.Event()
            self._released.clear()
            await self._released.wait()
        self.in_flight += cost
        self.calls += 1

    def refuse(self) -> RequestFailed:
        """Refuse a request without asking (a Batch request the budget could not submit):
        the budget has run out."""
        self.stopped = True
        self.refused += 1
        return RequestFailed(
            f"not sent: the budget (--max-cost ${self.limit or 0:g}) ran out before it",
            reason="budget_exhausted",
        )

    def _refusal(self, spent: float, limit: float) -> RequestFailed:
        self.refused += 1
        return RequestFailed(
            f"not sent: spent ${spent:.4f} plus this request's worst case would pass "
            f"--max-cost ${limit:g}",
            reason="budget_exhausted",
        )

    def release(self, cost: float) -> None:
        self.calls -= 1
        self.in_flight = 0.0 if self.calls == 0 else self.in_flight - cost
        if self._released is not None:
            self._released.set()


def backoff(
    base: float, attempt: int, uniform: Callable[[float, float], float] = random.uniform
) -> float:
    """Exponential backoff with jitter: between half and all of base * 2^(attempt-1), at
    most a minute."""
    delay = min(MAX_BACKOFF, base * 2 ** max(0, attempt - 1))
    return uniform(delay / 2, delay)


def retry_wait(
    base: float,
    attempt: int,
    asked: float | None,
    uniform: Callable[[float, float], float] = random.uniform,
) -> float:
    """How long a call waits before retry number `attempt`: its backoff, and never less than
    the server `asked` (the server's figure is a floor, not a replacement)."""
    delay = backoff(base, attempt, uniform)
    return delay if asked is None else max(asked, delay)


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def duration(text: str) -> float | None:
    """`x-ratelimit-reset-*` values: `20ms`, `1s`, `6m0s`, `1h2m3.5s`, or plain seconds."""
    text = text.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _UNITS[u] for n, u in parts)


def rate_limit_reset(headers: Mapping[str, str]) -> float | None:
    """When an exhausted limit resets, from OpenAI-style `x-ratelimit-remaining-*` and
    `x-ratelimit-reset-*` (requests and tokens): the longest reset of a limit whose remaining
    count is 0, else (no remaining counts sent) the longest reset given; capped."""
    exhausted: list[float] = []
    given: list[float] = []
    for kind in ("requests", "tokens"):
        reset = headers.get(f"x-ratelimit-reset-{kind}")
        seconds = duration(reset) if reset is not None else None
        if seconds is None:
            continue
        given.append(seconds)
        remaining = headers.get(f"x-ratelimit-remaining-{kind}")
        if remaining is not None and remaining.strip() in ("0", "0.0"):
            exhausted.append(seconds)
    told = any(f"x-ratelimit-remaining-{kind}" in headers for kind in ("requests", "tokens"))
    if told and not exhausted:
        return None  # nothing is exhausted: the resets say nothing about this 429
    chosen = exhausted or given
    return min(MAX_RETRY_AFTER, max(chosen)) if chosen else None


def retry_after(headers: Mapping[str, str], now: Clock = time.time) -> float | None:
    """`retry-after-ms` (OpenAI) or `Retry-After` (seconds or an HTTP date), capped."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return min(MAX_RETRY_AFTER, max(0.0, float(millis) / 1000))
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - now()
        except (TypeError, ValueError, IndexError):
            return None
    return min(MAX_RETRY_AFTER, max(0.0, seconds))
