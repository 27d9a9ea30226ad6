"""How one request goes over the wire: lemagen's own HTTP/1.1 client (`http1`, the default:
the least CPU per request), aiohttp, or the official openai SDK for gateways that need what
it adds. This module holds what they share, and the aiohttp and SDK transports;
`lemagen.engine.clients.make_transport` picks one.

Redirects are never followed: an API call that is redirected (to another host, port or
scheme) would carry the key and the prompt where the user did not send them, so a 3xx is an
`EndpointError` naming where it points.

A transport posts a body and returns `(status, headers, body)` for every HTTP answer, error
statuses included; what never got an answer raises `TransportError`, which says whether the
request may have reached the server (and be billed) and whether the connection was refused.

Every answer is read within bounds, the same on every transport: its body at most
`--max-response-mb` (`max_body` bytes) as sent and again once decoded; a compressed body
that inflates more than `MAX_RATIO`-fold past its first `RATIO_FROM` bytes (a gzip bomb) is
refused as it inflates, never inflated whole; its status line and headers at most `MAX_HEAD`
bytes (lemagen's own client; aiohttp and httpx have bounds of their own: 128 headers of
8 KiB, 100 KiB). Such an answer is a `TransportError` that may have been billed: the engine
retries it like a 5xx and then sets the call aside with the reason. Only gzip and deflate are
asked for, so only they are decoded (by `decode_body`, here, for every transport).
"""

from __future__ import annotations

import asyncio
import errno
import importlib
import json
import os
import select
import zlib
from collections.abc import AsyncIterable, Awaitable, Callable, Mapping
from typing import Any, Literal, Protocol

import msgspec

from lemagen.errors import EndpointError

Kind = Literal["http", "aiohttp", "openai"]
TRANSPORTS: tuple[str, ...] = ("http", "aiohttp", "openai")
# The proxy variables aiohttp honours (ALL_PROXY it does not: see `unhonoured_proxy`).
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")
ALL_PROXY_VARIABLES = ("ALL_PROXY", "all_proxy")

MAX_BODY_MB = 64  # --max-response-mb's default: far past any completion's JSON
MAX_HEAD = 64 * 1024  # bytes of a response's status line and headers (lemagen's own client)
MAX_RATIO = 100  # a compressed body may inflate this many times its size...
RATIO_FROM = 1024 * 1024  # ...once past this many bytes (a JSON completion: 3 to 20 times)
ACCEPT_ENCODING = "gzip, deflate"  # what `decode_body` reads, so all that is asked for


class TransportError(Exception):
    """No HTTP answer: refused, dropped, timed out."""

    def __init__(self, message: str, *, sent: bool, refused: bool = False) -> None:
        super().__init__(message)
        self.sent = sent  # the request may have reached the server (and be billed)
        self.refused = refused  # nothing listens there: take the endpoint out of rotation


def refused_answer(why: str) -> TransportError:
    """An answer not read because it passed a bound or is not this request's: it may have
    been processed (and billed), and it is retried like a 5xx."""
    return TransportError(f"answer refused: {why}", sent=True)


def body_too_large(limit: int) -> TransportError:
    return refused_answer(f"body over {_size(limit)} (--max-response-mb)")


def _size(count: int) -> str:
    if count % (1024 * 1024) == 0:
        return f"{count // (1024 * 1024)} MiB"
    return f"{count // 1024} KiB" if count % 1024 == 0 else f"{count} bytes"


async def read_bounded(chunks: AsyncIterable[bytes], limit: int) -> bytes:
    """A body as it comes (aiohttp's and httpx's raw chunks), refused once past `limit`."""
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise body_too_large(limit)
        parts.append(chunk)
    return b"".join(parts)


