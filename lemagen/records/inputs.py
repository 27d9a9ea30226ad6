"""Every input format, read as rows: JSONL (plain, gzip or zstd compressed), CSV, Parquet and
Hugging Face datasets (`hf:NAME[:CONFIG]:SPLIT`, or a `save_to_disk` directory).

Each reader yields `(where, row)`: `where` names the file and line (`data.csv:7`) or row
(`data.parquet:row 7`), and `row` is a dict or, for a row that cannot be read at all, an
`InputError` naming that place. `rows.iter_rows` hands every row to the stage's typed check,
whatever the format. Files are streamed, never loaded whole: Parquet a batch of rows at a time,
datasets through their memory-mapped Arrow files (or streamed from the Hub).

Parquet needs pyarrow, zstd needs zstandard and `hf:` needs datasets: optional extras
(`lemagen[parquet]`, `lemagen[zstd]`, `lemagen[hf]`), named in a one-line error when missing.
"""

from __future__ import annotations

import csv
import datetime
import decimal
import gzip
import importlib
import io
import os
import sys
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import IO, Any

from lemagen.errors import InputError, LemagenError
from lemagen.records.jsonl import read_lines

INPUT_FORMATS = ("auto", "jsonl", "csv", "parquet", "hf")
Row = tuple[str, dict[str, Any] | InputError]

_GZIP = b"\x1f\x8b"
_ZSTD = b"\x28\xb5\x2f\xfd"
_COMPRESSED = (".gz", ".zst")
_BATCH = 1024  # rows per Arrow batch: a few MB at most for typical records


def source_name(path: str) -> str:
    """How messages name an input: the path, or `<stdin>` for `-`."""
    return "<stdin>" if path == "-" else path


def input_format(path: str, given: str | None = None) -> str:
    """The format of `path`: `given` unless it is None or `auto`, else by its name: `hf:`
    or a dataset directory, `.parquet`/`.pq`, `.csv` (each also `.gz`/`.zst`), else JSONL."""
    if given not in (None, "auto"):
        assert given is not None
        return given
    if path.startswith("hf:") or _dataset_dir(path):
        return "hf"
    name = path.lower()
    for suffix in _COMPRESSED:
        name = name.removesuffix(suffix)
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith((".csv", ".tsv")):
        return "csv"
    return "jsonl"


def read_input(path: str, fmt: str | None = None) -> Iterator[Row]:
    """(where, row) for every row of `path` (`-` is stdin) in format `fmt` (None: by name)."""
    fmt = input_format(path, fmt)
    if fmt == "parquet":
        yield from _read_parquet(path)
    elif fmt == "hf":
        yield from _read_dataset(path)
    else:
        with open_bytes(path) as stream:
            if fmt == "csv":
                yield from _read_csv(stream, path)
            else:
                name = source_name(path)
                for lineno, row in read_lines(stream, name):
                    yield f"{name}:{lineno}", row


def count_rows(path: str, fmt: str | None = None) -> int | None:
    """Rows in `path` when known cheaply (the progress bar's total): the lines of a plain
    JSONL file, a Parquet file's or saved dataset's row count; else None."""
    fmt = input_format(path, fmt)
    try:
        if fmt == "parquet":
            return int(need("pyarrow.parquet", "parquet").ParquetFile(path).metadata.num_rows)
        if fmt == "hf":
            return int(_load_dataset(path).num_rows) if _dataset_dir(path) else None
        if fmt != "jsonl" or path == "-" or not os.path.isfile(path):
            return None
        with open(path, "rb") as handle:
            if handle.read(4).startswith((_GZIP, _ZSTD)):
                return None
            handle.seek(0)
            return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    except (OSError, LemagenError, ValueError):
        return None  # the reader itself reports what is wrong with the file


# ---------------------------------------------------------------- JSONL and CSV


