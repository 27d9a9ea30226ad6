"""Reading input rows into typed records, and setting rows aside."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol, TypeVar

import msgspec

from lemagen.errors import InputError
from lemagen.records import JSON, Reject
from lemagen.records.inputs import read_input
from lemagen.records.jsonl import RecordWriter

T = TypeVar("T")
log = logging.getLogger(__name__)


class ToDict(Protocol):
    def to_dict(self) -> JSON: ...


class SetAside(msgspec.Struct, frozen=True):
    """A row a stage sets aside: why (a machine-readable reason), the record, and a message."""

    reason: str
    record: ToDict | Mapping[str, Any] | None
    detail: str | None = None

    def reject(self) -> Reject:
        record = self.record
        if record is not None and not isinstance(record, Mapping):
            record = record.to_dict()
        return Reject(self.reason, None if record is None else dict(record), self.detail)


class Rejects:
    """Rows set aside, each written to `--rejects` (when given) as a `Reject` record and
    counted by reason."""

    def __init__(self, writer: RecordWriter | None) -> None:
        self.writer = writer
        self.counts: Counter[str] = Counter()
        self.bad_rows = 0  # input rows that could not be read (a subset of the counts)

    def add(self, item: SetAside | Reject) -> None:
        self.counts[item.reason] += 1
        if log.isEnabledFor(logging.INFO):  # -v: why each row was set aside
            log.info("set aside (%s): %s", item.reason, _about(item))
        if self.writer is not None:
            reject = item.reject() if isinstance(item, SetAside) else item
            self.writer.write(reject.to_dict())  # redacted by the writer


def _about(item: SetAside | Reject) -> str:
    """A set-aside row's message, else which record it is."""
    if item.detail:
        return item.detail
    record = item.record
    for name in ("correction_id", "sample_id", "id"):
        value = record.get(name) if isinstance(record, Mapping) else getattr(record, name, None)
        if isinstance(value, str):
            return f"{name} {value}"
    return "a row without an id"


def iter_rows(
    path: str,
    parse: Callable[[dict[str, Any], str], T],
    *,
    skip_bad_rows: bool,
    rejects: Rejects,
    fmt: str | None = None,
) -> Iterator[T]:
    """Rows of `path` (in format `fmt`, None: by its name, `lemagen.records.inputs`) read by
    `parse(data, "file:line")` (`file:row N` for Parquet and datasets). A bad row stops the
    run with its one-line error, or with `skip_bad_rows` is set aside (reason and message) and
    reading goes on."""
    for where, record in read_input(path, fmt):
        try:
            if isinstance(record, InputError):
                raise record
            yield parse(record, where)
        except InputError as err:
            if not skip_bad_rows:
                raise
            raw = None if isinstance(record, InputError) else record
            rejects.bad_rows += 1
            rejects.add(Reject(err.reason, raw, detail=err.format_message()))