def decode_body(data: bytes, coding: str | None, limit: int) -> bytes:
    """`data` sent with `Content-Encoding: coding`, decoded: gzip (every member) or deflate
    (zlib-wrapped as the RFC says, or raw as some servers send it), inflated a step at a time
    and refused past `limit` bytes or `MAX_RATIO` times what it has read so far (once past
    `RATIO_FROM`). Raises `TransportError` for what cannot be read."""
    if coding is None:
        return data
    name = coding.strip().lower()
    if name in ("", "identity"):
        return data
    if name in ("gzip", "x-gzip"):
        return _inflate(data, 16 + zlib.MAX_WBITS, name, limit)
    if name == "deflate":
        try:
            return _inflate(data, zlib.MAX_WBITS, name, limit)
        except _NotZlib:
            return _inflate(data, -zlib.MAX_WBITS, name, limit)
    raise TransportError(
        f"unreadable answer: content encoding {coding!r} was not asked for", sent=True
    )


class _NotZlib(Exception):
    """A deflate body without the zlib wrapper (read again as raw deflate)."""


_STEP = 1024 * 1024  # bytes inflated at a time, between checks of the bounds


def _inflate(data: bytes, wbits: int, name: str, limit: int) -> bytes:
    out: list[bytes] = []
    size = 0
    rest = data
    while True:
        start = len(data) - len(rest)  # where this member starts (gzip may have several)
        inflater = zlib.decompressobj(wbits)
        pending = rest
        while True:
            try:
                piece = inflater.decompress(pending, min(_STEP, limit + 1 - size))
            except zlib.error as exc:
                if wbits == zlib.MAX_WBITS and not out and not size:
                    raise _NotZlib from None
                raise TransportError(f"unreadable answer: {name} body ({exc})", sent=True) from None
            out.append(piece)
            size += len(piece)
            pending = inflater.unconsumed_tail
            read = start + len(rest) - len(pending) - len(inflater.unused_data)
            if size > limit:
                raise refused_answer(
                    f"{name} body inflates past {_size(limit)} (--max-response-mb)"
                )
            if size > RATIO_FROM and size > MAX_RATIO * read:
                raise refused_answer(f"{name} body inflates more than {MAX_RATIO}-fold")
            if inflater.eof or not (pending or piece):
                break
        if not inflater.eof:
            raise TransportError(f"unreadable answer: {name} body cut short", sent=True)
        rest = inflater.unused_data
        if wbits != 16 + zlib.MAX_WBITS or not rest.strip(b"\0"):
            return b"".join(out)  # what follows a deflate stream, or gzip's padding: ignored


def readable(sock_fd: int) -> bool:
    """Whether anything waits to be read on a socket (bytes, or its end): on an idle
    keep-alive connection, an answer no request asked for (or the server's close)."""
    poller = select.poll()
    poller.register(sock_fd, select.POLLIN)
    return bool(poller.poll(0))


def check_redirect(url: str, status: int, headers: Mapping[str, str]) -> None:
    """A 3xx answer stops the run: its target is named, never requested."""
    if 300 <= status < 400:
        target = headers.get("Location") or headers.get("location") or "(no Location header)"
        raise EndpointError(
            f"endpoint {url} redirects (HTTP {status}) to {target}: not followed for API "
            "calls; give the final URL as --base-url if you trust it"
        )


class Transport(Protocol):
    async def start(self) -> None: ...

    async def post(
        self, base_url: str, path: str, body: dict[str, Any]
    ) -> tuple[int, Mapping[str, str], bytes]: ...

    async def close(self) -> None: ...


class Guarded:
    """A transport that awaits `before()` right before each request: it may hold the request
    back, or fail the call with `RequestFailed` instead of sending it."""

    def __init__(self, inner: Transport, before: Callable[[], Awaitable[None]]) -> None:
        self.inner = inner
        self.before = before

    async def start(self) -> None:
        await self.inner.start()

    async def post(
        self, base_url: str, path: str, body: dict[str, Any]
    ) -> tuple[int, Mapping[str, str], bytes]:
        await self.before()
        return await self.inner.post(base_url, path, body)

    async def close(self) -> None:
        await self.inner.close()


def encode_body(body: dict[str, Any]) -> bytes:
    """The request body as JSON: by msgspec (several times cheaper than json.dumps), or by json
    for what msgspec does not write (a lone surrogate in a prompt, which json escapes)."""
    try:
        return _encode(body)
    except (TypeError, UnicodeEncodeError):
        return json.dumps(body).encode()


