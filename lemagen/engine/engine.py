"""The request engine every model-calling stage goes through.

One asyncio event loop in a background thread sends the requests; the stage's own thread
reads input, grades and writes (see `lemagen.runner.run_rows`). What the engine guarantees:

* every sample is looked up in the request store first and stored (fsync'd) as soon as it
  arrives, so a re-run after any interruption sends only what never arrived, and identical
  requests in one run are sent once (`lemagen.engine.store`);
* 429, 5xx, timeouts and dropped connections are retried with exponential backoff and
  jitter, honouring `Retry-After`; a 429 pauses every sender together, not just the one that
  got it; 400-class errors are not retried; 401, 403 and 404 stop the run at once;
* until the first request succeeds, requests go one at a time, so a bad key costs one request;
* client-side `--rpm` / `--tpm` limits, several endpoints with per-endpoint concurrency (an
  endpoint that refuses connections is taken out of rotation and retried later);
* token usage and cost are counted as responses arrive, and `--max-cost` stops new sends
  once spent plus in flight could pass the budget.
"""

from __future__ import annotations

import asyncio
import collections
import email.utils
import errno
import functools
import itertools
import json
import os
import random
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from lemagen.engine.calls import PATHS, Api, Call, Choice, Generation, RequestFailed
from lemagen.engine.prices import Price, price_for
from lemagen.engine.store import RequestStore, StoredSample
from lemagen.errors import EndpointError, LemagenError

Transport = Literal["aiohttp", "openai"]
TRANSPORTS: tuple[str, ...] = ("aiohttp", "openai")
MAX_BACKOFF = 60.0
MAX_RETRY_AFTER = 120.0
RETRYABLE = frozenset({408, 409, 425, 429})
_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                    "all_proxy")  # fmt: skip
FATAL = {401: "API key rejected", 403: "access denied", 404: "model or route not found"}

Result = Generation | RequestFailed
Deliver = Callable[[int, "list[Result] | BaseException"], None]


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
    transport: Transport = "aiohttp"
    price_in: float | None = None
    price_out: float | None = None
    max_cost: float | None = None


@dataclass
class Stats:
    """Counts for the progress bar and the summary; written by the engine thread only."""

    requests: int = 0  # HTTP attempts, retries included
    succeeded: int = 0  # > 0: the endpoint, key and model work; requests need not go alone
    retries: int = 0
    failed: int = 0  # calls given up on
    cached: int = 0  # samples read from the store
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    unpriced: set[str] = field(default_factory=set)
    rate_limited: int = 0


class _TransportError(Exception):
    def __init__(self, message: str, *, sent: bool, refused: bool = False) -> None:
        super().__init__(message)
        self.sent = sent  # the request may have reached the server (and be billed)
        self.refused = refused


class _Transport(Protocol):
    async def start(self) -> None: ...

    async def post(
        self, base_url: str, path: str, body: dict[str, Any]
    ) -> tuple[int, Mapping[str, str], bytes]: ...

    async def close(self) -> None: ...


