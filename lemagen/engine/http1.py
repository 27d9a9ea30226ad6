"""lemagen's own HTTP/1.1 client for the one thing the engine does: POST a JSON body, read the
status, headers and body back, over keep-alive connections.

Why not aiohttp for this: at 512 requests in flight the engine is bound by the interpreter
lock, and aiohttp's request path (session, request and response objects, payload registry,
cookie jar, timers) costs about 0.2 ms of CPU per request, four times what a protocol on
the event loop's own transports costs (measured: `benchmarks/bench_engine.py`). Responses
are parsed by httptools (llhttp, the parser of Node.js: chunked bodies, keep-alive rules, and
malformed answers are its job, not ours).

What it does not do, it hands to aiohttp: a proxy (HTTP_PROXY or HTTPS_PROXY set) or a URL
with a user name. Redirects are returned, never followed (the caller refuses them). Every
request has one deadline (connect, send and answer together), like aiohttp's `total` timeout.

An answer belongs to the request it follows, and to nothing else: bytes that come while no
request waits (on an idle keep-alive connection, or on a new one before the request went) close
the connection, which is not asked again; so does an answer that starts while the request is
still being written (the server cannot have read it), or a second answer after the awaited one.
A connection is also looked at (one poll) just before it is reused, so bytes already in the
socket are seen even when the event loop has not read them yet. Bodies and headers are read
within the bounds every transport keeps (`transports`: `--max-response-mb`, `MAX_HEAD`).

A request that never got an answer raises `TransportError`: a connection that could not be
made was not sent (`refused`); one lost after the request was written may have been (`sent`).
"""

from __future__ import annotations

import asyncio
import functools
import re
import select
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import quote, urlsplit

import httptools

from lemagen._version import __version__
from lemagen.engine.transports import (
    ACCEPT_ENCODING,
    MAX_BODY_MB,
    MAX_HEAD,
    AiohttpTransport,
    TransportError,
    answered_early,
    body_too_large,
    check_redirect,
    decode_body,
    encode_body,
    not_connected,
    proxy_in_environment,
    refused_answer,
    switched_protocols,
)

DNS_TTL = 300.0  # seconds a host's addresses are reused for new connections
# A connection idle longer than this is not used again: servers close idle ones (uvicorn,
# under vLLM and SGLang, after 5 s), and a request written as the close crosses it is lost
# (and counted as possibly billed). A `Keep-Alive: timeout=N` answer header says N: then
# N - 1 s (half of N when that is more), at most IDLE_REUSE.
IDLE_REUSE = 4.0
_KEEP_ALIVE = re.compile(r"timeout\s*=\s*(\d+)")
Answer = tuple[int, dict[str, str], bytes]


@dataclass(frozen=True)
class Origin:
    """Where a base URL's requests go, and the fixed start of each request's head."""

    host: str
    port: int
    tls: bool
    prefix: str  # the base URL's path, e.g. /v1
    head: bytes  # Host, User-Agent, Authorization, ... up to "Content-Length: "