_encode = msgspec.json.Encoder().encode


def not_connected(cause: BaseException) -> str:
    """Why a connection could not be made, in one line: "connection refused" when nothing
    listens there, else the system's (or TLS's) words."""
    if getattr(cause, "errno", None) == errno.ECONNREFUSED:
        return "connection refused"
    return (str(cause) or type(cause).__name__).splitlines()[0]


def proxy_in_environment() -> bool:
    """Whether a proxy variable aiohttp honours is set (then it carries the requests)."""
    return any(os.environ.get(v) for v in PROXY_VARIABLES)


def unhonoured_proxy(kind: Kind) -> str | None:
    """The ALL_PROXY variable set, when `kind` does not honour it: aiohttp (and so lemagen's
    own client, which hands proxies to it) reads only HTTP_PROXY and HTTPS_PROXY, and no
    SOCKS proxy, which is what ALL_PROXY usually names. The SDK's httpx honours it."""
    if kind == "openai":
        return None
    return next((v for v in ALL_PROXY_VARIABLES if os.environ.get(v)), None)


class AiohttpTransport:
    """Plain JSON over one aiohttp session (and the `http` transport's way through a proxy).
    Bodies are read raw and decoded by `decode_body`, within the same bounds as the other
    transports; a connection on which an answer waits before the request is written (one no
    request asked for, left on an idle keep-alive connection) is closed, not asked again:
    aiohttp would hand that answer to the next request."""

    def __init__(
        self, api_key: str | None, timeout: float, max_body: int = MAX_BODY_MB << 20
    ) -> None:
        self._headers = {"Content-Type": "application/json", "Accept-Encoding": ACCEPT_ENCODING}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._timeout = timeout
        self._max_body = max_body
        self._session: Any = None

    async def start(self) -> None:
        """Nothing yet: the session opens with the first request (importing aiohttp takes
        a fifth of a second, which a run served from the request store never needs)."""

    def _open(self) -> Any:
        import aiohttp

        self._aiohttp = aiohttp
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300),
            timeout=aiohttp.ClientTimeout(total=self._timeout),
            headers=self._headers,
            auto_decompress=False,  # decode_body does it, within bounds
            request_class=_answered_first_check(aiohttp),
            response_class=_answered_early_check(aiohttp),
            # Proxy variables are honoured when set; otherwise trust_env would read ~/.netrc
            # on every request (measured: most of the client's CPU).
            trust_env=proxy_in_environment(),
        )
        return self._session

    async def post(
        self, base_url: str, path: str, body: dict[str, Any]
    ) -> tuple[int, Mapping[str, str], bytes]:
        session = self._open() if self._session is None else self._session
        data = encode_body(body)
        for _ in range(STALE_TRIES - 1):  # an idle connection holding an answer: another one
            try:
                return await self._post(session, base_url + path, data)
            except AnsweredUnasked:
                continue
        try:
            return await self._post(session, base_url + path, data)
        except AnsweredUnasked:
            raise TransportError(AnsweredUnasked.message, sent=False) from None

    async def _post(
        self, session: Any, url: str, data: bytes
    ) -> tuple[int, Mapping[str, str], bytes]:
        aiohttp = self._aiohttp
        try:
            async with session.post(url, data=data, allow_redirects=False) as resp:
                status = resp.status
                if status < 200:  # 101: the connection now speaks something else
                    raise switched_protocols(status)
                check_redirect(url, status, resp.headers)
                body = await read_bounded(resp.content.iter_any(), self._max_body)
                coding = resp.headers.get("Content-Encoding")
                return status, resp.headers, decode_body(body, coding, self._max_body)
        except AnsweredEarly:
            raise answered_early() from None
        except aiohttp.ClientConnectorError as exc:
            message = not_connected(exc.os_error or exc)
            if isinstance(exc, aiohttp.ClientProxyConnectionError):
                message = f"the proxy (from {'/'.join(PROXY_VARIABLES[:2])}): {message}"
            raise TransportError(message, sent=False, refused=True) from None
        except (asyncio.TimeoutError, TimeoutError):
            raise TransportError(f"timed out after {self._timeout:g} s", sent=True) from None
        except aiohttp.ClientResponseError as exc:  # a head it could not parse, or too long
            why = (exc.message or type(exc).__name__).splitlines()[0].split(": b'")[0][:200]
            raise TransportError(f"unreadable answer: {why}", sent=True) from None
        except aiohttp.ClientError as exc:
            raise TransportError(f"connection dropped: {type(exc).__name__}", sent=True) from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def switched_protocols(status: int) -> TransportError:
    return refused_answer(f"the server switched protocols (HTTP {status})")


