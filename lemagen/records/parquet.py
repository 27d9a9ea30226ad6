"""Parquet output (`-o out.parquet`): records written a row group at a time, in a schema that
`datasets` loads unchanged (objects as structs, lists as lists, text, numbers, booleans).

The schema is inferred from the records: from the first row group, and widened when a later
one brings a new field, a field of an object, or a number where there were only whole numbers
(each widening starts a new part; the parts are joined under the final schema when the file is
closed). A field whose values are text in some rows and numbers in others cannot be one Parquet
column: that is a one-line error naming the field. The file appears under its name only once
it is complete (a Parquet file is unreadable without its footer): until then it is `PATH.partN`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import suppress
from typing import Any, Protocol

from lemagen.errors import LemagenError, OutputFailed
from lemagen.records.inputs import need
from lemagen.records.jsonl import RecordWriter
from lemagen.redact import redact

ROW_GROUP = 2000  # rows per row group: a few MB of typical records


class Writer(Protocol):
    """What a command writes its records through (JSONL or Parquet)."""

    name: str
    count: int

    def write(self, record: dict[str, Any]) -> None: ...
    def write_line(self, line: str) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


def is_parquet(path: str | None) -> bool:
    return path is not None and path.lower().endswith((".parquet", ".pq"))


def open_output(path: str | None, *, flush_each: bool = True) -> Writer:
    """A writer for `-o PATH`: Parquet for a `.parquet` or `.pq` name, else JSONL."""
    if is_parquet(path):
        assert path is not None
        return ParquetRecordWriter(path)
    return RecordWriter(path, flush_each=flush_each)


class ParquetRecordWriter:
    """Records to a Parquet file, a row group at a time; every record goes through `redact`,
    as every JSONL line does."""

    def __init__(self, path: str, *, row_group: int = ROW_GROUP) -> None:
        self.pa = need("pyarrow", "parquet", f"{path} is Parquet")
        self.pq = need("pyarrow.parquet", "parquet", f"{path} is Parquet")
        self.path = path
        self.name = path
        self.count = 0
        self._row_group = row_group
        self._rows: list[dict[str, Any]] = []
        self._parts: list[str] = []
        self._schema: Any = None
        self._writer: Any = None
        self._closed = False
        try:  # fail now, not after the first row group, on a path that cannot be written
            with open(self._part(0), "wb"):
                pass
        except OSError as exc:
            raise LemagenError(f"{path}: cannot write: {exc.strerror}") from None
        os.remove(self._part(0))

    def write_line(self, line: str) -> None:
        """A record already encoded as a JSONL line."""
        self.write(json.loads(line))

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False)
        clean = redact(line)
        if clean != line:
            record = json.loads(clean)
        self._rows.append({k: _no_empty_objects(v) for k, v in record.items()})
        self.count += 1
        if len(self._rows) >= self._row_group:
            try:
                self._write_rows()
            except OSError as exc:  # a full disk: closing writes nothing more
                self._closed = True
                raise OutputFailed(f"{self.path}: cannot write: {exc.strerror or exc}") from None

    def flush(self) -> None:
        """Nothing: row groups are written as they fill, and the file is readable once
        closed."""

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._write_rows()
            if self._writer is None:  # no records: an empty file with no columns
                self._start(self.pa.schema([]))
            self._writer.close()
            if len(self._parts) == 1:
                os.replace(self._parts[0], self.path)
            else:
                self._join()
        except OSError as exc:
            raise OutputFailed(f"{self.path}: cannot write: {exc.strerror or exc}") from None
        finally:
            for part in self._parts:
                with suppress(OSError):
                    os.remove(part)

    def _part(self, n: int) -> str:
        return f"{self.path}.part{n}"

    def _write_rows(self) -> None:
        if not self._rows:
            return
        rows, self._rows = self._rows, []
        pa = self.pa
        try:
            # pa.array looks at every row's keys (Table.from_pylist only at the first row's).
            inferred = pa.Table.from_struct_array(pa.array(rows)).schema
            schema = (
                inferred
                if self._schema is None
                else pa.unify_schemas([self._schema, inferred], promote_options="permissive")
            )
        except (TypeError, ValueError) as exc:  # ArrowTypeError, ArrowInvalid
            raise LemagenError(
                f"{self.path}: cannot write these records as one Parquet table: {exc}; "
                "write JSONL instead (-o out.jsonl)"
            ) from None
        if self._schema is None or not schema.equals(self._schema):
            if self._writer is not None:
                self._writer.close()
            self._start(schema)
        self._writer.write_table(pa.Table.from_pylist(rows, schema=self._schema))

    def _start(self, schema: Any) -> None:
        self._schema = schema
        part = self._part(len(self._parts))
        self._parts.append(part)
        self._writer = self.pq.ParquetWriter(part, schema)

    def _join(self) -> None:
        """The parts, under the last (widest) schema, as one file."""
        temp = self._part(len(self._parts))
        self._parts.append(temp)
        with self.pq.ParquetWriter(temp, self._schema) as out:
            for batch in self._batches():
                out.write_table(self.pa.Table.from_pylist(batch, schema=self._schema))
        os.replace(temp, self.path)

    def _batches(self) -> Iterator[list[dict[str, Any]]]:
        for part in self._parts[:-1]:
            with self.pq.ParquetFile(part) as handle:
                for batch in handle.iter_batches(batch_size=self._row_group):
                    yield batch.to_pylist()


def _no_empty_objects(value: Any) -> Any:
    """`value` with every empty object as null: Parquet has no struct without fields."""
    if isinstance(value, dict):
        if not value:
            return None
        return {k: _no_empty_objects(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_no_empty_objects(v) for v in value]
    return value
