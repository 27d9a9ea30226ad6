"""`meta`: what produced a record, to reproduce and audit it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeAlias

from lemagen.records.fields import JSON, Fields, with_extra


@dataclass(frozen=True, slots=True)
class Provenance:
    """`meta` of a sample or a correction: what produced it, to reproduce and audit it.
    `usage` is that of the request(s) that produced all `choices_in_usage` choices together."""

    stage: str | None = None
    model: str | None = None
    api: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    n: int | None = None
    sample_index: int | None = None
    prompt: str | None = None
    prompt_sha256: str | None = None
    finish_reason: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    requests: int | None = None
    choices_in_usage: int | None = None
    checker: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    _KEYS: ClassVar[frozenset[str]] = frozenset(
        [
            "stage",
            "model",
            "api",
            "temperature",
            "top_p",
            "max_tokens",
            "seed",
            "n",
            "sample_index",
            "prompt",
            "prompt_sha256",
            "finish_reason",
            "usage",
            "requests",
            "choices_in_usage",
            "checker",
        ]
    )

    @classmethod
    def read(cls, f: Fields) -> Provenance:
        return cls(
            stage=f.opt_text("stage"),
            model=f.opt_text("model"),
            api=f.opt_text("api"),
            temperature=f.opt_number("temperature"),
            top_p=f.opt_number("top_p"),
            max_tokens=f.opt_int("max_tokens"),
            seed=f.opt_int("seed"),
            n=f.opt_int("n"),
            sample_index=f.opt_int("sample_index"),
            prompt=f.opt_text("prompt"),
            prompt_sha256=f.opt_text("prompt_sha256"),
            finish_reason=f.opt_text("finish_reason"),
            usage=f.counts("usage"),
            requests=f.opt_int("requests"),
            choices_in_usage=f.opt_int("choices_in_usage"),
            checker=f.texts("checker"),
            extra=f.extra(cls._KEYS),
        )

    def to_dict(self) -> JSON:
        out: JSON = {
            "stage": self.stage,
            "model": self.model,
            "api": self.api,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
            "n": self.n,
            "sample_index": self.sample_index,
            "prompt": self.prompt,
            "prompt_sha256": self.prompt_sha256,
            "finish_reason": self.finish_reason,
            "usage": dict(self.usage),
            "requests": self.requests,
            "choices_in_usage": self.choices_in_usage,
            "checker": dict(self.checker),
        }
        return with_extra(out, self.extra)


@dataclass(frozen=True, slots=True)
class InjectMeta:
    """`meta` of a mistake made by `lemagen inject` (no model, so no usage)."""

    error_type: str
    seed: int
    checker: dict[str, str]
    stage: str = "inject"
    extra: dict[str, Any] = field(default_factory=dict)

    # What a model's provenance has and a made mistake has not.
    finish_reason: ClassVar[None] = None
    model: ClassVar[None] = None
    usage: ClassVar[Mapping[str, int]] = {}
    choices_in_usage: ClassVar[None] = None

    _KEYS: ClassVar[frozenset[str]] = frozenset({"stage", "error_type", "seed", "checker"})

    @classmethod
    def read(cls, f: Fields) -> InjectMeta:
        seed = f.opt_int("seed")
        return cls(
            error_type=f.text("error_type"),
            seed=0 if seed is None else seed,
            checker=f.texts("checker"),
            extra=f.extra(cls._KEYS),
        )

    def to_dict(self) -> JSON:
        out: JSON = {
            "stage": self.stage,
            "error_type": self.error_type,
            "seed": self.seed,
            "checker": dict(self.checker),
        }
        return with_extra(out, self.extra)


Meta: TypeAlias = Provenance | InjectMeta


def read_meta(f: Fields | None) -> Meta:
    if f is None:
        return Provenance()
    if f.data.get("stage") == "inject" and "error_type" in f.data:
        return InjectMeta.read(f)
    return Provenance.read(f)


@dataclass(frozen=True, slots=True)
class RetryMeta:
    retry_rate: float
    fake: bool
    marker: str
    seed: int

    def to_dict(self) -> JSON:
        return {
            "stage": "inject",
            "format": "retry",
            "retry_rate": self.retry_rate,
            "fake": self.fake,
            "marker": self.marker,
            "seed": self.seed,
        }
