"""What holds sends back: client-side rate limits (`--rpm`, `--tpm`), the budget
(`--max-cost`), and the pause every sender takes after a 429.

* `RateLimit` is a generic cell rate with one second's worth of burst; `--tpm` books each
  request's estimated tokens and gives back the unused part once the usage is known.
* `Budget` counts the estimated cost of what is in flight and refuses a send once spent plus
  in flight could pass the limit; after that nothing more is sent.
* `Cooldown` is the shared 429 pause: a 429 sets a time before which no sender starts a
  request (the server's `Retry-After`, else a backoff that grows with each 429 and shrinks
  with each success).
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Awaitable, Callable, Mapping

from lemagen.engine.calls import RequestFailed

MAX_BACKOFF = 60.0
MAX_RETRY_AFTER = 120.0
MAX_COOL_LEVEL = 8

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class RateLimit:
    """Generic cell rate: `rate` units a second, with one second's worth of burst."""

    def __init__(self, per_minute: float, clock: Clock = time.monotonic) -> None:
        self.rate = per_minute / 60.0
        self._clock = clock
        self._tat = clock()

    def reserve(self, amount: float) -> float:
        """Book `amount`; return how long to wait before using it."""
        now = self._clock()
        start = max(now, self._tat - 1.0)
        self._tat = max(self._tat, now) + amount / self.rate
        return start - now

    def refund(self, amount: float) -> None:
        self._tat -= amount / self.rate

    def settle(self, booked: float, used: float) -> None:
        """Give back what a request booked but did not use (never more than it booked)."""
        if used < booked:
            self.refund(booked - used)


class Budget:
    """`--max-cost`: the estimated cost of every request in flight is reserved before it is
    sent and released when it ends (the real cost is counted by the engine meanwhile)."""

    def __init__(self, limit: float | None) -> None:
        self.limit = limit
        self.in_flight = 0.0
        self.stopped = False  # the budget ran out: send nothing more

    def reserve(self, cost: float, spent: float) -> None:
        """Count `cost` as in flight, unless that could pass the limit: then stop for good."""
        limit = self.limit
        if limit is not None and (self.stopped or spent + self.in_flight + cost > limit):
            self.stopped = True
            raise RequestFailed(
                f"not sent: spent ${spent:.4f} plus in flight "
                f"${self.in_flight:.4f} would pass --max-cost ${limit:g}",
                reason="budget_exhausted",
            )
        self.in_flight += cost

    def release(self, cost: float) -> None:
        self.in_flight -= cost


def backoff(
    base: float, attempt: int, uniform: Callable[[float, float], float] = random.uniform
) -> float:
    """Exponential backoff with jitter: between half and all of base * 2^(attempt-1), at
    most a minute."""
    delay = min(MAX_BACKOFF, base * 2 ** max(0, attempt - 1))
    return uniform(delay / 2, delay)


class Cooldown:
    """The pause every sender takes after a 429, not just the one that got it."""

    def __init__(
        self, retry_delay: float, *, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep
    ) -> None:
        self.retry_delay = retry_delay
        self.until = 0.0  # clock time before which nobody sends
        self.level = 0  # 429s not yet offset by successes
        self._clock = clock
        self._sleep = sleep

    def rate_limited(self, retry_after: float | None) -> float:
        """A 429 arrived: pause everyone for `retry_after`, else for the backoff of the
        current level. Returns the pause."""
        self.level = min(self.level + 1, MAX_COOL_LEVEL)
        pause = retry_after if retry_after is not None else backoff(self.retry_delay, self.level)
        self.until = max(self.until, self._clock() + pause)
        return pause

    def succeeded(self) -> None:
        if self.level:
            self.level -= 1

    async def wait(self) -> None:
        """Return once the pause (if any) is over."""
        while True:
            wait = self.until - self._clock()
            if wait <= 0:
                return
            # a little jitter so the senders do not all return in the same millisecond
            await self._sleep(wait + random.uniform(0, min(0.25, wait / 4)))


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
