"""Samples and corrections read in one pass: a JSON line decoded by msgspec straight into its
record type (in C), instead of into a dict that is then checked. The record types forbid keys
they do not know, so a line with an unknown key anywhere, or with anything else the general
reading reads differently (a null that stands for a default), raises a msgspec error here
(`FALLBACK`), and the caller reads it the general way (`kinds.read_sample_or_correction`),
which gives the same record, or the `file:line` error.

A line that states its kind is decoded as that kind (msgspec's tagged union); a line written
before kinds existed (schema version 2) as a correction when it has a key `correction_id`,
else as a sample: its kind inferred as `shape.record_kind` infers it.

About twice as fast per record as decoding to a dict and checking it, which is what kept
`filter`, `export` and `stats` within a few percent of the untyped version
(benchmarks/bench_stages.py). tests/test_records.py checks that both ways give equal records.
"""

from __future__ import annotations

import msgspec

from lemagen.records.schema import Correction, Sample

_by_kind = msgspec.json.Decoder(Sample | Correction).decode
_sample = msgspec.json.Decoder(Sample).decode
_correction = msgspec.json.Decoder(Correction).decode


def sample_or_correction(raw: bytes) -> Sample | Correction:
    """`kinds.read_sample_or_correction` of a line lemagen wrote."""
    try:
        return _by_kind(raw)
    except msgspec.ValidationError:
        pass
    # A line of schema version 2, with no kind: a key `correction_id` makes it a correction;
    # the same bytes anywhere else (a nested key) only cost a failed decode.
    return _correction(raw) if b'"correction_id"' in raw else _sample(raw)


FALLBACK = msgspec.MsgspecError  # what sends a line to the general reading
