"""The endpoint pool: which server the next request goes to.

Each endpoint has its own concurrency, adapted to what it sustains (`adaptive.Control`,
never above `--concurrency`); a request goes to the least loaded endpoint in rotation. An
endpoint that refuses connections is taken out of rotation at once, for 0.5 s, then 1 s,
2 s, ... up to 30 s while it keeps refusing; timeouts, dropped connections and 5xx count as
strikes, and three in a row take an endpoint out the same way, unless it is the only one left
in rotation. A success clears the strikes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from lemagen.engine.adaptive import Control, Slots

FIRST_PAUSE = 0.5  # seconds out of rotation after the first refusal; doubles after each
MAX_PAUSE = 30.0
STRIKES = 3  # timeouts, drops or 5xx in a row that take an endpoint out of rotation


@dataclass
class Endpoint:
    url: str
    control: Control
    slots: Slots = field(init=False)
    load: int = 0  # requests holding or waiting for a slot
    down_until: float = 0.0  # out of rotation until then (clock time)
    strikes: int = 0
    refused: str | None = None  # the last connection-refused message, until a success

    def __post_init__(self) -> None:
        self.slots = self.control.slots


class EndpointPool:
    """`acquire()` an endpoint for one request, `release()` it after; report what happened
    with `succeeded()`, `refused()` or `strike()`. `clock` and `sleep` are for tests."""

    def __init__(
        self,
        urls: Sequence[str],
        concurrency: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not urls:
            raise ValueError("no endpoint")
        self.endpoints = [
            Endpoint(url.rstrip("/"), Control(concurrency, clock=clock, sleep=sleep))
            for url in urls
        ]
        self._clock = clock
        self._sleep = sleep

    def up(self) -> list[Endpoint]:
        """The endpoints in rotation now."""
        now = self._clock()
        return [e for e in self.endpoints if e.down_until <= now]

    async def acquire(self, avoid: Endpoint | None = None) -> Endpoint:
        """The least loaded endpoint in rotation, once it has a free slot; when every endpoint
        is out of rotation, wait for the first to come back. `avoid` (where this call just
        failed) is taken only when no other endpoint is in rotation."""
        endpoints = self.endpoints
        if len(endpoints) == 1:
            only = endpoints[0]
            wait = only.down_until - self._clock()
            if wait > 0:
                await self._sleep(wait)
            only.load += 1
            await only.slots.acquire()
            return only
        while True:
            now = self._clock()
            up = [e for e in endpoints if e.down_until <= now]
            if avoid is not None and len(up) > 1:
                up = [e for e in up if e is not avoid] or up
            if up:
                endpoint = min(up, key=lambda e: e.load)
                endpoint.load += 1
                await endpoint.slots.acquire()
                return endpoint
            await self._sleep(min(e.down_until for e in endpoints) - now)

    @staticmethod
    def release(endpoint: Endpoint) -> None:
        endpoint.slots.release()
        endpoint.load -= 1

    @staticmethod
    def succeeded(endpoint: Endpoint) -> None:
        endpoint.strikes = 0
        endpoint.refused = None

    def refused(self, endpoint: Endpoint, message: str) -> None:
        """Nothing listens there: out of rotation now, for twice as long as last time."""
        endpoint.refused = message
        self.take_down(endpoint)

    def others_up(self, endpoint: Endpoint) -> bool:
        """Another endpoint is in rotation now."""
        now = self._clock()
        return any(e is not endpoint and e.down_until <= now for e in self.endpoints)

    def all_refused(self) -> bool:
        """Every endpoint's last answer was a refused connection."""
        return all(e.refused for e in self.endpoints)

    def take_down(self, endpoint: Endpoint) -> None:
        endpoint.strikes += 1
        pause = min(MAX_PAUSE, FIRST_PAUSE * 2 ** min(endpoint.strikes - 1, 6))
        endpoint.down_until = max(endpoint.down_until, self._clock() + pause)

    def strike(self, endpoint: Endpoint) -> None:
        """Timeouts, dropped connections and 5xx: three in a row take an endpoint out of
        rotation for a while, unless it is the only one left."""
        endpoint.strikes += 1
        now = self._clock()
        others_up = any(e is not endpoint and e.down_until <= now for e in self.endpoints)
        if endpoint.strikes >= STRIKES and others_up:
            self.take_down(endpoint)

    def describe(self) -> str:
        return ", ".join(e.url for e in self.endpoints)
