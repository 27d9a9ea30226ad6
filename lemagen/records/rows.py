"""Reading input rows into typed records, and setting rows aside."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol, TypeVar

import msgspec

from lemagen.errors import InputError
from lemagen.records import JSON, Reject
from lemagen.records.fast import FALLBACK
from lemagen.records.jsonl import RecordWriter, read_lines, record_of

T = TypeVar("T")


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
        if self.writer is not None:
            reject = item.reject() if isinstance(item, SetAside) else item
            self.writer.write(reject.to_dict())  # redacted by the writer


def source_name(path: str) -> str:
    """How messages name an input: the path, or `<stdin>` for `-`."""
    return "<stdin>" if path == "-" else path


def iter_rows(
    path: str,
    parse: Callable[[dict[str, Any], str], T],
    *,
    skip_bad_rows: bool,
    rejects: Rejects,
    fast: Callable[[bytes], T | None] | None = None,
) -> Iterator[T]:
    """Rows of `path` read by `parse(data, "file:line")`. A bad row stops the run with its
    `file:line` error, or with `skip_bad_rows` is set aside (reason and message) and reading
    goes on. `fast(raw line)` reads a line in one pass where it can (`records.fast`): when it
    returns None or raises one of `fast.FALLBACK`, the line is read by `parse`."""
    name = source_name(path)
    for lineno, raw in read_lines(path):
        if fast is not None:
            try:
                row = fast(raw)
            except FALLBACK:
                row = None
            if row is not None:
                yield row
                continue
        record = record_of(raw, name, lineno)
        try:
            if isinstance(record, InputError):
                raise record
            row = parse(record, f"{name}:{lineno}")
        except InputError as err:
            if not skip_bad_rows:
                raise
            raw_record = None if isinstance(record, InputError) else record
            rejects.bad_rows += 1
            rejects.add(Reject(err.reason, raw_record, detail=err.format_message()))
            continue
        yield row
