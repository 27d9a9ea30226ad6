"""Reading input rows into typed records, and setting rows aside."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol, TypeVar

import msgspec

from lemagen.errors import InputError
from lemagen.records import JSON, Reject
from lemagen.records.fast import FALLBACK
from lemagen.records.inputs import input_format, open_bytes, read_input, source_name
from lemagen.records.jsonl import RecordWriter, raw_lines, record_of
from lemagen.redact import redact
from lemagen.terms import Reason

T = TypeVar("T")
log = logging.getLogger(__name__)


class ToDict(Protocol):
    def to_dict(self) -> JSON: ...


class SetAside(msgspec.Struct, frozen=True):
    """A row a stage sets aside: why (a machine-readable reason), the record, and a message."""

    reason: Reason
    record: ToDict | Mapping[str, Any] | None
    detail: str | None = None

    def reject(self) -> Reject:
        record = self.record
        if record is not None and not isinstance(record, Mapping):
            record = record.to_dict()
        data = None if record is None else dict(record)
        return Reject(reason=self.reason, record=data, detail=self.detail)


class Encoded(msgspec.Struct, array_like=True, frozen=True):
    """A line already encoded (and redacted) as the writer writes it: a record (`reason`
    None) or a set-aside row (its `Reject` line), with the words that name it in the -v log.
    What a stage kept from an earlier run (`stage.rowbook`) comes back as these."""

    text: str
    reason: str | None = None
    about: str = ""

    @classmethod
    def of(cls, item: ToDict | SetAside) -> Encoded:
        if isinstance(item, SetAside):
            line = redact(RecordWriter.encode(item.reject().to_dict()))
            return cls(line, item.reason, _about(item))
        return cls(redact(RecordWriter.encode(item.to_dict())))


class Rejects:
    """Rows set aside, each written to `--rejects` (when given) as a `Reject` record and
    counted by reason."""

    def __init__(self, writer: RecordWriter | None) -> None:
        self.writer = writer
        self.counts: Counter[str] = Counter()
        self.bad_rows = 0  # input rows that could not be read (a subset of the counts)

    def add(self, item: SetAside | Reject) -> None:
        self._count(item.reason, item)
        if self.writer is not None:
            reject = item.reject() if isinstance(item, SetAside) else item
            self.writer.write(reject.to_dict())  # redacted by the writer

    def add_line(self, item: Encoded) -> None:
        """A set-aside row already encoded (`Encoded` with a reason)."""
        assert item.reason is not None
        self._count(item.reason, item)
        if self.writer is not None:
            self.writer.write_line(item.text)

    def _count(self, reason: str, item: SetAside | Reject | Encoded) -> None:
        self.counts[reason] += 1
        if log.isEnabledFor(logging.INFO):  # -v: why each row was set aside
            about = item.about if isinstance(item, Encoded) else _about(item)
            log.info("set aside (%s): %s", reason, about)


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
    fast: Callable[[bytes], T | None] | None = None,
) -> Iterator[T]:
    """Rows of `path` (in format `fmt`, None: by its name, `lemagen.records.inputs`) read by
    `parse(data, "file:line")` (`file:row N` for Parquet and datasets). A bad row stops the
    run with its one-line error, or with `skip_bad_rows` is set aside (reason and message) and
    reading goes on. For JSONL, `fast(raw line)` reads a line in one pass where it can
    (`records.fast`): when it returns None or raises `fast.FALLBACK`, `parse` reads it."""
    for where, record, row in _rows(path, fmt, fast):
        if row is not None:
            yield row
            continue
        try:
            if isinstance(record, InputError):
                raise record
            assert record is not None
            parsed = parse(record, where)
        except InputError as err:
            if not skip_bad_rows:
                raise
            raw_record = None if isinstance(record, InputError) else record
            rejects.bad_rows += 1
            rejects.add(Reject(reason=err.reason, record=raw_record, detail=err.format_message()))
            continue
        yield parsed


def _rows(
    path: str, fmt: str | None, fast: Callable[[bytes], T | None] | None
) -> Iterator[tuple[str, dict[str, Any] | InputError | None, T | None]]:
    """(where, record, None) for each row, or ("", None, row) for a line `fast` read."""
    if fast is None or input_format(path, fmt) != "jsonl":
        for where, record in read_input(path, fmt):
            yield where, record, None
        return
    name = source_name(path)
    with open_bytes(path) as stream:
        for lineno, raw in raw_lines(stream):
            try:
                row = fast(raw)
            except FALLBACK:
                row = None
            if row is not None:
                yield "", None, row
            else:
                yield f"{name}:{lineno}", record_of(raw, name, lineno), None
