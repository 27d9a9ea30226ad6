"""Samples and corrections read in one pass: the JSON line decoded straight into typed shapes by
msgspec (in C), instead of into a dict that is then checked field by field. It takes only what
lemagen writes itself (no unknown key anywhere, every field well formed); for any other line it
raises a msgspec error (`FALLBACK`) and the caller reads the line the general way
(`schema.read_sample_or_correction`), which gives the same record, or the `file:line` error.

About twice as fast per record as decoding to a dict and checking it, which is what kept
`filter`, `export` and `stats` within a few percent of the untyped version
(benchmarks/bench_stages.py). tests/test_records.py checks that both ways give equal records.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from lemagen.records.meta import InjectMeta, Meta, Provenance
from lemagen.records.schema import Correction, Sample
from lemagen.records.shapes import CorrectionShape, OriginalShape, SampleShape


class _InjectMeta(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # `stage` required and "inject": what `read_meta` reads as an `InjectMeta`.
    stage: Literal["inject"]
    error_type: str
    seed: int = 0
    checker: dict[str, str] = {}


class _Original(OriginalShape, forbid_unknown_fields=True, kw_only=True):
    meta: Provenance | None = None  # type: ignore[assignment]


class _InjectOriginal(OriginalShape, forbid_unknown_fields=True, kw_only=True):
    meta: _InjectMeta | None = None  # type: ignore[assignment]


class _Sample(SampleShape, forbid_unknown_fields=True, kw_only=True):
    meta: Provenance | None = None  # type: ignore[assignment]
    schema_version: Any = None


class _Correction(CorrectionShape, forbid_unknown_fields=True, kw_only=True):
    original: _Original  # type: ignore[assignment]
    meta: Provenance | None = None  # type: ignore[assignment]
    schema_version: Any = None


class _InjectCorrection(CorrectionShape, forbid_unknown_fields=True, kw_only=True):
    original: _InjectOriginal  # type: ignore[assignment]
    meta: _InjectMeta | None = None  # type: ignore[assignment]
    schema_version: Any = None


_sample = msgspec.json.Decoder(_Sample).decode
_correction = msgspec.json.Decoder(_Correction).decode
_inject_correction = msgspec.json.Decoder(_InjectCorrection).decode


def _meta(meta: Provenance | _InjectMeta | None) -> Meta:
    if meta is None:
        return Provenance()
    if isinstance(meta, _InjectMeta):
        return InjectMeta(meta.error_type, meta.seed, meta.checker, meta.stage)
    return meta


def sample(raw: bytes) -> Sample:
    """A sample line (`Sample.from_dict`)."""
    s = _sample(raw)
    return Sample.of(s, _meta(s.meta), {})


def correction(raw: bytes) -> Correction:
    """A correction line (`Correction.from_dict`)."""
    # A made mistake's metas are `InjectMeta`s, a model's `Provenance`s: one decoder each.
    c = _inject_correction(raw) if b'"stage":"inject"' in raw else _correction(raw)
    original = Sample.original_of(c.original, _meta(c.original.meta), {})
    return Correction.of(c, original, _meta(c.meta), {})


def sample_or_correction(raw: bytes) -> Sample | Correction:
    """`schema.read_sample_or_correction` of a line lemagen wrote."""
    # A key `correction_id` makes a correction; the same bytes anywhere else (a nested key)
    # only cost a failed decode and the general reading.
    return correction(raw) if b'"correction_id"' in raw else sample(raw)


FALLBACK = msgspec.MsgspecError  # what sends a line to the general reading