def answered_early() -> TransportError:
    return refused_answer("the server answered before the request was sent whole")


class AnsweredEarly(Exception):
    """An answer came while its request was still being written."""


STALE_TRIES = 3  # connections tried for one request when each held an answer to nothing


class AnsweredUnasked(Exception):
    """An answer was waiting on a connection before its request was written."""

    message = "connection dropped: the server answered before the request was sent"


def _answered_first_check(aiohttp: Any) -> Any:
    """aiohttp's request, refusing to be written on a connection that already holds an
    answer (parsed and queued, or unread in the socket): that answer belongs to no request,
    and aiohttp would give it to this one."""

    class Request(aiohttp.ClientRequest):  # type: ignore[misc]
        async def send(self, conn: Any) -> Any:
            protocol = conn.protocol
            transport = conn.transport
            if protocol is not None and transport is not None:
                sock = transport.get_extra_info("socket")
                if protocol.should_close or (sock is not None and readable(sock.fileno())):
                    raise AnsweredUnasked
            return await super().send(conn)

    return Request


def _answered_early_check(aiohttp: Any) -> Any:
    """aiohttp's response, refusing an answer whose head came while the request's body was
    still being written (its writer not done: bytes not yet handed to the system), which the
    server cannot have read: aiohttp would take it as the answer."""

    class Response(aiohttp.ClientResponse):  # type: ignore[misc]
        async def start(self, connection: Any) -> Any:
            started = await super().start(connection)
            writer = getattr(self, "_writer", None)  # aiohttp's task writing the body
            if writer is not None and not writer.done():
                raise AnsweredEarly
            return started

    return Response


class OpenAITransport:
    """The official SDK (`AsyncOpenAI`, its own retries off): for gateways that need what
    the SDK adds; costs more CPU per request than aiohttp. Its httpx client reads each body
    raw, within the same bounds as the other transports (`_bounded_client`), under one
    deadline for the whole request."""

    def __init__(
        self, api_key: str | None, timeout: float, max_body: int = MAX_BODY_MB << 20
    ) -> None:
        self._api_key = api_key or "EMPTY"  # local servers need no key; the SDK wants one
        self._timeout = timeout
        self._max_body = max_body
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
                base_url=base_url,
                api_key=self._api_key,
                timeout=self._timeout,
                max_retries=0,
                http_client=_bounded_client(openai, self._max_body),
            )
            self._clients[base_url] = client
        try:
            request = client.post(
                path, cast_to=bytes, body=body, options={"follow_redirects": False}
            )
            # httpx's timeouts are per read: a body trickling in would never time out
            data: bytes = await asyncio.wait_for(request, self._timeout)
        except TransportError:
            raise  # a bound (raised inside httpx's send, passed on by the SDK as it is)
        except AnsweredEarly:  # raised while httpx wrote the body, passed on the same way
            raise answered_early() from None
        except openai.APIStatusError as exc:
            check_redirect(base_url + path, exc.status_code, exc.response.headers)
            return exc.status_code, exc.response.headers, exc.response.content
        except (openai.APITimeoutError, TimeoutError):
            raise TransportError(f"timed out after {self._timeout:g} s", sent=True) from None
        except openai.APIConnectionError as exc:
            cause: BaseException = exc
            while cause.__cause__ is not None:
                cause = cause.__cause__
            refused = "connect" in type(cause).__name__.lower()
            text = (str(cause) or type(cause).__name__).splitlines()[0]
            if isinstance(cause, ConnectionRefusedError) or "refused" in text.lower():
                text = "connection refused"
            raise TransportError(
                text if refused else f"connection dropped: {text}",
                sent=not refused,
                refused=refused,
            ) from None
        return 200, {}, data

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()


