"""`meta`: what produced a record, to reproduce and audit it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias

import msgspec

from lemagen.records.common import JSON, Count, Number
from lemagen.records.shape import Shape, WhenSet
from lemagen.terms import StageName


class Provenance(Shape, frozen=True, kw_only=True):
    """`meta` of a sample, a correction, an analysis or an ART record: what produced it.

    A model's record: the call's model, parameters and prompt, and `usage`, that of the
    request(s) that produced all `choices_in_usage` choices together (`cached_tokens` and
    `reasoning_tokens`, when the server reported them, are parts of `prompt_tokens` and
    `completion_tokens`). A mistake `lemagen inject` made (`error_type` set) had no call: its
    meta is `stage`, `error_type`, `seed` (inject's) and `checker` only."""

    stage: StageName | None = None
    error_type: WhenSet[str | None] = None  # `inject`: the type of the mistake it made
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
    # What the request carried beside the prompt.
    system_sha256: WhenSet[str | None] = None
    stop: WhenSet[list[str] | None] = None
    extra_body: WhenSet[dict[str, Any] | None] = None
    # `sample`: how many more samples of this model for this problem took the same wrong
    # path and were dropped as duplicates of this one (written only when some were), so
    # `stats` counts every sample drawn. Records written before it existed count 0.
    duplicates: WhenSet[Count | None] = None

    @classmethod
    def read(cls, data: Mapping[str, Any], where: str, prefix: str) -> Provenance:
        return cls.from_dict(data, where, prefix=prefix)

    def special(self) -> JSON | None:
        if self.stage != "inject" or self.error_type is None:
            return None
        # a made mistake: no call to describe
        return {
            "stage": self.stage,
            "error_type": self.error_type,
            "seed": self.seed,
            "checker": self.checker,
        }


Meta: TypeAlias = Provenance


def made_mistake(error_type: str, seed: int, checker: dict[str, str]) -> Provenance:
    """The meta of a mistake `lemagen inject` made (offline, without a model)."""
    return Provenance(stage="inject", error_type=error_type, seed=seed, checker=checker)


class RetryMeta(Shape, frozen=True, kw_only=True):
    """`meta` of a retry text."""

    stage: StageName = "inject"
    format: str = "retry"
    retry_rate: Number
    fake: bool = False
    marker: str
    seed: int = 0
