"""The request engine every model-calling stage goes through: its lifecycle, the send loop
and the accounting.

One asyncio event loop in a background thread sends the requests; the stage's own thread
reads input, grades and writes (see `lemagen.engine.runner.run_rows`). What the engine
guarantees, and where each part lives:

* every sample is looked up in the request store first and stored (fsync'd) as soon as it
  arrives, so a re-run after any interruption sends only what never arrived, and identical
  requests in one run are sent once (`planning`, `store`);
* 429, 5xx, timeouts and dropped connections are retried with exponential backoff and
  jitter; the server's `Retry-After` (or `retry-after-ms`, `x-ratelimit-reset-*`) is the
  least a retry waits, never a replacement for the backoff (`limits.retry_wait`); a 429
  counts against `--max-retries` (and doubles the backoff) only when no other call
  succeeded since this one last failed, so no call gives up while the server keeps
  answering; 400-class errors are not retried; 401, 403 and 404 stop the run at once;
* each endpoint's concurrency adapts to what it sustains (AIMD on 429s and timeouts, paced by
  the server's `x-ratelimit-limit-requests` where it sends one; `adaptive`);
* until the first request succeeds, requests go one at a time, so a bad key costs one request;
* client-side `--rpm` / `--tpm` limits (`limits.RateLimit`), several endpoints with
  per-endpoint concurrency; an endpoint that refuses connections is taken out of rotation
  and retried later (`pool`);
* token usage and cost are counted as responses arrive (cached prompt tokens at the cached
  rate; a request sent and never answered apart, as possibly billed), and `--max-cost` holds
  a send while spent plus the worst case of the requests really in flight could pass the
  budget, and stops sending only when one more request could (`limits.Budget`);
* requests go over aiohttp or the openai SDK (`transports`);
* with `--batch`, samples the store lacks are not sent but collected as lines of a provider
  Batch input file (`batching`), submitted and collected between passes (`batches`).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import itertools
import json
import logging
import os
import secrets
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lemagen.engine.batching import BatchCollector, BatchConfig
from lemagen.engine.batchstore import BatchLedger
from lemagen.engine.calls import PATHS, Api, Call, Generation, RequestFailed
from lemagen.engine.clients import make_transport
from lemagen.engine.limits import (
    Budget,
    RateLimit,
    backoff,
    rate_limit_reset,
    retry_after,
    retry_wait,
)
from lemagen.engine.planning import Plan, Planner, generation, wait_for_others
from lemagen.engine.pool import Endpoint, EndpointPool
from lemagen.engine.prices import Price, price_for
from lemagen.engine.responses import believed, error_message, read_reply
from lemagen.engine.store import PEER_WATCH, RequestStore, StoredSample
from lemagen.engine.transports import (
    MAX_BODY_MB,
    Guarded,
    Kind,
    Transport,
    TransportError,
    unhonoured_proxy,
)
from lemagen.errors import BudgetReached, CannotWrite, EndpointError, LemagenError

log = logging.getLogger(__name__)
# The row task a call belongs to, set by `_row` (the tasks of a row's calls see it too).
_ROW: contextvars.ContextVar[asyncio.Task[Any] | None] = contextvars.ContextVar(
    "lemagen_row", default=None
)

RETRYABLE = frozenset({408, 409, 425, 429})
NO_CHOICES_LIMIT = 3  # answers in a row with no choices before a call is set aside
LEASE_POLL, LEASE_POLL_MAX = 0.05, 1.0  # seconds between looks at another process's samples
FATAL = {401: "API key rejected", 403: "access denied", 404: "model or route not found"}

Result = Generation | RequestFailed
Deliver = Callable[[int, "list[Result] | BaseException"], None]


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop where it is installed (Linux and macOS; its loop does in C what
    asyncio's does in Python, a large part of the engine thread's time per request), else
    asyncio's. `LEMAGEN_EVENT_LOOP=asyncio` picks asyncio's."""
    if os.environ.get("LEMAGEN_EVENT_LOOP", "").lower() != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


