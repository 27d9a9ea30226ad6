"""What a model call is: the request, its identity in the request store, and its result.

The engine (`lemagen.engine.engine`) sends calls; stages only build `Call`s and read `Generation`s.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec

from lemagen.terms import Reason

Api = Literal["chat", "completion"]
DEFAULT_BASE_URL = "https://api.openai.com/v1"
PATHS: dict[str, str] = {"chat": "/chat/completions", "completion": "/completions"}
KEY_VERSION = 1
DEFAULT_MAX_TOKENS_ESTIMATE = 1024  # completion tokens assumed per sample without --max-tokens


class Choice(msgspec.Struct, frozen=True):  # a Struct: cheap to build, one per sample
    text: str
    finish_reason: str | None


@dataclass
class Generation:
    choices: list[Choice] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=dict)
    requests: int = 0  # HTTP requests that produced these choices (in this or an earlier run)
    cached: int = 0  # choices read from the request store instead of being sent for
    sources: list[str] = field(default_factory=list)  # the request id of each choice


@dataclass(frozen=True)
class Sampling:
    """Every sampling parameter that changes the answer."""

    temperature: float = 0.7
    top_p: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()  # --stop; in the identity only when set

    def as_meta(self) -> dict[str, Any]:
        return {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
        }


# Models that refuse `max_tokens` and take `max_completion_tokens` (OpenAI's reasoning models).
_COMPLETION_TOKENS_MODELS = ("o1", "o3", "o4", "gpt-5")


def max_tokens_param(model: str, given: str) -> str:
    """The body field that carries --max-tokens: `given`, or with `auto` what the model takes."""
    if given != "auto":
        return given
    base = model.rsplit("/", 1)[-1].lower()
    if base.startswith(_COMPLETION_TOKENS_MODELS):
        return "max_completion_tokens"
    return "max_tokens"


class RequestFailed(Exception):
    """One call failed for good (after retries, or an error retrying cannot fix); the row is
    set aside and the run goes on."""

    def __init__(self, message: str, reason: Reason = "request_failed") -> None:
        super().__init__(message)
        self.reason: Reason = reason


# What the identity JSON holds before and after the prompt, by (api, model, sampling, system);
# the prompt's own JSON goes between (the same text json.dumps writes for the whole, measured
# ~5x cheaper). Found by writing the identity with a placeholder prompt once.
_AROUND_PROMPT: dict[tuple[Any, ...], tuple[str, str]] = {}
_PLACEHOLDER = "\x00prompt\x00"
_PLACEHOLDER_JSON = '"input": ' + json.dumps(_PLACEHOLDER)


class Call(msgspec.Struct, frozen=True):
    """`n` samples of `prompt` from `model`. (A Struct: one is built per row and model, and a
    frozen dataclass of seven fields costs several times more to build.)"""

    model: str
    prompt: str
    n: int
    sampling: Sampling
    extra: dict[str, Any] | None = None  # more body parameters (response_format); in identity
    system: str | None = None  # a system message (chat) before the prompt; in identity
    max_tokens_param: str = "max_tokens"  # or max_completion_tokens; not in identity

    def identity(self, api: str) -> bytes:
        """Hash of everything that changes the answer; never the key or the endpoint."""
        if self.extra is None:  # the JSON around the prompt is the same for every call alike
            shape = (api, self.model, self.sampling, self.system)
            around = _AROUND_PROMPT.get(shape)
            if around is None:
                if len(_AROUND_PROMPT) >= 64:
                    _AROUND_PROMPT.clear()
                text = self._identity_json(api, _PLACEHOLDER)
                before, _, after = text.partition(_PLACEHOLDER_JSON)
                around = _AROUND_PROMPT[shape] = (before + '"input": ', after)
            text = around[0] + json.dumps(self.prompt) + around[1]
        else:
            text = self._identity_json(api, self.prompt)
        return hashlib.sha256(text.encode()).digest()

    def _identity_json(self, api: str, prompt: str) -> str:
        ident = {
            "v": KEY_VERSION,
            "api": api,
            "model": self.model,
            "input": prompt,
            **self.sampling.as_meta(),
        }
        # Each is absent when unset, so keys stored before these fields existed still match.
        if self.extra:
            ident["extra"] = self.extra
        if self.system is not None:
            ident["system"] = self.system
        if self.sampling.stop:
            ident["stop"] = list(self.sampling.stop)
        return json.dumps(ident, sort_keys=True)

    def keys(self, api: str, identity: bytes | None = None) -> list[bytes]:
        """One store key per sample index (`identity`: the call's, when already known)."""
        base = self.identity(api) if identity is None else identity
        return [hashlib.sha256(base + i.to_bytes(4, "big")).digest() for i in range(self.n)]

    def body(self, api: str, n: int, first_index: int) -> dict[str, Any]:
        """The JSON body asking for samples `first_index .. first_index + n - 1`. With a seed,
        sample i of a prompt is asked for under seed + i's block, so asking again for the same
        samples is deterministic on servers that honour seeds."""
        params: dict[str, Any] = {"model": self.model, "n": n}
        if api == "chat":
            system = [] if self.system is None else [{"role": "system", "content": self.system}]
            params["messages"] = [*system, {"role": "user", "content": self.prompt}]
        else:
            before = "" if self.system is None else self.system.rstrip() + "\n\n"
            params["prompt"] = before + self.prompt
        params["temperature"] = self.sampling.temperature
        if self.sampling.top_p is not None:
            params["top_p"] = self.sampling.top_p
        if self.sampling.max_tokens is not None:
            params[self.max_tokens_param] = self.sampling.max_tokens
        if self.sampling.seed is not None:
            params["seed"] = self.sampling.seed + first_index
        if self.sampling.stop:
            params["stop"] = list(self.sampling.stop)
        if self.extra:
            params.update(self.extra)
        return params

    def estimated_tokens(self, samples: int) -> tuple[int, int]:
        """What asking for `samples` samples may cost, before it is sent: the prompt at about
        four characters a token (plus the chat template's few), and --max-tokens per sample
        (1024 when unset)."""
        prompt = len(self.prompt) // 4 + 8
        return prompt, (self.sampling.max_tokens or DEFAULT_MAX_TOKENS_ESTIMATE) * samples


@dataclass(frozen=True)
class RequestShape:
    """What every call of a stage sends beside its prompt (--system, --extra-body,
    --max-tokens-param), and how that is recorded in the records' `meta`."""

    system: str | None = None
    extra: dict[str, Any] | None = None
    max_tokens_param: str = "auto"
    stop: tuple[str, ...] = ()

    def call(
        self,
        model: str,
        prompt: str,
        n: int,
        sampling: Sampling,
        extra: dict[str, Any] | None = None,
    ) -> Call:
        body = {**(self.extra or {}), **(extra or {})} or None
        return Call(
            model,
            prompt,
            n,
            sampling,
            extra=body,
            system=self.system,
            max_tokens_param=max_tokens_param(model, self.max_tokens_param),
        )

    def meta(self) -> dict[str, Any]:
        """The `meta` fields of a record made by these calls: only those that are set."""
        out: dict[str, Any] = {}
        if self.system is not None:
            out["system_sha256"] = hashlib.sha256(self.system.encode()).hexdigest()
        if self.stop:
            out["stop"] = list(self.stop)
        if self.extra:
            out["extra_body"] = self.extra
        return out