_DROPPED_HEADERS = ("content-encoding", "content-length", "transfer-encoding")
PIECE = 256 * 1024  # bytes of a request body written between looks for an early answer


def _connection_watch(socket: list[Any]) -> Callable[[str, dict[str, Any]], Awaitable[None]]:
    """httpcore's `trace` extension, keeping the socket of the plain connection a request
    is sent on (each request has a new one: see `_bounded_client`)."""

    async def trace(event: str, info: dict[str, Any]) -> None:
        if event == "connection.connect_tcp.complete":
            stream = info.get("return_value")
            sock = stream.get_extra_info("socket") if stream is not None else None
            socket[:] = [sock] if sock is not None else []
        elif event == "connection.start_tls.complete":
            socket.clear()

    return trace


def _bounded_client(openai: Any, max_body: int) -> Any:
    """The SDK's httpx client (its defaults, but no keep-alive), sending each request as it
    would and reading the answer's body raw, within `max_body`, decoded by `decode_body`: the
    answer handed on holds the decoded body, so neither httpx nor the SDK reads more of the
    wire.

    An answer belongs to its request. httpx keeps what a server wrote after an answer (a
    second answer in the same write) and would hand it to the next request on that
    connection, with no way to tell; so each request has a connection of its own, closed
    with its answer, and what else came on it goes with it. Its body is written in pieces
    (`WrittenInPieces`), so that an answer sent before the request was written whole is
    refused, as on the other transports."""

    httpx = importlib.import_module(  # httpx (or httpx2, as newer SDKs name it)
        next(
            c for c in openai.DefaultAsyncHttpxClient.__mro__ if c.__name__ == "AsyncClient"
        ).__module__.split(".")[0]
    )

    class WrittenInPieces(httpx.AsyncByteStream):  # type: ignore[misc,name-defined]
        """A request body httpx writes piece by piece, looking at the connection's socket
        (told by `_connection_watch` as it is made) before each piece after the first: an
        answer already there came before the server can have read the request. Over TLS
        the socket also carries the server's session tickets: only a plain connection is
        looked at."""

        def __init__(self, body: bytes, socket: list[Any]) -> None:
            self._body = body
            self._socket = socket

        async def __aiter__(self) -> Any:
            body = memoryview(self._body)
            for start in range(0, len(body), PIECE):
                if start and self._socket and readable(self._socket[0].fileno()):
                    raise AnsweredEarly
                yield bytes(body[start : start + PIECE])

    class Bounded(openai.DefaultAsyncHttpxClient):  # type: ignore[misc]
        async def send(self, request: Any, **kwargs: Any) -> Any:
            kwargs["stream"] = True
            if len(request.content) > PIECE:
                socket: list[Any] = []
                request.extensions = {**request.extensions, "trace": _connection_watch(socket)}
                request.stream = WrittenInPieces(request.content, socket)
            response = await super().send(request, **kwargs)
            try:
                if response.status_code < 200:
                    raise switched_protocols(response.status_code)
                data = await read_bounded(response.aiter_raw(), max_body)
            finally:
                await response.aclose()
            coding = response.headers.get("content-encoding")
            data = decode_body(data, coding, max_body)
            headers = [
                (name, value)
                for name, value in response.headers.multi_items()
                if name.lower() not in _DROPPED_HEADERS
            ]
            return type(response)(  # httpx's Response
                response.status_code,
                headers=headers,
                content=data,
                request=request,
                extensions=response.extensions,
            )

    return Bounded(
        headers={"Accept-Encoding": ACCEPT_ENCODING},
        limits=httpx.Limits(max_connections=1000, max_keepalive_connections=0),
    )
