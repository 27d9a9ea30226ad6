"""Any record, read by its kind: the kind it states (`kind`, from schema version 3 on), else the
kind its keys say (`shape.record_kind`), else a training row."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeAlias, get_args

from lemagen.errors import InputError
from lemagen.records.analysis import Analysis
from lemagen.records.art import AskerRecord, TrusterRecord
from lemagen.records.schema import Correction, Reject, RetryText, Sample
from lemagen.records.shape import kind_of_shape, record_kind
from lemagen.records.training import TRAINING_FIELDS, TrainingRow, read_training
from lemagen.terms import Kind

# The records that state their kind, and any record.
KindRecord: TypeAlias = (
    Sample | Correction | Analysis | AskerRecord | TrusterRecord | Reject | RetryText
)
AnyRecord: TypeAlias = KindRecord | TrainingRow
RECORDS: dict[Kind, type[KindRecord]] = {kind_of_shape(c): c for c in get_args(KindRecord)}


def kind_of(data: Mapping[str, Any]) -> Kind | Literal["training"] | None:
    """`sample`, `correction`, `analysis`, `asker`, `truster`, `reject`, `retry` (what a
    record states, or its keys say), `training` (a training row), or None."""
    kind = record_kind(data)
    if kind is not None:
        return kind
    if any(name in data for name in TRAINING_FIELDS):
        return "training"
    return None


def read_sample_or_correction(data: Mapping[str, Any], where: str) -> Sample | Correction:
    """A sample or a correction record (what filter and export read)."""
    kind = record_kind(data)
    if kind == "correction":
        return Correction.from_dict(data, where)
    if kind == "sample":
        return Sample.from_dict(data, where)
    raise InputError(
        f"{where}: not a sample or correction record (no 'sample_id')", reason="bad_record"
    )


def read_any(data: Mapping[str, Any], where: str) -> AnyRecord:
    """Any record lemagen writes."""
    kind = kind_of(data)
    if kind == "training":
        return read_training(data, where)
    if kind is None:
        raise InputError(
            f"{where}: not a lemagen record (sample, correction, reject or training row)",
            reason="bad_record",
        )
    return RECORDS[kind].from_dict(data, where)
