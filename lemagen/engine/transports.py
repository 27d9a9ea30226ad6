"""How one request goes over the wire: lemagen's own HTTP/1.1 client (`http1`, the default:
the least CPU per request), aiohttp, or the official openai SDK for gateways that need what
it adds.

Redirects are never followed: an API call that is redirected (to another host, port or
scheme) would carry the key and the prompt where the user did not send them, so a 3xx is an
`EndpointError` naming where it points.

A transport posts a body and returns `(status, headers, body)` for every HTTP answer, error
statuses included; what never got an answer raises `TransportError`, which says whether the
request may have reached the server (and be billed) and whether the connection was refused.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, Protocol

import msgspec

from lemagen.errors import EndpointError

Kind = Literal["http", "aiohttp", "openai"]
TRANSPORTS: tuple[str, ...] = ("http", "aiohttp", "openai")
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                   "all_proxy")  # fmt: skip


class TransportError(Exception):
    """No HTTP answer: refused, dropped, timed out."""

    def __init__(self, message: str, *, sent: bool, refused: bool = False) -> None:
        super().__init__(message)
        self.sent = sent  # the request may have reached the server (and be billed)
        self.refused = refused  # nothing listens there: take the endpoint out of rotation


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
    """Whether a proxy variable is set (then aiohttp carries the requests, honouring it)."""
    return any(os.environ.get(v) for v in PROXY_VARIABLES)


def make_transport(kind: Kind, api_key: str | None, timeout: float) -> Transport:
    if kind == "http":
        from lemagen.engine.http1 import Http1Transport

        return Http1Transport(api_key, timeout)
    if kind == "aiohttp":
        return AiohttpTransport(api_key, timeout)
    return OpenAITransport(api_key, timeout)


class AiohttpTransport:
    """Plain JSON over one aiohttp session (and the `http` transport's way through a proxy)."""

    def __init__(self, api_key: str | None, timeout: float) -> None:
        self._headers = {"Content-Type": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._timeout = timeout
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
            # Proxy variables are honoured when set; otherwise trust_env would read ~/.netrc
            # on every request (measured: most of the client's CPU).
            trust_env=proxy_in_environment(),
        )
        return self._session

    async def post(
        self, base_url: str, path: str, body: dict[str, Any]
    ) -> tuple[int, Mapping[str, str], bytes]:
        session = self._open() if self._session is None else self._session
        aiohttp = self._aiohttp
        try:
            async with session.post(
                base_url + path, data=encode_body(body), allow_redirects=False
            ) as resp:
                check_redirect(base_url + path, resp.status, resp.headers)
                return resp.status, resp.headers, await resp.read()
        except aiohttp.ClientConnectorError as exc:
            message = not_connected(exc.os_error or exc)
            if isinstance(exc, aiohttp.ClientProxyConnectionError):
                message = f"the proxy (from {'/'.join(PROXY_VARIABLES[:3])}): {message}"
            raise TransportError(message, sent=False, refused=True) from None
        except (asyncio.TimeoutError, TimeoutError):
            raise TransportError(f"timed out after {self._timeout:g} s", sent=True) from None
        except aiohttp.ClientError as exc:
            raise TransportError(f"connection dropped: {type(exc).__name__}", sent=True) from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class OpenAITransport:
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
            data: bytes = await client.post(
                path, cast_to=bytes, body=body, options={"follow_redirects": False}
            )
        except openai.APIStatusError as exc:
            check_redirect(base_url + path, exc.status_code, exc.response.headers)
            return exc.status_code, exc.response.headers, exc.response.content
        except openai.APITimeoutError:
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