def parse_origin(base_url: str, api_key: str | None) -> Origin | None:
    """The origin of `base_url`, or None when this client does not handle it (a scheme other
    than http(s), a user name or a query string in the URL). Raises ValueError for a URL no
    request can go to (a port out of range, a host name that is not one)."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    if parts.username or parts.query or parts.fragment:
        return None
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)  # ValueError: "Port out of range 0-65535"
    try:
        host = parts.hostname.encode("idna").decode("ascii")  # an international name
    except UnicodeError as exc:
        raise ValueError(f"host name {parts.hostname!r}: {exc}") from None
    shown = f"[{host}]" if ":" in host else host
    if port != (443 if tls else 80):
        shown += f":{port}"
    lines = [
        f"Host: {shown}",
        f"User-Agent: lemagen/{__version__}",
        "Accept: application/json",
        f"Accept-Encoding: {ACCEPT_ENCODING}",
        "Content-Type: application/json",
    ]
    if api_key:
        lines.append(f"Authorization: Bearer {api_key}")
    if any(c in "\r\n" for c in api_key or ""):  # it would end the header (checked before too)
        raise ValueError("the API key holds a line break")
    try:
        head = ("\r\n".join(lines) + "\r\nContent-Length: ").encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError("the API key holds a character an HTTP header cannot carry") from None
    prefix = quote(parts.path.rstrip("/"), safe=_PATH_SAFE)  # non-ASCII: percent-encoded
    return Origin(host, port, tls, prefix, head)


_PATH_SAFE = "/%:@!$&'()*+,;=-._~"  # what a path keeps as it is (RFC 3986 pchar)


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one request at a time, its answer parsed as it arrives."""

    def __init__(self, max_body: int) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.max_body = max_body
        self.waiter: asyncio.Future[Answer] | None = None
        self.closed = False
        self.reusable = True
        self.idle_since = 0.0  # when its last answer came (loop time)
        self.reuse_for = IDLE_REUSE  # seconds it may stay idle and still be used
        self.unasked: str | None = None  # why it was closed with no request waiting
        self.poller: select.poll | None = None  # looks at the socket before a reuse
        self.headers: dict[str, str] = {}
        self.chunks: list[bytes] = []
        self.size = 0  # bytes of the body so far
        self.in_head = False  # an answer's status line and headers are being read
        self.head_size = 0  # bytes read meanwhile
        self.headers_done = False
        self.length_known = False

    @property
    def usable(self) -> bool:
        """Open, and not told to close (an answer to no request, a drop on its way)."""
        transport = self.transport
        return not self.closed and transport is not None and not transport.is_closing()

    def holds_bytes(self) -> bool:
        """Bytes (or the server's close) wait in the socket, unread by the loop yet: one
        poll(2) (its poll object made the first time, then kept: about 1 us a reuse)."""
        poller = self.poller
        if poller is None:
            transport = self.transport
            sock = transport.get_extra_info("socket") if transport is not None else None
            if sock is None:
                return False
            poller = self.poller = select.poll()
            poller.register(sock.fileno(), select.POLLIN)
        return bool(poller.poll(0))

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        if self.waiter is None:  # idle, or new and not yet asked
            self._unasked("the server answered before the request was sent")
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:  # 101 (already failed in on_headers_complete)
            self.abort(switched_protocols(self.parser.get_status_code()))
        except httptools.HttpParserError as exc:
            self._fail(f"unreadable HTTP answer ({exc})")
        if self.in_head:
            self.head_size += len(data)
            if self.head_size > MAX_HEAD:
                self.abort(refused_answer(f"headers over {MAX_HEAD // 1024} KiB"))

    def eof_received(self) -> bool | None:
        return None  # close the transport: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        if self.headers_done and not self.length_known:  # a body that ends with the connection
            self._complete()
            return
        reason = type(exc).__name__ if exc is not None else "the server closed the connection"
        waiter.set_exception(TransportError(f"connection dropped: {reason}", sent=True))

    # httptools callbacks
    def on_message_begin(self) -> None:
        waiter = self.waiter
        if waiter is None or waiter.done():  # a second answer after the one awaited
            self._unasked("an answer no request was waiting for")
            return
        transport = self.transport
        if transport is not None and transport.get_write_buffer_size():
            # The request is not all out: the server answered what it cannot have read.
            self.abort(answered_early())
            return
        self.headers = {}
        self.chunks = []
        self.size = 0
        self.headers_done = False
        self.in_head = True
        self.head_size = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        headers = self.headers
        self.headers_done = True
        self.in_head = False
        self.length_known = (
            "content-length" in headers or "chunked" in headers.get("transfer-encoding", "").lower()
        )
        status = self.parser.get_status_code()
        if status == 101:  # the connection would speak another protocol from here on
            self.abort(switched_protocols(status))

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > self.max_body:
            if self.reusable:  # the first time only: the rest of this read still comes
                self.abort(body_too_large(self.max_body))
            return
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        if self.parser.get_status_code() < 200:  # 100 Continue, 103 Early Hints: more follows
            return
        self.reusable = self.reusable and self.parser.should_keep_alive()
        self._complete()
        self.headers_done = False  # a drop before the next answer is not this one's end

    def _complete(self) -> None:
        waiter = self.waiter
        if waiter is None or waiter.done():  # failed meanwhile (a bound, a drop)
            return
        data = b"".join(self.chunks)
        coding = self.headers.get("content-encoding")
        if coding is not None:
            try:
                data = decode_body(data, coding, self.max_body)
            except TransportError as exc:
                self.abort(exc)
                return
        waiter.set_result((self.parser.get_status_code(), self.headers, data))

    def _unasked(self, why: str) -> None:
        """Bytes no request waits for: the connection is closed, and a request still
        waiting on it fails (the answer it got, if any, stands)."""
        self.unasked = why
        self._fail(why)

    def _fail(self, message: str) -> None:
        self.abort(TransportError(f"connection dropped: {message}", sent=True))

    def abort(self, error: TransportError | str) -> None:
        """The request (which may have been sent) fails with `error` (a message: sent); the
        connection is closed at once."""
        self.reusable = False
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            if isinstance(error, str):
                error = TransportError(error, sent=True)
            waiter.set_exception(error)
        if self.transport is not None:
            self.transport.abort()


