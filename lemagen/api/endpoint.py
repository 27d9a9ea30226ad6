"""What a model-calling stage is told about its endpoints and requests: the options that the
CLI's `--base-url ... --check-timeout` declare and the Python API takes as keyword arguments,
with the CLI's defaults, turned into the engine's configuration, the sampling parameters and
the request shape. One definition for both, so a script and a command send the same requests
(and hit the same request store)."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from lemagen.engine import (
    DEFAULT_BASE_URL,
    EngineConfig,
    RequestShape,
    Sampling,
    default_cache_dir,
    price_for,
)
from lemagen.engine.batching import MAX_BYTES, MAX_REQUESTS, BatchConfig, Fallback
from lemagen.engine.calls import Api
from lemagen.engine.transports import Kind
from lemagen.errors import UsageError
from lemagen.math.grading import DEFAULT_CHECK_TIMEOUT
from lemagen.redact import remember, remember_url

COMPLETION_STOPS = ("\n\nQuestion:", "\n\nProblem:")


# The engine's defaults (`EngineConfig`), which the endpoint options share: each default is
# written once, there or below, and the CLI's options read theirs from `DEFAULTS`.
_ENGINE: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(EngineConfig)}


@dataclass(frozen=True)
class Endpoint:
    """Endpoint and request options of a model-calling stage (each is the CLI option of the
    same name; see `lemagen sample --help`).

    `base_url` is one URL or several (requests go to the least loaded); None reads
    `OPENAI_BASE_URL`, else OpenAI. The key is `api_key`, else the environment variable
    named by `api_key_env`; it is never written anywhere. `cache_dir` None is
    `LEMAGEN_CACHE_DIR`, else the user cache directory; `no_cache` uses no request store.
    `extra_body` is a dict or its JSON text; `system` is text or `@FILE`. `price_in`,
    `price_out` and `price_cached` (dollars per million tokens) override the built-in price
    table. `batch` and the options after it are the CLI's `--batch` (provider Batch APIs):
    a batched stage runs in passes (`lemagen.run`), from the commands, the API and Ray alike.
    """

    base_url: str | Sequence[str] | None = None
    api_key: str | None = None
    api_key_env: str = _ENGINE["api_key_env"]
    api: Api = _ENGINE["api"]
    top_p: float | None = None
    system: str | None = None
    stop: Sequence[str] = ()
    extra_body: str | dict[str, Any] | None = None
    max_tokens_param: str = "auto"
    max_tokens: int = 1024
    seed: int | None = None
    concurrency: int = _ENGINE["concurrency"]
    timeout: float = _ENGINE["timeout"]
    max_retries: int = _ENGINE["max_retries"]
    retry_delay: float = _ENGINE["retry_delay"]
    rpm: float | None = None
    tpm: float | None = None
    cache_dir: str | Path | None = None
    no_cache: bool = False
    price_in: float | None = None
    price_out: float | None = None
    price_cached: float | None = None
    max_cost: float | None = None
    batch: bool = False
    wait: bool = False
    poll_interval: float = 60.0
    completion_window: str = "24h"
    batch_fallback: Fallback = "batch"
    batch_max_requests: int = MAX_REQUESTS
    batch_max_bytes: int = MAX_BYTES
    transport: Kind = _ENGINE["transport"]
    max_response_mb: int = _ENGINE["max_response_mb"]
    check_timeout: float = DEFAULT_CHECK_TIMEOUT

    def base_urls(self) -> list[str]:
        """The endpoints to use. An empty one (`--base-url ""`, `OPENAI_BASE_URL=`) is a usage
        error, never a silent fall back to the hosted default; so is one that is not
        http(s)."""
        given = [self.base_url] if isinstance(self.base_url, str) else list(self.base_url or ())
        env = os.environ.get("OPENAI_BASE_URL")
        if not given and env is not None:
            if not env.strip():
                raise UsageError(
                    "OPENAI_BASE_URL is set but empty: give an endpoint URL, or unset it to use "
                    f"{DEFAULT_BASE_URL}"
                )
            given = env.split()
        for url in given:
            if not url.strip():
                raise UsageError(
                    f"{{base_url}} is empty: give an endpoint URL such as {DEFAULT_BASE_URL}"
                )
            if not url.startswith(("http://", "https://")):
                raise UsageError("{base_url=} is not an http:// or https:// URL", base_url=url)
            remember_url(url)  # its user name and password are secrets like the key
        return given or [DEFAULT_BASE_URL]

    def engine_config(self, models: Iterable[str]) -> EngineConfig:
        """The engine's configuration for calls to `models`."""
        if self.max_cost is not None:
            unpriced = ", ".join(
                m
                for m in models
                if not price_for(m, self.price_in, self.price_out, self.price_cached).known
            )
            if unpriced:
                raise UsageError(
                    f"{{max_cost}} needs a price for {unpriced}: give {{price_in}} and "
                    "{price_out}"
                )
        api_key = self.api_key or os.environ.get(self.api_key_env) or None
        remember(api_key)
        source = "api_key" if self.api_key else f"${self.api_key_env}"
        check_api_key(api_key, source)
        base_urls = self.base_urls()
        if api_key is not None and any(_has_user(url) for url in base_urls):
            raise UsageError(
                f"a {{base_url}} with a user name (HTTP Basic authentication) and an API key "
                f"(from {source}) cannot go together: both would be the Authorization "
                "header; drop the user from the URL, or unset the key"
            )
        cache_dir = None
        if not self.no_cache:
            given = self.cache_dir or os.environ.get("LEMAGEN_CACHE_DIR")
            cache_dir = Path(given) if given else default_cache_dir()
        batch = None
        if self.batch:
            if self.no_cache:
                raise UsageError("{batch} needs the request store: drop {no_cache}")
            if self.batch_fallback not in ("batch", "sync"):
                raise UsageError(
                    "{batch_fallback=}: choose from batch, sync", batch_fallback=self.batch_fallback
                )
            batch = BatchConfig(
                completion_window=self.completion_window,
                wait=self.wait,
                poll_interval=self.poll_interval,
                fallback=self.batch_fallback,
                max_requests=self.batch_max_requests,
                max_bytes=self.batch_max_bytes,
            )
        return EngineConfig(
            base_urls=base_urls,
            api_key=api_key,
            api_key_env=self.api_key_env,
            api=self.api,
            timeout=self.timeout,
            max_retries=self.max_retries,
            retry_delay=self.retry_delay,
            concurrency=self.concurrency,
            rpm=self.rpm,
            tpm=self.tpm,
            cache_dir=cache_dir,
            transport=self.transport,
            max_response_mb=self.max_response_mb,
            price_in=self.price_in,
            price_out=self.price_out,
            price_cached=self.price_cached,
            max_cost=self.max_cost,
            batch=batch,
        )

    def max_pending(self) -> int:
        """Rows in flight at most: about two rounds of every endpoint's concurrency."""
        return 2 * self.concurrency * max(1, len(self.base_urls())) + 16

    def stops(self) -> tuple[str, ...]:
        """--stop, else with --api completion the blank line before a new few-shot item."""
        if self.stop:
            return tuple(self.stop)
        return COMPLETION_STOPS if self.api == "completion" else ()

    def sampling(self, temperature: float) -> Sampling:
        """The sampling parameters of every call, at the stage's `temperature`."""
        return Sampling(
            temperature=temperature,
            top_p=self.top_p,
            max_tokens=self.max_tokens,
            seed=self.seed,
            stop=self.stops(),
        )

    def request_shape(self) -> RequestShape:
        """--system, --stop, --extra-body and --max-tokens-param, checked."""
        system = self.system
        if system is not None and system.startswith("@"):
            try:
                system = Path(system[1:]).read_text(encoding="utf-8")
            except OSError as exc:
                raise UsageError(f"{{system}}: {system[1:]}: {exc.strerror}") from None
        extra = self.extra_body
        if isinstance(extra, str):
            try:
                extra = json.loads(extra)
            except ValueError as exc:
                raise UsageError(f"{{extra_body}}: not JSON: {exc}") from None
        if extra is not None and not isinstance(extra, dict):
            raise UsageError("{extra_body}: must be a JSON object")
        return RequestShape(system, extra, self.max_tokens_param, self.stops())


def _has_user(url: str) -> bool:
    try:
        return urlsplit(url).username is not None
    except ValueError:
        return False


def check_api_key(api_key: str | None, source: str) -> None:
    """A key goes into an HTTP header: a space, a line break or a non-ASCII character there
    would break the request (or, a line break, start another header). Never shows the key."""
    if api_key is not None and not all(33 <= ord(c) < 127 for c in api_key):
        raise UsageError(
            f"the API key from {source} holds a space, a line break or a non-ASCII character, "
            "which an HTTP header cannot carry (a newline left over from a file?)"
        )


DEFAULTS: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(Endpoint)}
"""Every endpoint option's default, for the CLI's options."""
