"""`meta`: what produced a record, to reproduce and audit it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, TypeAlias, TypeVar

import msgspec

from lemagen.records.common import JSON, Count, Number, check, unknown_keys, with_extra

EXTRA = "(extra)"  # read from no JSON key: `extra` holds the keys lemagen does not know
M = TypeVar("M", "Provenance", "InjectMeta")


def _read(cls: type[M], data: Mapping[str, Any], where: str, prefix: str) -> M:
    """`data` as `cls`, its keys lemagen does not know kept in `extra`. The meta types forbid
    unknown keys, so that the one-pass reader (`records.fast`) cannot drop one: they are
    taken out here before checking."""
    known: frozenset[str] = cls.KNOWN
    if data.keys() <= known:
        return check(data, cls, where, prefix)
    meta = check({k: v for k, v in data.items() if k in known}, cls, where, prefix)
    return msgspec.structs.replace(meta, extra=unknown_keys(data, known))


class Provenance(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`meta` of a sample or a correction: what produced it, to reproduce and audit it.
    `usage` is that of the request(s) that produced all `choices_in_usage` choices together
    (`cached_tokens` and `reasoning_tokens`, when the server reported them, are parts of
    `prompt_tokens` and `completion_tokens`)."""

    stage: str | None = None
    model: str | None = None
    api: str | None = None
    temperature: Number | None = None
    top_p: Number | None = None
    max_tokens: int | None = None
    seed: int | None = None
    n: int | None = None
    sample_index: int | None = None
    prompt: str | None = None
    prompt_sha256: str | None = None
    finish_reason: str | None = None
    usage: dict[str, Count] = msgspec.field(default_factory=dict)
    requests: int | None = None
    choices_in_usage: int | None = None
    checker: dict[str, str] = msgspec.field(default_factory=dict)
    # Written only when set: what the request carried beside the prompt.
    system_sha256: str | None = None
    stop: list[str] | None = None
    extra_body: dict[str, Any] | None = None
    # `sample`: how many more samples of this model for this problem took the same wrong
    # path and were dropped as duplicates of this one (written only when some were), so
    # `stats` counts every sample drawn. Records written before it existed count 0.
    duplicates: Count | None = None
    extra: dict[str, Any] = msgspec.field(default_factory=dict, name=EXTRA)

    KNOWN: ClassVar[frozenset[str]]

    @classmethod
    def read(cls, data: dict[str, Any], where: str, prefix: str) -> Provenance:
        return _read(cls, data, where, prefix)

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
        for name in ("system_sha256", "stop", "extra_body", "duplicates"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return with_extra(out, self.extra)


class InjectMeta(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`meta` of a mistake made by `lemagen inject` (no model, so no usage)."""

    error_type: str
    seed: int = 0
    checker: dict[str, str] = msgspec.field(default_factory=dict)
    stage: str = "inject"
    extra: dict[str, Any] = msgspec.field(default_factory=dict, name=EXTRA)

    # What a model's provenance has and a made mistake has not.
    finish_reason: ClassVar[None] = None
    model: ClassVar[None] = None
    usage: ClassVar[Mapping[str, int]] = {}
    choices_in_usage: ClassVar[None] = None

    KNOWN: ClassVar[frozenset[str]]

    @classmethod
    def read(cls, data: dict[str, Any], where: str, prefix: str) -> InjectMeta:
        return _read(cls, data, where, prefix)

    def to_dict(self) -> JSON:
        out: JSON = {
            "stage": self.stage,
            "error_type": self.error_type,
            "seed": self.seed,
            "checker": dict(self.checker),
        }
        return with_extra(out, self.extra)


Meta: TypeAlias = Provenance | InjectMeta
# The JSON keys each meta type reads (`extra` is read from no key lemagen writes).
Provenance.KNOWN = frozenset(Provenance.__struct_encode_fields__)
InjectMeta.KNOWN = frozenset(InjectMeta.__struct_encode_fields__)


def read_meta(data: dict[str, Any] | None, where: str, prefix: str = "meta.") -> Meta:
    """The `meta` of a sample or correction: a model's provenance, or an injected mistake's."""
    if data is None:
        return Provenance()
    if data.get("stage") == "inject" and "error_type" in data:
        return InjectMeta.read(data, where, prefix)
    return Provenance.read(data, where, prefix)


class RetryMeta(msgspec.Struct, frozen=True, kw_only=True):
    """`meta` of a retry text."""

    retry_rate: Number
    fake: bool = False
    marker: str
    seed: int = 0

    def to_dict(self) -> JSON:
        return {
            "stage": "inject",
            "format": "retry",
            "retry_rate": self.retry_rate,
            "fake": self.fake,
            "marker": self.marker,
            "seed": self.seed,
        }