class Http1Transport:
    """Keep-alive connections per origin, reused last-in first-out; unlimited in number (the
    engine bounds the requests in flight)."""

    def __init__(
        self, api_key: str | None, timeout: float, max_body: int = MAX_BODY_MB << 20
    ) -> None:
        self._api_key = api_key
        self._timeout = timeout
        self._max_body = max_body
        self._origins: dict[str, Origin | str | None] = {}
        self._idle: dict[Origin, list[_Connection]] = {}
        self._addresses: dict[tuple[str, int], tuple[float, asyncio.Task[list[Any]]]] = {}
        self._ssl: ssl.SSLContext | None = None
        self._fallback: AiohttpTransport | None = None  # for what this client does not do
        self._open: set[_Connection] = set()
        self._heads: dict[tuple[Origin, str], bytes] = {}  # the request line and fixed headers

    async def start(self) -> None:
        """Nothing: connections open with the first request to each origin."""

    async def post(
        self, base_url: str, path: str, body: dict[str, Any]
    ) -> tuple[int, Mapping[str, str], bytes]:
        if base_url in self._origins:
            origin = self._origins[base_url]
        else:
            origin = self._origins[base_url] = self._origin_of(base_url)
        if origin is None:
            return await self._aiohttp().post(base_url, path, body)
        if isinstance(origin, str):
            raise TransportError(origin, sent=False, refused=True)
        loop = asyncio.get_running_loop()
        now = loop.time()
        deadline = now + self._timeout
        data = encode_body(body)
        head = self._heads.get((origin, path))
        if head is None:
            target = quote(origin.prefix + path, safe=_PATH_SAFE).encode("ascii")
            head = self._heads[(origin, path)] = b"POST %s HTTP/1.1\r\n%s" % (target, origin.head)
        idle = self._idle.get(origin)
        conn = None
        while idle:
            candidate = idle.pop()
            if (
                candidate.usable
                and now - candidate.idle_since < candidate.reuse_for
                and not candidate.holds_bytes()  # an answer to nothing, or the server's close
            ):
                conn = candidate
                break
            self._drop(candidate)
        if conn is None:
            conn = await self._connect(origin, deadline)
            if conn.usable and conn.holds_bytes():  # something came before the request
                conn.unasked = "the server answered before the request was sent"
            if conn.unasked is not None or not conn.usable:
                self._drop(conn)
                why = conn.unasked or "the server closed the connection at once"
                raise TransportError(f"connection dropped: {why}", sent=False)
        transport = conn.transport
        assert transport is not None
        waiter: asyncio.Future[Answer] = loop.create_future()
        conn.waiter = waiter
        timer = loop.call_at(deadline, conn.abort, f"timed out after {self._timeout:g} s")
        try:
            try:
                transport.write(b"%s%d\r\n\r\n%s" % (head, len(data), data))
            except RuntimeError:  # closed under us (uvloop refuses the write): nothing went
                raise TransportError("connection dropped: closed", sent=False) from None
            status, headers, answer = await waiter
        finally:
            timer.cancel()
            conn.waiter = None
            if conn.reusable and conn.usable and waiter.done() and not waiter.cancelled():
                conn.idle_since = loop.time()
                self._idle.setdefault(origin, []).append(conn)
            else:
                self._drop(conn)
        keep_alive = headers.get("keep-alive")
        if keep_alive is not None and (said := _KEEP_ALIVE.search(keep_alive)):
            server_idle = float(said.group(1))
            conn.reuse_for = min(IDLE_REUSE, max(server_idle - 1, server_idle / 2))
        check_redirect(base_url + path, status, headers)
        return status, headers, answer

    def _origin_of(self, base_url: str) -> Origin | str | None:
        """The URL's origin; None: aiohttp carries it; a string: why no request can go there."""
        if proxy_in_environment():
            return None
        try:
            return parse_origin(base_url, self._api_key)
        except ValueError as exc:
            return str(exc)

    def _aiohttp(self) -> AiohttpTransport:
        if self._fallback is None:
            self._fallback = AiohttpTransport(self._api_key, self._timeout, self._max_body)
        return self._fallback

    async def _connect(self, origin: Origin, deadline: float) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(self._dial(origin), max(deadline - loop.time(), 0))
        except (asyncio.TimeoutError, TimeoutError):  # not sent; a timeout, not a refusal
            raise TransportError(f"timed out after {self._timeout:g} s", sent=False) from None
        except OSError as exc:  # refused, unreachable, no such host, TLS failure
            raise TransportError(not_connected(exc), sent=False, refused=True) from None

    async def _dial(self, origin: Origin) -> _Connection:
        loop = asyncio.get_running_loop()
        context = None
        if origin.tls:
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            context = self._ssl
        last: OSError | None = None
        for address in await self._resolve(origin.host, origin.port):
            try:
                _, conn = await loop.create_connection(
                    functools.partial(_Connection, self._max_body),
                    address[0],
                    origin.port,
                    ssl=context,
                    server_hostname=origin.host if context is not None else None,
                )
            except OSError as exc:
                last = exc
                continue
            self._open.add(conn)
            return conn
        assert last is not None
        raise last

    async def _resolve(self, host: str, port: int) -> list[Any]:
        """The host's addresses, looked up once per DNS_TTL however many connections open at
        once (a burst of 512 new connections asks the resolver one question). The lookup is
        a task of its own: a request that gives up waiting does not cut it short for the
        others; a lookup that failed is forgotten at once."""
        loop = asyncio.get_running_loop()
        key = (host, port)
        cached = self._addresses.get(key)
        if cached is None or cached[0] <= loop.time():
            lookup = loop.create_task(self._lookup(host, port))
            self._addresses[key] = (loop.time() + DNS_TTL, lookup)
            lookup.add_done_callback(functools.partial(self._looked_up, key))
        else:
            lookup = cached[1]
        return await asyncio.shield(lookup)

    @staticmethod
    async def _lookup(host: str, port: int) -> list[Any]:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except UnicodeError as exc:  # a label the resolver cannot encode (over 63 characters)
            raise OSError(f"cannot look up {host}: {exc}") from None
        return [info[4] for info in infos]

    def _looked_up(self, key: tuple[str, int], lookup: asyncio.Future[list[Any]]) -> None:
        failed = lookup.cancelled() or lookup.exception() is not None
        if failed and self._addresses.get(key, (0.0, None))[1] is lookup:
            del self._addresses[key]

    def _drop(self, conn: _Connection) -> None:
        self._open.discard(conn)
        if conn.transport is not None and not conn.closed:
            conn.transport.abort()

    async def close(self) -> None:
        """Close every connection at once (a TLS goodbye would need the loop to run on)."""
        for conn in list(self._open):
            if conn.transport is not None:
                conn.transport.abort()
        self._open.clear()
        self._idle.clear()
        if self._fallback is not None:
            await self._fallback.close()
