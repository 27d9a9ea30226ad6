"""The one module that talks to an OpenAI-compatible endpoint (the official `openai` client).

`LLMClient.generate` asks for `n` samples in one request, so the prompt is paid once, and asks
separately for whatever a server that ignores `n` did not return. Errors are sorted into two
kinds: `EndpointError` (the run cannot go on: endpoint unreachable, key rejected, model unknown)
and `RequestFailed` (this one request failed after retries; the row is set aside).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Literal

import openai

from lemagen.errors import EndpointError

Api = Literal["chat", "completion"]
DEFAULT_BASE_URL = "https://api.openai.com/v1"


@dataclass(frozen=True)
class Choice:
    text: str
    finish_reason: str | None


@dataclass
class Generation:
    choices: list[Choice] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=dict)
    requests: int = 0


@dataclass(frozen=True)
class Sampling:
    """Every sampling parameter that changes the answer."""

    temperature: float = 0.7
    top_p: float | None = None
    max_tokens: int | None = None
    seed: int | None = None

    def as_meta(self) -> dict[str, Any]:
        return {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
        }


class RequestFailed(Exception):
    """One request failed for good (after the client's retries); the run goes on."""


class LLMClient:
    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | None,
        api: Api = "chat",
        timeout: float = 120.0,
        max_retries: int = 5,
        api_key_env: str = "OPENAI_API_KEY",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api = api
        self.api_key_env = api_key_env
        # Local servers (vLLM, llama.cpp, Ollama) need no key; the SDK insists on one.
        self._client = openai.OpenAI(
            base_url=self.base_url,
            api_key=api_key or "EMPTY",
            timeout=timeout,
            max_retries=max_retries,
        )
        self._has_key = bool(api_key)
        self._succeeded = threading.Event()
        # Until one request has succeeded, requests go one at a time: a bad key or an unknown
        # model then costs one request, not one per worker.
        self._gate = threading.Lock()
        self._fatal: EndpointError | None = None

    def close(self) -> None:
        self._client.close()

    def generate(self, prompt: str, *, model: str, n: int, sampling: Sampling) -> Generation:
        """`n` choices for `prompt` (fewer only if the server keeps returning none)."""
        out = Generation()
        rounds = 0
        while len(out.choices) < n:
            want = n - len(out.choices)
            seed = None if sampling.seed is None else sampling.seed + rounds
            got = self._request(prompt, model=model, n=want, sampling=sampling, seed=seed)
            out.requests += 1
            rounds += 1
            for key, value in got.usage.items():
                out.usage[key] = out.usage.get(key, 0) + value
            if not got.choices:
                break
            out.choices.extend(got.choices[:want])
        return out

    def _request(
        self, prompt: str, *, model: str, n: int, sampling: Sampling, seed: int | None
    ) -> Generation:
        if self._succeeded.is_set() and self._fatal is None:
            return self._send(prompt, model=model, n=n, sampling=sampling, seed=seed)
        with self._gate:
            if self._fatal is not None:
                raise self._fatal
            try:
                return self._send(prompt, model=model, n=n, sampling=sampling, seed=seed)
            except EndpointError as exc:
                self._fatal = exc
                raise

    def _send(
        self, prompt: str, *, model: str, n: int, sampling: Sampling, seed: int | None
    ) -> Generation:
        params: dict[str, Any] = {"model": model, "n": n, "temperature": sampling.temperature}
        if sampling.top_p is not None:
            params["top_p"] = sampling.top_p
        if sampling.max_tokens is not None:
            params["max_tokens"] = sampling.max_tokens
        if seed is not None:
            params["seed"] = seed
        try:
            if self.api == "chat":
                chat = self._client.chat.completions.create(
                    messages=[{"role": "user", "content": prompt}], **params
                )
                choices = [
                    Choice(c.message.content or "", c.finish_reason)
                    for c in sorted(chat.choices, key=lambda c: c.index)
                ]
                usage = chat.usage
            else:
                comp = self._client.completions.create(prompt=prompt, **params)
                choices = [
                    Choice(c.text or "", c.finish_reason)
                    for c in sorted(comp.choices, key=lambda c: c.index)
                ]
                usage = comp.usage
        except openai.APIStatusError as exc:
            raise self._status_error(exc, model) from None
        except openai.APITimeoutError:
            raise RequestFailed(f"timed out (model {model!r} at {self.base_url})") from None
        except openai.APIConnectionError as exc:
            if not self._succeeded.is_set():
                raise EndpointError(
                    f"cannot reach endpoint {self.base_url} (model {model!r}): {_cause(exc)}"
                ) from None
            raise RequestFailed(f"connection failed: {_cause(exc)}") from None
        self._succeeded.set()
        counts: dict[str, int] = {}
        if usage is not None:
            counts = {
                "prompt_tokens": usage.prompt_tokens or 0,
                "completion_tokens": usage.completion_tokens or 0,
            }
        return Generation(choices=choices, usage=counts, requests=1)

    def _status_error(self, exc: openai.APIStatusError, model: str) -> Exception:
        status = exc.status_code
        detail = _message(exc)
        where = f"endpoint {self.base_url}, model {model!r}"
        if status == 401:
            hint = "" if self._has_key else f"; set {self.api_key_env}"
            return EndpointError(f"{where}: API key rejected (HTTP 401: {detail}){hint}")
        if status == 403:
            return EndpointError(f"{where}: access denied (HTTP 403: {detail})")
        if status == 404:
            return EndpointError(f"{where}: model or route not found (HTTP 404: {detail})")
        return RequestFailed(f"HTTP {status}: {detail}")


def _message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    return exc.message


def _cause(exc: BaseException) -> str:
    while exc.__cause__ is not None:
        exc = exc.__cause__
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0]
