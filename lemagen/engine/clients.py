"""The transport a run sends with, by its `--transport` name: kept apart from the transports
themselves, so that lemagen's own client (`http1`) and the ones in `transports` (which it
builds on: it hands proxied requests to aiohttp) import in one direction only."""

from __future__ import annotations

from lemagen.engine.http1 import Http1Transport
from lemagen.engine.transports import (
    MAX_BODY_MB,
    AiohttpTransport,
    Kind,
    OpenAITransport,
    Transport,
)


def make_transport(
    kind: Kind, api_key: str | None, timeout: float, max_body: int = MAX_BODY_MB << 20
) -> Transport:
    """A transport of `kind` (http, aiohttp, openai) for one run."""
    if kind == "http":
        return Http1Transport(api_key, timeout, max_body)
    if kind == "aiohttp":
        return AiohttpTransport(api_key, timeout, max_body)
    return OpenAITransport(api_key, timeout, max_body)