@dataclass
class EngineConfig:
    base_urls: list[str]
    api_key: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    api: Api = "chat"
    timeout: float = 120.0
    max_retries: int = 10
    retry_delay: float = 1.0
    concurrency: int = 64  # per endpoint
    rpm: float | None = None
    tpm: float | None = None
    cache_dir: Path | None = None  # None: no request store
    transport: Kind = "http"
    max_response_mb: int = MAX_BODY_MB  # a body past it (MiB, as sent or decoded) is refused
    price_in: float | None = None
    price_out: float | None = None
    price_cached: float | None = None
    max_cost: float | None = None
    batch: BatchConfig | None = None  # --batch: missing samples are collected, not sent


@dataclass
class Stats:
    """Counts for the progress bar and the summary; written by the engine thread only."""

    requests: int = 0  # HTTP attempts, retries included
    succeeded: int = 0  # > 0: the endpoint, key and model work; requests need not go alone
    retries: int = 0
    failed: int = 0  # calls given up on
    cached: int = 0  # samples read from the store
    prompt_tokens: int = 0  # billed: what the server's usage says
    completion_tokens: int = 0  # reasoning tokens included
    cached_tokens: int = 0  # of prompt_tokens, priced at the cached rate
    reasoning_tokens: int = 0  # of completion_tokens
    cost: float = 0.0
    # Possibly billed: requests that timed out or lost their connection after being sent,
    # at their prompt plus every token they could have produced.
    possible_requests: int = 0
    possible_prompt_tokens: int = 0
    possible_completion_tokens: int = 0
    possible_cost: float = 0.0
    unpriced: set[str] = field(default_factory=set)
    rate_limited: int = 0
    usage_estimated: int = 0  # 200s without usable token counts, booked at the estimate
    batch_requests: int = 0  # Batch API lines whose results were stored by this run
    batch_cost: float = 0.0  # their cost at the batch price (also in `cost`)