class _AiohttpTransport:
    """Plain JSON over one aiohttp session: the cheapest client per request (see
    benchmarks/bench_engine.py)."""

    def __init__(self, api_key: str | None, timeout: float) -> None:
        self._headers = {"Content-Type": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._timeout = timeout
        self._session: Any = None

    async def start(self) -> None:
        import aiohttp

        self._aiohttp = aiohttp
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300),
            timeout=aiohttp.ClientTimeout(total=self._timeout),
            headers=self._headers,
            # Proxy variables are honoured when set; otherwise trust_env would read ~/.netrc
            # on every request (measured: most of the client's CPU).
            trust_env=any(os.environ.get(v) for v in _PROXY_VARIABLES),
        )

    async def post(
        self, base_url: str, path: str, body: dict[str, Any]
    ) -> tuple[int, Mapping[str, str], bytes]:
        aiohttp = self._aiohttp
        try:
            async with self._session.post(base_url + path, data=json.dumps(body)) as resp:
                return resp.status, resp.headers, await resp.read()
        except aiohttp.ClientConnectorError as exc:
            cause = exc.os_error
            refused = getattr(cause, "errno", None) == errno.ECONNREFUSED
            message = "connection refused" if refused else str(cause or exc).splitlines()[0]
            raise _TransportError(message, sent=False, refused=True) from None
        except (asyncio.TimeoutError, TimeoutError):
            raise _TransportError(f"timed out after {self._timeout:g} s", sent=True) from None
        except aiohttp.ClientError as exc:
            raise _TransportError(f"connection dropped: {type(exc).__name__}", sent=True) from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class _OpenAITransport:
    """The official SDK (`AsyncOpenAI`, its own retries off): for gateways that need what
    the SDK adds; costs more CPU per request than aiohttp."""

    def __init__(self, api_key: str | None, timeout: float) -> None:
        self._api_key = api_key or "EMPTY"  # local servers need no key; the SDK wants one
        self._timeout = timeout
        self._clients: dict[str, Any] = {}

    async def start(self) -> None:
        import openai

        self._openai = openai

    async def post(
        self, base_url: str, path: str, body: dict[str, Any]
    ) -> tuple[int, Mapping[str, str], bytes]:
        openai = self._openai
        client = self._clients.get(base_url)
        if client is None:
            client = openai.AsyncOpenAI(
                base_url=base_url, api_key=self._api_key, timeout=self._timeout, max_retries=0
            )
            self._clients[base_url] = client
        try:
            data: bytes = await client.post(path, cast_to=bytes, body=body)
        except openai.APIStatusError as exc:
            return exc.status_code, exc.response.headers, exc.response.content
        except openai.APITimeoutError:
            raise _TransportError(f"timed out after {self._timeout:g} s", sent=True) from None
        except openai.APIConnectionError as exc:
            cause: BaseException = exc
            while cause.__cause__ is not None:
                cause = cause.__cause__
            refused = "connect" in type(cause).__name__.lower()
            text = (str(cause) or type(cause).__name__).splitlines()[0]
            if isinstance(cause, ConnectionRefusedError) or "refused" in text.lower():
                text = "connection refused"
            raise _TransportError(
                text if refused else f"connection dropped: {text}",
                sent=not refused,
                refused=refused,
            ) from None
        return 200, {}, data

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()


class _RateLimit:
    """Generic cell rate: `rate` units a second, with one second's worth of burst."""

    def __init__(self, per_minute: float) -> None:
        self.rate = per_minute / 60.0
        self._tat = time.monotonic()

    def reserve(self, amount: float) -> float:
        """Book `amount`; return how long to wait before using it."""
        now = time.monotonic()
        start = max(now, self._tat - 1.0)
        self._tat = max(self._tat, now) + amount / self.rate
        return start - now

    def refund(self, amount: float) -> None:
        self._tat -= amount / self.rate


@dataclass
class _Plan:
    """One call, after the store and the calls in flight were consulted."""

    call: Call
    keys: list[bytes]
    samples: dict[int, StoredSample] = field(default_factory=dict)  # already there
    waits: dict[int, asyncio.Future[StoredSample | RequestFailed | None]] = field(
        default_factory=dict
    )  # being fetched by another call in this run
    owned: dict[int, asyncio.Future[StoredSample | RequestFailed | None]] = field(
        default_factory=dict
    )  # to fetch