@contextmanager
def open_bytes(path: str) -> Iterator[Iterable[bytes]]:
    """`path` (or stdin) as a binary stream, decompressed when it starts with gzip's or
    zstd's magic number (whatever its name)."""
    name = source_name(path)
    if path == "-":
        raw: IO[bytes] = sys.stdin.buffer
    else:
        try:
            raw = open(path, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise LemagenError(f"{path}: cannot open: {exc.strerror}") from None
    try:
        head = raw.peek(4)[:4] if isinstance(raw, io.BufferedReader) else b""
        if head.startswith(_GZIP):
            yield _guarded(gzip.GzipFile(fileobj=raw, mode="rb"), name, "gzip", ())
        elif head.startswith(_ZSTD):
            zstd = need("zstandard", "zstd", f"{name} is zstd-compressed")
            reader = zstd.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
            yield _guarded(io.BufferedReader(reader), name, "zstd", (zstd.ZstdError,))
        else:
            yield raw
    finally:
        if path != "-":
            raw.close()


def _guarded(
    stream: Iterable[bytes], name: str, kind: str, errors: tuple[type[Exception], ...]
) -> Iterator[bytes]:
    """The lines of a decompressing stream; corrupt or cut-off data is a one-line error."""
    caught: tuple[type[Exception], ...] = (OSError, EOFError, zlib.error, *errors)
    lineno = 0
    try:
        for line in stream:
            lineno += 1
            yield line
    except caught as exc:
        raise LemagenError(f"{name}: corrupt {kind} data after line {lineno}: {exc}") from None


def _read_csv(stream: Iterable[bytes], path: str) -> Iterator[Row]:
    """CSV (TSV for `.tsv`) with a header row; every value is text. A row whose field count
    differs from the header's is an `InputError` naming its first line."""
    name = source_name(path)
    text = io.TextIOWrapper(io.BufferedReader(_Lines(stream)), encoding="utf-8-sig", newline="")
    plain = path.lower().removesuffix(".gz").removesuffix(".zst")
    delimiter = "\t" if plain.endswith(".tsv") else ","
    reader = csv.reader(text, delimiter=delimiter)
    header: list[str] | None = None
    done = 0  # lines read so far
    while True:
        start = done + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except UnicodeDecodeError:
            raise LemagenError(f"{name}:{start}: invalid UTF-8") from None
        except csv.Error as exc:
            done = reader.line_num
            yield f"{name}:{start}", InputError(f"{name}:{start}: bad CSV: {exc}", reason="bad_csv")
            continue
        done = reader.line_num
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue
        if header is None:
            header = fields
            continue
        where = f"{name}:{start}"
        if len(fields) != len(header):
            yield (
                where,
                InputError(
                    f"{where}: {len(fields)} fields, the header has {len(header)}", reason="bad_csv"
                ),
            )
            continue
        yield where, dict(zip(header, fields, strict=True))


class _Lines(io.RawIOBase):
    """An iterable of byte chunks as a readable raw stream (for TextIOWrapper)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._rest = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._rest:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._rest = chunk
        n = min(len(buffer), len(self._rest))
        buffer[:n] = self._rest[:n]
        self._rest = self._rest[n:]
        return n


# ---------------------------------------------------------------- Parquet and datasets


def need(module: str, extra: str, why: str | None = None) -> Any:
    """`module`, or a one-line error naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        top = module.split(".")[0]
        because = f"{why}: " if why else ""
        raise LemagenError(
            f"{because}this needs {top}, which is not installed: pip install 'lemagen[{extra}]'"
        ) from None


def _read_parquet(path: str) -> Iterator[Row]:
    if path == "-":
        raise LemagenError("<stdin>: Parquet cannot be read from a pipe: give its path")
    pq = need("pyarrow.parquet", "parquet", f"{path} is Parquet")
    try:
        # No pre-buffering, which keeps every column chunk read so far (peak memory grew with
        # the file); a 1 MiB read buffer instead: memory stays flat (measured on 360 MB).
        handle = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
    except FileNotFoundError:
        raise LemagenError(f"{path}: cannot open: No such file or directory") from None
    except OSError as exc:  # pyarrow.ArrowInvalid is a ValueError; ArrowIOError an OSError
        raise LemagenError(f"{path}: cannot open: {exc}") from None
    except ValueError as exc:
        raise LemagenError(f"{path}: not a Parquet file: {exc}") from None
    with handle:
        yield from _arrow_rows(handle.iter_batches(batch_size=_BATCH, use_threads=False), path)


def _arrow_rows(batches: Iterable[Any], name: str) -> Iterator[Row]:
    """The rows of Arrow record batches (or tables) as JSON objects, `name:row N`."""
    n = 0
    try:
        for batch in batches:
            plain = _plain_json(batch.schema)
            for row in batch.to_pylist():
                n += 1
                yield f"{name}:row {n}", _no_nulls(row if plain else _jsonable(row))
    except (OSError, ValueError) as exc:  # a corrupt page, a truncated file
        raise LemagenError(f"{name}:row {n + 1}: cannot read: {exc}") from None


def _no_nulls(value: Any) -> Any:
    """`value` without its null fields, at every depth: a table has no absent fields, so a
    record without a field another record has reads it back as null, which means absent."""
    if isinstance(value, dict):
        return {k: _no_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_no_nulls(v) for v in value]
    return value


def _plain_json(schema: Any) -> bool:
    """Whether every column holds JSON values as they are (text, numbers, booleans, lists and
    structs of them), so rows need no conversion."""
    pa = importlib.import_module("pyarrow")

    def plain(t: Any) -> bool:
        if pa.types.is_struct(t):
            return all(plain(t.field(i).type) for i in range(t.num_fields))
        if pa.types.is_list(t) or pa.types.is_large_list(t):
            return plain(t.value_type)
        return bool(
            pa.types.is_string(t)
            or pa.types.is_large_string(t)
            or pa.types.is_integer(t)
            or pa.types.is_floating(t)
            or pa.types.is_boolean(t)
            or pa.types.is_null(t)
        )

    return all(plain(field.type) for field in schema)


def _jsonable(value: Any) -> Any:
    """A value of any Arrow type as JSON: dates and times in ISO 8601, decimals as text,
    maps as objects, bytes as UTF-8 text (else hex)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        if value and all(isinstance(v, tuple) and len(v) == 2 for v in value):
            return {str(k): _jsonable(v) for k, v in value}  # an Arrow map
        return [_jsonable(v) for v in value]
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value.hex()
    return value


def _dataset_dir(path: str) -> bool:
    """Whether `path` is a directory `datasets.save_to_disk` wrote."""
    return os.path.isdir(path) and any(
        os.path.isfile(os.path.join(path, f))
        for f in ("state.json", "dataset_info.json", "dataset_dict.json")
    )


def _read_dataset(path: str) -> Iterator[Row]:
    dataset = _load_dataset(path)
    try:
        batches = dataset.with_format("arrow").iter(batch_size=_BATCH)
    except (OSError, ValueError) as exc:
        raise LemagenError(f"{path}: cannot read: {_one_line(exc)}") from None
    yield from _arrow_rows(_hub_errors(batches, path), path)


def _hub_errors(batches: Iterator[Any], path: str) -> Iterator[Any]:
    """The batches of a dataset; a connection lost while streaming is a one-line error."""
    try:
        yield from batches
    except ConnectionError as exc:
        raise LemagenError(f"{path}: cannot read: {_one_line(exc)}") from None


def _load_dataset(path: str) -> Any:
    """A saved dataset directory (memory-mapped), or `hf:NAME[:CONFIG]:SPLIT` streamed from
    the Hub (or its cache: HF_DATASETS_OFFLINE=1 reads only that)."""
    datasets = need("datasets", "hf", f"{path} is a Hugging Face dataset")
    try:
        if _dataset_dir(path) or (not path.startswith("hf:") and os.path.isdir(path)):
            if os.path.isfile(os.path.join(path, "dataset_dict.json")):
                splits = sorted(e for e in os.listdir(path) if os.path.isdir(os.path.join(path, e)))
                raise LemagenError(
                    f"{path}: a dataset with splits {', '.join(splits)}: give one, e.g. "
                    f"{os.path.join(path, splits[0] if splits else 'train')}"
                )
            return datasets.load_from_disk(path)
        name, config, split = _hub_name(path)
        return datasets.load_dataset(name, config, split=split, streaming=True)
    except LemagenError:
        raise
    except (OSError, ValueError, ConnectionError) as exc:  # DatasetNotFoundError is an OSError
        raise LemagenError(f"{path}: cannot load the dataset: {_one_line(exc)}") from None


def _hub_name(path: str) -> tuple[str, str | None, str]:
    parts = path.removeprefix("hf:").split(":")
    if len(parts) not in (2, 3) or not all(parts):
        raise LemagenError(
            f"{path}: expected hf:NAME[:CONFIG]:SPLIT, e.g. hf:openai/gsm8k:main:train"
        )
    if len(parts) == 2:
        return parts[0], None, parts[1]
    return parts[0], parts[1], parts[2]


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] + ("..." if len(text) > 300 else "")