class Engine:
    """Send calls; each row's results come back through a callback (`submit_many`). Use as a
    context manager: leaving it cancels what is still in flight and flushes the store."""

    def __init__(self, config: EngineConfig) -> None:
        if not config.base_urls:
            raise ValueError("no endpoint")
        self.config = config
        self.api = config.api
        self.path = PATHS[config.api]
        self.stats = Stats()
        self.store: RequestStore | None = None
        if config.cache_dir is not None:
            try:
                self.store = RequestStore(config.cache_dir)
            except (OSError, sqlite3.Error) as exc:
                raise LemagenError(
                    f"{config.cache_dir}: cannot open the request store ({exc}); "
                    "give another --cache-dir, or --no-cache"
                ) from None
        self.fatal: EndpointError | None = None
        self.batch: BatchCollector | None = None
        if config.batch is not None and self.store is not None:
            try:
                ledger = BatchLedger(self.store.path.parent)
            except LemagenError:
                self.store.close()
                raise
            self.batch = BatchCollector(config.batch, config.api, ledger, config.max_retries)
        self.budget = Budget(config.max_cost)
        self._prices: dict[str, Price] = {}
        self._loop = new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, name="lemagen-engine", daemon=True)
        self._planner = Planner(self.api, self.store, self._loop.create_future)
        self._tasks: set[asyncio.Task[list[Result]]] = set()
        self._run_id = secrets.token_hex(6)
        self._request_count = itertools.count()
        self._closed = False
        # The output failed (`finish_in_flight`): nothing more is sent, and the requests on the
        # wire are answered and stored; `_finished` counts those answered since with a 200.
        self._draining = False
        self._finished = 0
        # Requests on the wire, by the row task they serve (`_ROW`): a row with one on the
        # wire is not cancelled when the output fails, until its last is answered and stored.
        self._wire: dict[asyncio.Task[Any] | None, int] = {}

    def check_alive(self) -> None:
        """Raise when the engine's thread has ended while the caller waits for it (a bug):
        the run stops with a message instead of waiting forever."""
        if self._thread.ident is not None and not self._thread.is_alive() and not self._closed:
            raise LemagenError("the request engine stopped unexpectedly; re-run to resume")

    def add_usage(self, other: Stats) -> None:
        """Book usage counted apart (what this run's provider batches returned) into this
        engine's, for the summary."""
        st = self.stats
        st.prompt_tokens += other.prompt_tokens
        st.completion_tokens += other.completion_tokens
        st.cached_tokens += other.cached_tokens
        st.reasoning_tokens += other.reasoning_tokens
        st.cost += other.cost
        st.usage_estimated += other.usage_estimated
        st.batch_requests += other.batch_requests
        st.batch_cost += other.batch_cost
        st.unpriced |= other.unpriced

    @property
    def has_store(self) -> bool:
        """Whether this run keeps its samples in a request store."""
        return self.store is not None

    def requests_of(self, keys: list[bytes]) -> dict[bytes, str]:
        """The request that produced each stored sample of `keys` (absent: not stored)."""
        return {} if self.store is None else self.store.requests_of(keys)

    def summary(self) -> str:
        """This run's requests, tokens and cost, for a stage's summary line."""
        st = self.stats
        adapted = self.adaptation()
        parts = [f" ({st.cached_tokens} cached)" if st.cached_tokens else ""]
        parts.append(f" ({st.reasoning_tokens} reasoning)" if st.reasoning_tokens else "")
        prices = self.prices()
        batch = (
            f" ({st.batch_requests} batch requests collected by this run, "
            f"${st.batch_cost:.4f} at the batch price)"
            if st.batch_requests
            else ""
        )
        return (
            f"requests {st.requests} sent ({st.retries} retries, {st.rate_limited} "
            f"rate-limited{'; ' + adapted if adapted else ''}), {st.cached} samples from the "
            f"request store; tokens in {st.prompt_tokens}{parts[0]}, out "
            f"{st.completion_tokens}{parts[1]}; {describe(st)}{batch}"
            + (f"; prices: {prices}" if prices else "")
        )

    def served_from_store(self, samples: int) -> None:
        """Count samples a stage served from what it kept (the row book) as read from the
        store."""
        self.stats.cached += samples

    def outcome(self, *, set_aside: int = 0, rows_unread: int = 0) -> LemagenError | None:
        """Why the engine stopped sending, as the error the run ends with, or None: the
        request store could not be written (exit 6), or the budget ran out (exit 5).
        `set_aside`: the calls a stage set aside for the store; `rows_unread`: the input
        rows the run did not read."""
        store = self.store
        unread = f"{rows_unread} input row{'s' * (rows_unread != 1)} not read"
        if store is not None and store.failed is not None:
            lost = store.unwritten
            kept = (
                f"{lost} samples that arrived could not be stored (they are in this run's "
                "output; a re-run asks for them again)"
                if lost
                else "every sample that arrived is stored"
            )
            return CannotWrite(
                f"{store.failed}: nothing more was sent ({set_aside} calls set aside, "
                f"{unread}); {kept}; free space and re-run to send the rest"
            )
        if self.budget.stopped:
            refused = self.budget.refused
            also = f" and {unread}" if rows_unread else ""
            return BudgetReached(
                f"--max-cost reached: {refused} request{'s' * (refused != 1)} not sent{also}; "
                "finished rows are written; re-run with a higher --max-cost to continue"
            )
        return None

    @property
    def stopped(self) -> bool:
        """The budget ran out, or the request store cannot be written: nothing more is sent."""
        return self.budget.stopped or (self.store is not None and self.store.failed is not None)

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> Engine:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    async def _start(self) -> None:
        cfg = self.config
        self._gate = asyncio.Lock()
        self.pool = EndpointPool(cfg.base_urls, cfg.concurrency)
        self.rpm = RateLimit(cfg.rpm) if cfg.rpm else None
        self.tpm = RateLimit(cfg.tpm) if cfg.tpm else None
        # Every request passes `_before_send` right before it goes out: nothing is sent once
        # the output failed, nor what could not be stored.
        self._transport: Transport = Guarded(
            make_transport(cfg.transport, cfg.api_key, cfg.timeout, cfg.max_response_mb << 20),
            self._before_send,
        )
        proxy = unhonoured_proxy(cfg.transport)
        if proxy is not None:
            log.warning(
                "%s is set, but --transport %s does not honour it (only HTTP_PROXY and "
                "HTTPS_PROXY): requests go direct; --transport openai honours it",
                proxy,
                cfg.transport,
            )
        self._committed = asyncio.Event()
        if self.store is not None:
            self._backlog_limit = cfg.concurrency * len(cfg.base_urls)
            loop, committed = self._loop, self._committed

            def wake() -> None:  # in the store's writer thread
                loop.call_soon_threadsafe(committed.set)

            self.store.on_commit = wake
            if not self.store.leasing:  # alone on the store: lease once another process comes
                self._loop.call_later(PEER_WATCH, self._watch_peers)
        await self._transport.start()

    def _watch_peers(self) -> None:
        store = self.store
        if store is None or store.leasing or self._closed:
            return
        if store.peers():
            self._planner.start_leasing()
            return
        self._loop.call_later(PEER_WATCH, self._watch_peers)

    async def _before_send(self) -> None:
        """Right before a request goes out: nothing is sent once the output failed, nor once
        the store cannot be written, nor while more responses than can be in flight wait to
        be written (so a disk that fills, or lags, puts at most about two rounds of requests
        at risk)."""
        store = self.store
        while True:
            if self._draining:
                self.stats.requests -= 1  # counted by _attempt just before the transport
                raise asyncio.CancelledError
            if store is None:
                return
            refused = store.refusal()
            if refused is not None:
                self.stats.requests -= 1  # counted by _attempt just before the transport
                raise refused
            if store.backlog < self._backlog_limit:
                return
            self._committed.clear()
            await self._committed.wait()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result()
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
        try:
            if self.store is not None:
                self.store.close()  # its last callbacks land on the stopped, still open loop
            if self.batch is not None:
                self.batch.ledger.close()  # its spool stays open for the pass's settle
        finally:
            self._loop.close()

    def finish_in_flight(self) -> None:
        """The output cannot be written: send nothing more, and wait for the requests already
        on the wire to be answered and stored (they are billed); what waited to be sent is
        not sent. `in_flight_outcome` then says what became of them."""
        if self._closed or not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._finish_in_flight(), self._loop).result()

    async def _finish_in_flight(self) -> None:
        self._draining = True
        self._committed.set()  # a request held back for the store's backlog: not sent
        rows = list(self._tasks)
        for task in rows:  # a row with a request on the wire stops once it is answered
            if task not in self._wire:
                task.cancel()
        log.info("the output failed: waiting for the requests in flight")
        await asyncio.gather(*rows, return_exceptions=True)

    def in_flight_outcome(self) -> str:
        """What became of the requests in flight when the output failed (after `close`), for
        the exit-6 message."""
        count = self._finished
        requests = f"{count} request{'s' * (count != 1)} in flight"
        store = self.store
        if store is None:
            return f"{requests} were answered and billed, and are not stored (--no-cache)"
        if store.failed is not None and store.unwritten:
            return (
                f"{requests} were answered; {store.unwritten} samples billed could not be "
                f"stored ({store.failed})"
            )
        return (
            f"{requests} were answered and stored: nothing billed is lost (a re-run writes "
            "their rows without paying again)"
        )

    def _off_wire(self, row: asyncio.Task[Any] | None) -> None:
        """A request of `row` was answered (or failed). Once the output failed, a row whose
        last request on the wire is done stops, at its next wait: its answer is stored first
        (`_attempt` stores it before it waits again)."""
        wire = self._wire
        left = wire[row] - 1
        if left:
            wire[row] = left
            return
        del wire[row]
        if self._draining and row is not None:
            self._loop.call_soon(row.cancel)

    async def _shutdown(self) -> None:
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._transport.close()

    # ------------------------------------------------------------------ public

    def submit_many(self, rows: list[list[Call]], deliver: Deliver) -> None:
        """Send several rows with one wake-up of the engine thread. `deliver(i, outcome)` is
        called from the engine thread with row i's results, or the exception that stopped the
        run (`EndpointError`, or `CancelledError` at shutdown)."""
        self._loop.call_soon_threadsafe(self._spawn, rows, deliver)

    def price(self, model: str) -> Price:
        price = self._prices.get(model)
        if price is None:
            cfg = self.config
            price = price_for(model, cfg.price_in, cfg.price_out, cfg.price_cached)
            self._prices[model] = price
        return price

    def prices(self) -> str:
        """The price of each model this run priced, and where it comes from (the table's
        checked date or the flags), for --dry-run and the summary; and each model a single
        --price-in or --price-out left unpriced, saying so."""
        return "; ".join(
            p.describe(m) for m, p in sorted(self._prices.items()) if p.known or p.half_given
        )

    def adaptation(self) -> str:
        """Where each endpoint's concurrency settled, for the progress bar and the summary
        (`concurrency 31 of 256, ...`); empty while no endpoint had to adapt."""
        if not hasattr(self, "pool"):
            return ""
        parts = [
            e.control.describe()
            for e in self.pool.endpoints
            if e.control.decreases or e.control.server_rpm is not None
        ]
        return "; ".join(parts)

    def stored(self, keys: list[bytes]) -> set[bytes]:
        """Which of these sample keys the request store holds (for --dry-run)."""
        if self.store is None:
            return set()
        return set(self.store.get_many(keys))

    # ------------------------------------------------------------------ calls

    def _spawn(self, rows: list[list[Call]], deliver: Deliver) -> None:
        """Plan a batch, then deliver the rows the store holds whole at once and start one
        task per other row. Runs on the loop, in one go, so no other call can slip in between
        a store lookup and its plan."""
        if self._draining:  # the output failed: these rows are not sent
            for index in range(len(rows)):
                deliver(index, asyncio.CancelledError())
            return
        try:
            plans, cached = self._planner.plan_rows(rows)
        except Exception as exc:  # noqa: BLE001 - the rows' waiter is told, never left waiting
            error = (
                exc
                if isinstance(exc, LemagenError)  # a damaged store says so itself
                else CannotWrite(f"{self.store.path if self.store else 'the engine'}: {exc}")
            )
            for index in range(len(rows)):
                deliver(index, error)
            return
        self.stats.cached += cached
        for index, row in enumerate(plans):
            if not any(plan.owned or plan.waits for plan in row):
                # Every sample is in the store: no task, no await (a re-run serves most rows so).
                deliver(index, [generation(plan.samples) for plan in row])
                continue
            task = self._loop.create_task(self._row(row))
            self._tasks.add(task)
            task.add_done_callback(functools.partial(self._deliver, deliver, index))

    def _deliver(self, deliver: Deliver, index: int, task: asyncio.Task[list[Result]]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            deliver(index, asyncio.CancelledError())
        elif (exc := task.exception()) is not None:
            deliver(index, exc)
        else:
            deliver(index, task.result())

    async def _row(self, plans: list[Plan]) -> list[Result]:
        _ROW.set(asyncio.current_task())  # seen by its calls, in their tasks too
        if len(plans) == 1:
            return [await self._call(plans[0])]
        return list(await asyncio.gather(*(self._call(p) for p in plans)))

    async def _call(self, plan: Plan) -> Result:
        try:
            if plan.owned and self.batch is not None:
                try:
                    self.batch.route(plan)  # returns only when the call is to be sent now
                except RequestFailed as exc:
                    self._planner.abandon(plan, sorted(plan.owned), exc)
                    raise
            if plan.owned:
                await self._fetch(plan)
            if plan.waits:
                await wait_for_others(plan)
        except RequestFailed as exc:
            self.stats.failed += 1
            return exc
        except EndpointError as exc:  # from the transport (a redirect): every sender stops
            self.fatal = exc
            raise
        return generation(plan.samples)

    async def _fetch(self, plan: Plan) -> None:
        """Fetch the samples this call owns: lease them in the store (those another process
        is fetching are waited for, and taken over if it stops without them), then ask until
        every leased one arrived; a server that keeps answering no choices fails the call."""
        todo: list[int] = []
        theirs = sorted(plan.owned)
        outcome: RequestFailed | None = None
        poll = LEASE_POLL
        try:
            while theirs:
                todo, theirs = await self._planner.claim(plan, theirs)
                empty = 0
                while todo:
                    got = await self._send(plan.call, todo)
                    if got:
                        empty = 0
                        todo = self._planner.fulfil(plan, todo, got)
                        continue
                    empty += 1
                    if empty >= NO_CHOICES_LIMIT:
                        raise RequestFailed(
                            f"the server answered {empty} requests in a row with no choices",
                            "no_choices",
                        )
                    await asyncio.sleep(backoff(self.config.retry_delay, empty))
                if theirs:  # another process is fetching these: wait for its store writes
                    await asyncio.sleep(poll)
                    poll = min(poll * 2, LEASE_POLL_MAX)
        except RequestFailed as exc:
            outcome = exc
            raise
        finally:
            self._planner.abandon(plan, todo + theirs, outcome)

    # ------------------------------------------------------------------ one request

    async def _send(self, call: Call, todo: list[int]) -> list[StoredSample]:
        """Ask for samples `todo` (n = len(todo)) until it works, retrying what may work."""
        body = call.body(self.api, len(todo), todo[0])
        est_in, est_out = call.estimated_tokens(len(todo))
        price = self.price(call.model)
        est_cost = price.cost(est_in, est_out)
        attempt = 0  # failed attempts so far
        counted = 0  # those that count against --max-retries
        failed_at: list[Endpoint] = []  # where the last attempt failed: the retry goes elsewhere
        mark = self.stats.succeeded  # successes of any call when this one last failed
        mark_failed = self.stats.retries  # failed attempts of any call then
        while True:
            if self.fatal is not None:
                raise self.fatal
            if self.tpm is not None:
                await _sleep(self.tpm.reserve(est_in + est_out))
            if self.rpm is not None:
                await _sleep(self.rpm.reserve(1))
            result = None
            if not self.stats.succeeded:
                async with self._gate:
                    if self.fatal is not None:
                        raise self.fatal
                    if not self.stats.succeeded:  # those queued here go free after a success
                        result = await self._attempt(
                            call, body, price, est_in, est_out, failed_at, est_cost
                        )
            if result is None:
                result = await self._attempt(
                    call, body, price, est_in, est_out, failed_at, est_cost
                )
            if isinstance(result, list):
                return result
            error, asked, limited, elsewhere = result
            attempt += 1
            st = self.stats
            succeeded, failed = st.succeeded - mark, st.retries - mark_failed
            # A 429 while other calls get through is the limit at work, not this call failing;
            # an endpoint that refused while another is up is that endpoint's failure, and the
            # retry goes to the other.
            if not (limited and succeeded) and not elsewhere:
                counted += 1
            mark, mark_failed = st.succeeded, st.retries
            if counted > self.config.max_retries:
                tries = "1 attempt" if attempt == 1 else f"{attempt} attempts"
                raise RequestFailed(f"{error} (gave up after {tries})")
            st.retries += 1
            # The backoff doubles with each failure that counts. A 429 that does not count
            # waits the first step (and at least what the server asked); so does a 5xx or a
            # drop while at least 3 in 4 answers to other calls since this one's last failure
            # were good: a server that fails a few requests at random is not in trouble, and
            # doubling would only leave this call behind the run.
            step = max(1, counted)
            if not limited and succeeded and succeeded >= 3 * failed:
                step = 1
            if not elsewhere:
                await asyncio.sleep(retry_wait(self.config.retry_delay, step, asked))

    async def _attempt(
        self,
        call: Call,
        body: dict[str, Any],
        price: Price,
        est_in: int,
        est_out: int,
        failed_at: list[Endpoint],
        est_cost: float,
    ) -> list[StoredSample] | tuple[str, float | None, bool, bool]:
        """One HTTP request: the samples, or (error, the least wait the server asked for or
        None, whether it was a 429, whether another endpoint can take the retry at once).
        Raises what must not be retried. On failure `failed_at` holds the endpoint. Its
        worst case counts against --max-cost from when it holds a slot until it is answered."""
        pool = self.pool
        endpoint = await pool.acquire(avoid=failed_at[-1] if failed_at else None)
        failed_at[:] = [endpoint]
        control = endpoint.control
        try:
            await control.ready()  # after the slot: a decrease may have come while waiting
            await self.budget.reserve(est_cost, self._spent)
        except BaseException:
            pool.release(endpoint)
            raise
        epoch = control.epoch
        self.stats.requests += 1
        if log.isEnabledFor(logging.INFO):  # -v; the key travels in a header, never logged
            log.info(
                "POST %s%s model=%s, about %d prompt tokens",
                endpoint.url.rstrip("/"),
                self.path,
                call.model,
                est_in,
            )
            log.debug("request body: %s", json.dumps(body, ensure_ascii=False))
        row = _ROW.get()
        wire = self._wire
        wire[row] = wire.get(row, 0) + 1
        try:
            status, headers, data = await self._transport.post(endpoint.url, self.path, body)
        except TransportError as exc:
            if exc.sent:  # it may have been processed, and billed
                self._possibly_billed(call.model, price, est_in, est_out)
            control.answered(epoch, congested=str(exc).startswith("timed out"))
            error = self._transport_failed(endpoint, call, exc)
            return error, None, False, exc.refused and pool.others_up(endpoint)
        finally:
            self._off_wire(row)
            pool.release(endpoint)
            self.budget.release(est_cost)
        if headers:
            control.heard(headers, endpoint.url)
        self._finished += self._draining and status == 200  # answered after the output failed
        if status == 200:
            samples = self._parse(data, call, price, est_in + est_out)
            if isinstance(samples, str):
                return f"unreadable response from {endpoint.url}: {samples}", None, False, False
            pool.succeeded(endpoint)
            control.answered(epoch, congested=False)
            self.stats.succeeded += 1
            return samples
        detail = error_message(data)
        if status in FATAL:
            hint = ""
            if status == 401 and "@" in endpoint.url.split("/", 3)[2]:  # http://user:pw@host
                hint = "; check the user name and password in --base-url"
            elif status == 401 and not self.config.api_key:
                hint = f"; set {self.config.api_key_env}"
            self.fatal = EndpointError(
                f"endpoint {endpoint.url}, model {call.model!r}: {FATAL[status]} "
                f"(HTTP {status}: {detail}){hint}"
            )
            raise self.fatal
        asked = retry_after(headers)
        if status == 429:
            self.stats.rate_limited += 1
            if asked is None:
                asked = rate_limit_reset(headers)
            control.answered(epoch, congested=True, pause=asked)
            return f"HTTP 429: {detail}", asked, True, False
        control.answered(epoch, congested=False)
        if status >= 500 or status in RETRYABLE:
            pool.strike(endpoint)
            return f"HTTP {status}: {detail}", asked, False, False
        raise RequestFailed(f"HTTP {status}: {detail}")  # 400-class: retrying cannot help

    def _transport_failed(self, endpoint: Endpoint, call: Call, exc: TransportError) -> str:
        if exc.refused:
            self.pool.refused(endpoint, str(exc))
            if not self.stats.succeeded and self.pool.all_refused():
                self.fatal = EndpointError(
                    f"cannot reach endpoint {self.pool.describe()} (model {call.model!r}): {exc}"
                )
                raise self.fatal
        else:
            self.pool.strike(endpoint)
        return f"{endpoint.url}: {exc}"

    def _parse(
        self, data: bytes, call: Call, price: Price, reserved: int
    ) -> list[StoredSample] | str:
        """The samples of a 200, or why it is not a completion."""
        read = read_reply(data, self.api)
        if isinstance(read, str):
            return read
        # Token counts a server did not give (or gave as nonsense, or past belief) are booked
        # at the estimate the request was sent under: the prompt's, and --max-tokens (or 1024)
        # per sample.
        est_in = call.estimated_tokens(1)[0]
        est_out = max(reserved - est_in, 0)
        system = len(call.system) // 4 if call.system else 0  # not in the budget's estimate
        prompt, completion = believed(
            read.prompt_tokens, read.completion_tokens, est_in + system, est_out
        )
        if prompt is None or completion is None:
            self.stats.usage_estimated += 1
        if prompt is None:
            prompt = est_in
        if completion is None:
            completion = est_out
        cached = min(read.cached_tokens, prompt)
        reasoning = min(read.reasoning_tokens, completion)
        book(
            self.stats,
            call.model,
            price,
            StoredSample("", None, "", prompt, completion, cached, reasoning),
        )
        if self.tpm is not None:
            self.tpm.settle(reserved, prompt + completion)
        request = f"{self._run_id}-{next(self._request_count)}"
        return [
            StoredSample(text, reason, request, prompt, completion, cached, reasoning)
            for text, reason in zip(read.texts, read.finish_reasons, strict=True)
        ]

    def _possibly_billed(self, model: str, price: Price, prompt: int, completion: int) -> None:
        """Book a request that was sent and never answered (timed out, connection lost): the
        server may have processed it, so its prompt and every token it could have produced
        are counted apart from what was billed (and against --max-cost)."""
        st = self.stats
        st.possible_requests += 1
        st.possible_prompt_tokens += prompt
        st.possible_completion_tokens += completion
        if price.known:
            st.possible_cost += price.cost(prompt, completion)
        else:
            st.unpriced.add(model)

    def _spent(self) -> float:
        """What --max-cost counts as spent: billed, and possibly billed."""
        return self.stats.cost + self.stats.possible_cost


def book(stats: Stats, model: str, price: Price, usage: StoredSample) -> float:
    """Book what a server billed for one request (`usage`'s token counts; reasoning tokens
    are part of the completion's) and return its cost: the one place usage and cost are
    counted, for synchronous requests and Batch results alike."""
    stats.prompt_tokens += usage.prompt_tokens
    stats.completion_tokens += usage.completion_tokens
    stats.cached_tokens += usage.cached_tokens
    stats.reasoning_tokens += usage.reasoning_tokens
    if not price.known:
        stats.unpriced.add(model)
        return 0.0
    cost = price.cost(usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens)
    stats.cost += cost
    return cost


async def _sleep(seconds: float) -> None:
    if seconds > 0:
        await asyncio.sleep(seconds)


def describe(stats: Stats) -> str:
    """`cost $0.0123` or `cost $0 + unknown (no price for m: give ...)`, for summaries."""
    if stats.unpriced:
        models = ", ".join(sorted(stats.unpriced))
        text = (
            f"cost ${stats.cost:.4f} + unknown (no price for {models}: give --price-in/--price-out)"
        )
    else:
        text = f"cost ${stats.cost:.4f}"
    if stats.possible_requests:
        text += (
            f"; possibly billed ${stats.possible_cost:.4f} ({stats.possible_requests} requests "
            f"sent and never answered: in {stats.possible_prompt_tokens}, out at most "
            f"{stats.possible_completion_tokens})"
        )
    if stats.usage_estimated:
        text += (
            f" ({stats.usage_estimated} responses gave no usable token usage: booked at the "
            "estimate)"
        )
    return text
