"""JSONL in and out. stdout carries records only; one record per line, flushed per line."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import IO, Any, NoReturn

import msgspec

from lemagen.errors import InputError, LemagenError, OutputClosed, OutputFailed
from lemagen.redact import redact


def read_records(path: str) -> Iterator[tuple[int, dict[str, Any] | InputError]]:
    """(line number, record) for each non-empty line of `path` (`-` is stdin).

    A line that is not a JSON object is yielded as an `InputError` naming `path:line`, so the
    caller decides whether to stop or set it aside, and reading goes on after it. The file is
    streamed, never loaded whole.
    """
    name = "<stdin>" if path == "-" else path
    if path == "-":
        stream: IO[bytes] = sys.stdin.buffer
    else:
        try:
            stream = open(path, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise LemagenError(f"{path}: cannot open: {exc.strerror}") from None
    try:
        yield from read_lines(stream, name)
    finally:
        if path != "-":
            stream.close()


def read_lines(
    stream: Iterable[bytes], name: str
) -> Iterator[tuple[int, dict[str, Any] | InputError]]:
    """`read_records` over an open binary stream (a file, stdin, a decompressor) that messages
    call `name`."""
    for lineno, raw in raw_lines(stream):
        yield lineno, record_of(raw, name, lineno)


def raw_lines(stream: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    """(line number, line) for each non-empty line of a binary stream."""
    for lineno, raw in enumerate(stream, 1):
        if raw.strip():
            yield lineno, raw


def record_of(raw: bytes, name: str, lineno: int) -> dict[str, Any] | InputError:
    """One line as a JSON object, or the `name:line` error saying why it is not one."""
    try:
        value = _decode(raw)
    except (msgspec.DecodeError, RecursionError):
        problem = _why_not_json(raw)
        if problem is not None:
            return InputError(f"{name}:{lineno}: {problem}", reason="bad_json")
        value = json.loads(raw)  # JSON msgspec does not take: a lone surrogate
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            return InputError(
                f"{name}:{lineno}: invalid JSON: a \\u escape that is half a "
                "character (a lone surrogate)",
                reason="bad_json",
            )
    if not isinstance(value, dict):
        kind = type(value).__name__
        return InputError(f"{name}:{lineno}: expected a JSON object, got {kind}", reason="bad_json")
    return value


_decode = msgspec.json.Decoder().decode


def _why_not_json(raw: bytes) -> str | None:
    """Why a line is not JSON, in the standard library's words (only on the error path)."""
    try:
        json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return "invalid UTF-8"
    except json.JSONDecodeError as exc:  # some messages end in "at", the position cut off
        return f"invalid JSON: {exc.msg.removesuffix(' at')} (column {exc.colno})"
    except ValueError as exc:  # an integer of more digits than Python converts
        return f"invalid JSON: {exc}"
    except RecursionError:
        return "invalid JSON: nested too deeply"
    return None


class RecordWriter:
    """Writes records as JSONL to a path or stdout (`-`), flushing each line, or with
    `flush_each=False` only when `flush()` is called (the engine-driven stages flush whenever
    they would wait, so a reader downstream still gets rows as they finish).

    Every line goes through `redact` here, the one place every record, reject and output line
    passes: no API key is ever written out. A write that fails (disk full, I/O error) is a
    one-line `OutputFailed` error naming the file; a closed pipe is `OutputClosed`."""

    def __init__(self, path: str | None, *, flush_each: bool = True) -> None:
        self.path = path
        self.name = "<stdout>" if path in (None, "-") else str(path)
        if path in (None, "-"):
            self._stream: IO[str] = sys.stdout if flush_each else _buffered_stdout()
            self._owned = False
        else:
            assert path is not None
            try:
                self._stream = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
            except OSError as exc:
                raise LemagenError(f"{path}: cannot write: {exc.strerror}") from None
            self._owned = True
        self._flush_each = flush_each
        self.count = 0
        self.failed = False

    @staticmethod
    def encode(record: dict[str, Any]) -> str:
        """A record as the one line `write` would write (without the newline)."""
        return _dumps(record)

    def write_line(self, line: str) -> None:
        """Write one line already encoded with `encode`."""
        try:  # as `_writing` does, without a context manager per line
            self._stream.write(redact(line) + "\n")
            if self._flush_each:
                self._stream.flush()
        except OSError as exc:
            self._failed(exc)
        self.count += 1

    def write(self, record: dict[str, Any]) -> None:
        self.write_line(_dumps(record))

    def write_all(self, records: Iterable[dict[str, Any]]) -> None:
        for record in records:
            self.write(record)

    def flush(self) -> None:
        with self._writing():
            self._stream.flush()

    def close(self) -> None:
        if self.failed:  # closed already, or stdout: its buffer cannot be written either
            return
        with self._writing():
            if self._owned:
                self._stream.close()
            else:
                self._stream.flush()

    @contextmanager
    def _writing(self) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            self._failed(exc)

    def _failed(self, exc: OSError) -> NoReturn:
        if isinstance(exc, BrokenPipeError):
            raise OutputClosed from None
        if self._owned:
            with suppress(OSError):
                self._stream.close()  # its buffer cannot be written either
        self.failed = True  # closing it writes nothing more, and raises nothing more
        raise OutputFailed(f"{self.name}: cannot write: {exc.strerror or exc}") from None


def _buffered_stdout() -> IO[str]:
    """stdout with a buffer of its own, flushed only when the writer flushes: whether or not
    Python runs unbuffered (PYTHONUNBUFFERED=1, usual in containers, makes every line a
    write call of its own). UTF-8, as every JSONL file lemagen writes. sys.stdout itself
    where it is not a file (a test's capture)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return sys.stdout
    sys.stdout.flush()
    raw = io.FileIO(fd, "w", closefd=False)
    return io.TextIOWrapper(io.BufferedWriter(raw, 1 << 16), encoding="utf-8")


def _dumps(value: Any) -> str:
    """`value` as compact JSON, exactly as `json.dumps(ensure_ascii=False)` writes it, by
    msgspec where that gives the same text (about four times faster, benchmarks/bench_engine.py
    resume): everything but floats the two spell differently (`1e+16` and `1e16`, `1e-05` and
    `0.00001`, NaN and null), which go to json."""
    if type(value) is dict and not _odd(value.values()):
        try:
            return _encode(value).decode()
        except (TypeError, UnicodeEncodeError):  # a lone surrogate, a key msgspec does not take
            pass
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a model's reply: written \u-escaped
        return json.dumps(value, separators=(",", ":"))
    return text


_encode = msgspec.json.Encoder().encode


def _odd(values: Iterable[Any]) -> bool:
    """Whether `values` hold a float json and msgspec write differently (json writes
    `repr(x)`, which has an exponent outside 1e-4 <= |x| < 1e16, and NaN / Infinity), or a
    type other than the JSON ones."""
    for v in values:
        t = type(v)
        if t is str or t is int or v is None or t is bool:
            continue
        if t is float:
            if not (1e-4 <= v < 1e16 or -1e16 < v <= -1e-4 or v == 0.0):
                return True
        elif t is dict:
            if _odd(v.values()):
                return True
        elif t is list:
            if _odd(v):
                return True
        else:
            return True
    return False


@contextmanager
def optional_writer(path: str | None) -> Iterator[RecordWriter | None]:
    """A writer for `path`, or None when no path was given."""
    if path is None:
        yield None
        return
    writer = RecordWriter(path)
    try:
        yield writer
    finally:
        writer.close()