@dataclass
class _Endpoint:
    url: str
    slots: asyncio.Semaphore
    load: int = 0
    down_until: float = 0.0
    strikes: int = 0
    refused: str | None = None  # the last connection-refused message, until a success


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
        self.stopped = False  # the budget ran out: send nothing more
        self.fatal: EndpointError | None = None
        self._prices: dict[str, Price] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, name="lemagen-engine", daemon=True)
        self._pending: dict[bytes, asyncio.Future[StoredSample | RequestFailed | None]] = {}
        self._tasks: set[asyncio.Task[list[Result]]] = set()
        self._durable: collections.deque[bytes] = collections.deque()
        self._run_id = secrets.token_hex(6)
        self._request_count = itertools.count()
        self._inflight_cost = 0.0
        self._cool_until = 0.0
        self._cool_level = 0
        self._closed = False

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
        self._endpoints = [
            _Endpoint(url.rstrip("/"), asyncio.Semaphore(cfg.concurrency)) for url in cfg.base_urls
        ]
        self._rpm = _RateLimit(cfg.rpm) if cfg.rpm else None
        self._tpm = _RateLimit(cfg.tpm) if cfg.tpm else None
        self._transport: _Transport = (
            _AiohttpTransport(cfg.api_key, cfg.timeout)
            if cfg.transport == "aiohttp"
            else _OpenAITransport(cfg.api_key, cfg.timeout)
        )
        await self._transport.start()

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
        finally:
            self._loop.close()

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
            price = price_for(model, self.config.price_in, self.config.price_out)
            self._prices[model] = price
        return price

    def cached_samples(self, call: Call) -> int:
        """How many of `call`'s samples the store already holds (for --dry-run)."""
        if self.store is None:
            return 0
        return len(self.store.get_many(call.keys(self.api)))

    # ------------------------------------------------------------------ calls

    def _spawn(self, rows: list[list[Call]], deliver: Deliver) -> None:
        """Plan every call of a batch (store lookups in one query, in-run duplicates joined to
        the call that sends them), then start one task per row. Runs on the loop, in one go,
        so no other call can slip in between a lookup and its plan."""
        self._forget_durable()
        keyed = [[(call, call.keys(self.api)) for call in calls] for calls in rows]
        found: dict[bytes, StoredSample] = {}
        if self.store is not None:
            lookup = [k for row in keyed for _, keys in row for k in keys if k not in self._pending]
            for start in range(0, len(lookup), 500):
                found.update(self.store.get_many(lookup[start : start + 500]))
        for index, row in enumerate(keyed):
            plans = [self._plan(call, keys, found) for call, keys in row]
            task = self._loop.create_task(self._row(plans))
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

    def _plan(self, call: Call, keys: list[bytes], found: dict[bytes, StoredSample]) -> _Plan:
        plan = _Plan(call, keys)
        for i, key in enumerate(keys):
            hit = found.get(key)
            if hit is not None:
                plan.samples[i] = hit
                self.stats.cached += 1
                continue
            waiting = self._pending.get(key)
            if waiting is not None:
                plan.waits[i] = waiting
            else:
                owned = self._loop.create_future()
                self._pending[key] = owned
                plan.owned[i] = owned
        return plan

    async def _row(self, plans: list[_Plan]) -> list[Result]:
        if len(plans) == 1:
            return [await self._call(plans[0])]
        return list(await asyncio.gather(*(self._call(p) for p in plans)))

    async def _call(self, plan: _Plan) -> Result:
        try:
            if plan.owned:
                await self._fetch(plan)
            for i, future in plan.waits.items():
                got = await asyncio.shield(future)
                if isinstance(got, RequestFailed):
                    raise RequestFailed(str(got), got.reason)
                if got is not None:
                    plan.samples[i] = got
        except RequestFailed as exc:
            self.stats.failed += 1
            return exc
        return self._generation(plan.samples)

    async def _fetch(self, plan: _Plan) -> None:
        call, keys, samples, owned = plan.call, plan.keys, plan.samples, plan.owned
        todo = sorted(owned)
        outcome: RequestFailed | None = None
        try:
            while todo:
                got = await self._send(call, todo)
                if not got:
                    break  # the server keeps returning no choices
                done = todo[: len(got)]
                rows = []
                for i, sample in zip(done, got, strict=False):
                    samples[i] = sample
                    owned[i].set_result(sample)
                    rows.append((keys[i], sample))
                self._persist(rows)
                todo = todo[len(got) :]
        except RequestFailed as exc:
            outcome = exc
            raise
        finally:
            for i in todo:
                if not owned[i].done():
                    owned[i].set_result(outcome)
                self._pending.pop(keys[i], None)

    def _persist(self, rows: list[tuple[bytes, StoredSample]]) -> None:
        keys = [key for key, _ in rows]
        if self.store is None:
            self._forget(keys)
            return
        # Once durable, the writer thread queues the keys; the loop drops them from _pending
        # at its next _spawn or _persist (no cross-thread wake-up per commit).
        self.store.put(rows, functools.partial(self._durable.extend, keys))
        self._forget_durable()

    def _forget(self, keys: list[bytes]) -> None:
        for key in keys:
            self._pending.pop(key, None)

    def _forget_durable(self) -> None:
        durable = self._durable
        while durable:
            self._pending.pop(durable.popleft(), None)

    @staticmethod
    def _generation(samples: dict[int, StoredSample]) -> Generation:
        out = Generation()
        seen: set[str] = set()
        prompt = completion = 0
        for i in sorted(samples):
            sample = samples[i]
            out.choices.append(Choice(sample.text, sample.finish_reason))
            if sample.request not in seen:
                seen.add(sample.request)
                prompt += sample.prompt_tokens
                completion += sample.completion_tokens
        out.usage = {"prompt_tokens": prompt, "completion_tokens": completion}
        out.requests = len(seen)
        return out

    # ------------------------------------------------------------------ one request

    async def _send(self, call: Call, todo: list[int]) -> list[StoredSample]:
        """Ask for samples `todo` (n = len(todo)) until it works, retrying what may work."""
        body = call.body(self.api, len(todo), todo[0])
        est_in, est_out = call.estimated_tokens(len(todo))
        price = self.price(call.model)
        est_cost = price.cost(est_in, est_out)
        attempt = 0
        while True:
            if self.fatal is not None:
                raise self.fatal
            self._reserve_budget(est_cost)
            try:
                if self._tpm is not None:
                    await _sleep(self._tpm.reserve(est_in + est_out))
                if self._rpm is not None:
                    await _sleep(self._rpm.reserve(1))
                result = None
                if not self.stats.succeeded:
                    async with self._gate:
                        if self.fatal is not None:
                            raise self.fatal
                        if not self.stats.succeeded:  # those queued here go free after a success
                            result = await self._attempt(call, body, price, est_in, est_out)
                if result is None:
                    result = await self._attempt(call, body, price, est_in, est_out)
            finally:
                self._inflight_cost -= est_cost
            if isinstance(result, list):
                return result
            error, delay = result
            attempt += 1
            if attempt > self.config.max_retries:
                tries = "1 attempt" if attempt == 1 else f"{attempt} attempts"
                raise RequestFailed(f"{error} (gave up after {tries})")
            self.stats.retries += 1
            if delay is None:
                delay = self._backoff(attempt)
            await asyncio.sleep(delay)

    def _reserve_budget(self, est_cost: float) -> None:
        """Count `est_cost` as in flight, unless that could pass --max-cost."""
        limit = self.config.max_cost
        if limit is not None and (
            self.stopped or self.stats.cost + self._inflight_cost + est_cost > limit
        ):
            self.stopped = True
            raise RequestFailed(
                f"not sent: spent ${self.stats.cost:.4f} plus in flight "
                f"${self._inflight_cost:.4f} would pass --max-cost ${limit:g}",
                reason="budget_exhausted",
            )
        self._inflight_cost += est_cost

    async def _attempt(
        self,
        call: Call,
        body: dict[str, Any],
        price: Price,
        est_in: int,
        est_out: int,
    ) -> list[StoredSample] | tuple[str, float | None]:
        """One HTTP request: the samples, or (error, delay before retrying or None for the
        default backoff). Raises what must not be retried."""
        endpoint = await self._acquire()
        try:
            await self._wait_cooldown()  # after the slot: a 429 may have come while waiting
        except BaseException:
            self._release(endpoint)
            raise
        self.stats.requests += 1
        try:
            status, headers, data = await self._transport.post(endpoint.url, self.path, body)
        except _TransportError as exc:
            if exc.sent:  # it may have been processed, and billed
                self._charge(call.model, price, est_in, est_out)
            return self._transport_failed(endpoint, call, exc), None
        finally:
            self._release(endpoint)
        if status == 200:
            samples = self._parse(data, call, price, est_in + est_out)
            if samples is None:
                return f"unreadable response from {endpoint.url}", None
            endpoint.strikes = 0
            endpoint.refused = None
            self._cool_level = max(0, self._cool_level - 1)
            self.stats.succeeded += 1
            return samples
        detail = _error_message(data)
        if status in FATAL:
            hint = ""
            if status == 401 and not self.config.api_key:
                hint = f"; set {self.config.api_key_env}"
            self.fatal = EndpointError(
                f"endpoint {endpoint.url}, model {call.model!r}: {FATAL[status]} "
                f"(HTTP {status}: {detail}){hint}"
            )
            raise self.fatal
        retry_after = _retry_after(headers)
        if status == 429:
            self.stats.rate_limited += 1
            self._cool_level = min(self._cool_level + 1, 8)
            pause = retry_after if retry_after is not None else self._backoff(self._cool_level)
            self._cool_until = max(self._cool_until, time.monotonic() + pause)
            return f"HTTP 429: {detail}", pause
        if status >= 500 or status in RETRYABLE:
            self._strike(endpoint)
            return f"HTTP {status}: {detail}", retry_after
        raise RequestFailed(f"HTTP {status}: {detail}")  # 400-class: retrying cannot help

    def _transport_failed(self, endpoint: _Endpoint, call: Call, exc: _TransportError) -> str:
        message = f"{endpoint.url}: {exc}"
        if exc.refused:
            endpoint.refused = str(exc)
            self._take_down(endpoint)
            if not self.stats.succeeded and all(e.refused for e in self._endpoints):
                where = ", ".join(e.url for e in self._endpoints)
                self.fatal = EndpointError(
                    f"cannot reach endpoint {where} (model {call.model!r}): {exc}"
                )
                raise self.fatal
        else:
            self._strike(endpoint)
        return message

    def _parse(
        self, data: bytes, call: Call, price: Price, reserved: int
    ) -> list[StoredSample] | None:
        try:
            payload = json.loads(data)
            raw = sorted(payload["choices"], key=lambda c: c.get("index", 0))
            texts = [
                (c["message"]["content"] or "") if self.api == "chat" else (c["text"] or "")
                for c in raw
            ]
            usage = payload.get("usage") or {}
            prompt = int(usage.get("prompt_tokens") or 0)
            completion = int(usage.get("completion_tokens") or 0)
        except (ValueError, KeyError, TypeError, AttributeError):
            return None
        self._charge(call.model, price, prompt, completion)
        if self._tpm is not None:
            self._tpm.refund(max(0, reserved - prompt - completion))
        request = f"{self._run_id}-{next(self._request_count)}"
        return [
            StoredSample(text, c.get("finish_reason"), request, prompt, completion)
            for text, c in zip(texts, raw, strict=True)
        ]

    def _charge(self, model: str, price: Price, prompt: float, completion: float) -> None:
        self.stats.prompt_tokens += int(prompt)
        self.stats.completion_tokens += int(completion)
        if price.known:
            self.stats.cost += price.cost(prompt, completion)
        else:
            self.stats.unpriced.add(model)

    def _backoff(self, attempt: int) -> float:
        delay = min(MAX_BACKOFF, self.config.retry_delay * 2 ** max(0, attempt - 1))
        return random.uniform(delay / 2, delay)

    async def _wait_cooldown(self) -> None:
        while True:
            wait = self._cool_until - time.monotonic()
            if wait <= 0:
                return
            # a little jitter so the senders do not all return in the same millisecond
            await asyncio.sleep(wait + random.uniform(0, min(0.25, wait / 4)))

    # ------------------------------------------------------------------ endpoints

    async def _acquire(self) -> _Endpoint:
        endpoints = self._endpoints
        if len(endpoints) == 1:
            only = endpoints[0]
            wait = only.down_until - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            only.load += 1
            await only.slots.acquire()
            return only
        while True:
            now = time.monotonic()
            up = [e for e in endpoints if e.down_until <= now]
            if up:
                endpoint = min(up, key=lambda e: e.load)
                endpoint.load += 1
                await endpoint.slots.acquire()
                return endpoint
            await asyncio.sleep(min(e.down_until for e in endpoints) - now)

    @staticmethod
    def _release(endpoint: _Endpoint) -> None:
        endpoint.slots.release()
        endpoint.load -= 1

    def _take_down(self, endpoint: _Endpoint) -> None:
        endpoint.strikes += 1
        pause = min(30.0, 0.5 * 2 ** min(endpoint.strikes - 1, 6))
        endpoint.down_until = max(endpoint.down_until, time.monotonic() + pause)

    def _strike(self, endpoint: _Endpoint) -> None:
        """Timeouts, dropped connections and 5xx: three in a row take an endpoint out of
        rotation for a while, unless it is the only one left."""
        endpoint.strikes += 1
        now = time.monotonic()
        others_up = any(e is not endpoint and e.down_until <= now for e in self._endpoints)
        if endpoint.strikes >= 3 and others_up:
            self._take_down(endpoint)


async def _sleep(seconds: float) -> None:
    if seconds > 0:
        await asyncio.sleep(seconds)


def _retry_after(headers: Mapping[str, str]) -> float | None:
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
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError):
            return None
    return min(MAX_RETRY_AFTER, max(0.0, seconds))


def _error_message(data: bytes) -> str:
    try:
        body = json.loads(data)
    except ValueError:
        text = data.decode("utf-8", "replace").strip()
        return text.splitlines()[0][:200] if text else "(empty body)"
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    return str(body)[:200]


def describe(stats: Stats) -> str:
    """`cost $0.0123` or `cost unknown (no price for m)`, for summaries."""
    if stats.unpriced:
        models = ", ".join(sorted(stats.unpriced))
        return f"cost ${stats.cost:.4f} + unknown (no price for {models})"
    return f"cost ${stats.cost:.4f}"
