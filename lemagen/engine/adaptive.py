"""Adaptive concurrency: each endpoint finds the rate it sustains and holds it.

Every endpoint has a `Control`: a concurrency limit that starts at `--concurrency` (its
ceiling, never passed) and moves by additive increase, multiplicative decrease (AIMD):

* Responses are counted in windows of about one limit's worth (at least `MIN_WINDOW`),
  counting only requests sent at the current limit (those sent before the last decrease say
  nothing about it). A window in which more than `CONGESTED_SHARE` of the answers were 429s
  or timeouts means the endpoint is at its limit: the limit is multiplied by the share that
  got through (at least by `MAX_DECREASE`). Any other window adds one, up to the ceiling.
  Random 429s (a few percent, at any rate) so never shrink the limit; a real limit, whose
  share of 429s grows with the rate, does.
* On a decrease, the endpoint pauses for the `Retry-After` of the 429 that tipped it (no
  longer: a pause is never extended by later 429s, nor doubled), so the whole stage slows
  without stopping for longer than the server asked.
* Where the server says its limit (`x-ratelimit-limit-requests`, requests per minute, as
  OpenAI and Azure send it), sends to that endpoint are paced at 95% of that rate from the
  first answer on, so the limit is met without first hitting it. A stated limit under
  `MIN_STATED_RPM` is not believed (`0.001` or `1e-300` would hold the run for days or for
  ever): it is ignored, with a warning, and the endpoint adapts by its 429s alone.

Client-side `--rpm` / `--tpm` (`limits.RateLimit`) apply on top, over every endpoint.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping

from lemagen.engine.limits import RateLimit

CONGESTED_SHARE = 0.25  # 429s + timeouts in a window above this share: at the endpoint's limit
MAX_DECREASE = 0.5  # a decrease keeps at least this share of the limit
MIN_WINDOW = 32  # answers before a window is judged (fewer: too noisy)
SERVER_BURST = 0.25  # seconds of the server's stated rate that may go at once
SERVER_SHARE = 0.95  # of the stated rate: a late send catching up must not empty its bucket
MIN_STATED_RPM = 1.0  # a server's stated requests per minute below this are not believed

log = logging.getLogger(__name__)

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class Slots:
    """A semaphore whose size may change while it is held (`asyncio.Semaphore`'s cannot):
    lowering `limit` lets no new holder in until enough have left."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    async def acquire(self) -> None:
        if self.used < self.limit and not self._waiters:
            self.used += 1
            return
        future = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # handed a slot just as it was cancelled: pass it on
            else:
                self._waiters.remove(future)  # or it would keep later callers waiting
            raise

    def release(self) -> None:
        self.used -= 1
        self._wake()

    def resize(self, limit: int) -> None:
        self.limit = limit
        self._wake()

    def _wake(self) -> None:
        waiters = self._waiters
        while waiters and self.used < self.limit:
            future = waiters.popleft()
            if not future.done():
                self.used += 1
                future.set_result(None)


class Control:
    """One endpoint's concurrency limit, the pause after a 429 that showed the limit, and the
    pace the server announced. `clock` and `sleep` are for tests."""

    def __init__(
        self,
        ceiling: int,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.ceiling = ceiling
        self.limit = float(ceiling)
        self.slots = Slots(ceiling)
        self.epoch = 0  # decreases so far: a request remembers the epoch it was sent in
        self.decreases = 0
        self.lowest = ceiling  # the lowest limit reached
        self.paused_until = 0.0
        self.server_rpm: float | None = None  # the server's stated requests per minute
        self.unbelieved: str | None = None  # a stated limit below MIN_STATED_RPM, ignored
        self.pace: RateLimit | None = None
        self._ok = 0
        self._congested = 0
        self._clock = clock
        self._sleep = sleep

    @property
    def concurrency(self) -> int:
        return self.slots.limit

    async def ready(self) -> None:
        """Wait out the pause after a decrease, then the server's pace (if it stated one)."""
        wait = self.paused_until - self._clock()
        if wait > 0:
            await self._sleep(wait)
        if self.pace is not None:
            wait = self.pace.reserve(1)
            if wait > 0:
                await self._sleep(wait)

    def heard(self, headers: Mapping[str, str], url: str = "") -> None:
        """Read the server's stated limit, if any, and pace sends by it (never above
        `client_rpm`, the --rpm limit, which the engine applies besides). One below
        `MIN_STATED_RPM` is ignored, with a warning the first time (`url` names the endpoint)."""
        stated = headers.get("x-ratelimit-limit-requests")
        if stated is None:
            return
        try:
            rpm = float(stated)
        except ValueError:
            return
        if rpm <= 0 or not math.isfinite(rpm) or rpm == self.server_rpm:
            return
        if rpm < MIN_STATED_RPM:
            if self.unbelieved is None:
                self.unbelieved = stated.strip()[:40]
                log.warning(
                    "endpoint %s states a limit of %s requests per minute "
                    "(x-ratelimit-limit-requests), below %g: not believed, ignored",
                    url or "(unnamed)",
                    self.unbelieved,
                    MIN_STATED_RPM,
                )
            return
        self.server_rpm = rpm
        self.pace = RateLimit(rpm * SERVER_SHARE, clock=self._clock, burst=SERVER_BURST)

    def answered(self, epoch: int, congested: bool, pause: float | None = None) -> bool:
        """Count one answer to a request sent in `epoch`: `congested` for a 429 or a timeout.
        `pause` is its Retry-After, for a decrease. Returns whether the limit went down."""
        if epoch != self.epoch:
            return False  # sent at an older limit: says nothing about this one
        if congested:
            self._congested += 1
        else:
            self._ok += 1
        seen = self._ok + self._congested
        if seen < max(MIN_WINDOW, self.slots.limit):
            return False
        share = self._congested / seen
        self._ok = self._congested = 0
        if share <= CONGESTED_SHARE:
            if self.limit < self.ceiling:
                self.limit = min(float(self.ceiling), self.limit + 1)
                self.slots.resize(int(self.limit))
            return False
        self.limit = max(1.0, self.limit * max(MAX_DECREASE, 1 - share))
        self.slots.resize(int(self.limit))
        self.lowest = min(self.lowest, int(self.limit))
        self.epoch += 1
        self.decreases += 1
        if pause:
            self.paused_until = max(self.paused_until, self._clock() + pause)
        return True

    def describe(self) -> str:
        """`concurrency 31 of 256` and the server's pace, for the summary."""
        text = f"concurrency {self.concurrency} of {self.ceiling}"
        if self.server_rpm is not None:
            text += f", paced under the server's {self.server_rpm / 60:g} req/s"
        return text
