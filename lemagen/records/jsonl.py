"""JSONL in and out. stdout carries records only; one record per line, flushed per line."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import IO, Any

import msgspec

from lemagen.errors import CannotWrite, InputError, LemagenError, OutputClosed
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
    except json.JSONDecodeError as exc:
        return f"invalid JSON: {exc.msg}"
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
    one-line `CannotWrite` error naming the file; a closed pipe is `OutputClosed`."""

    def __init__(self, path: str | None, *, flush_each: bool = True) -> None:
        self.path = path
        self.name = "<stdout>" if path in (None, "-") else str(path)
        if path in (None, "-"):
            self._stream: IO[str] = sys.stdout
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

    @staticmethod
    def encode(record: dict[str, Any]) -> str:
        """A record as the one line `write` would write (without the newline)."""
        return _dumps(record)

    def write_line(self, line: str) -> None:
        """Write one line already encoded with `encode`."""
        with self._writing():
            self._stream.write(redact(line) + "\n")
            if self._flush_each:
                self._stream.flush()
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
        with self._writing():
            if self._owned:
                self._stream.close()
            else:
                self._stream.flush()

    @contextmanager
    def _writing(self) -> Iterator[None]:
        try:
            yield
        except BrokenPipeError:
            raise OutputClosed from None
        except OSError as exc:
            if self._owned:
                with suppress(OSError):
                    self._stream.close()  # its buffer cannot be written either
            raise CannotWrite(f"{self.name}: cannot write: {exc.strerror or exc}") from None


_ENCODER = msgspec.json.Encoder()


def _dumps(value: Any) -> str:
    """One compact JSON line, non-ASCII kept as is: the bytes `json.dumps(value,
    ensure_ascii=False, separators=(",", ":"))` gives, except that floats below 1e-4 or from
    1e16 up are written without an exponent sign or padding (`0.00001` for `1e-05`, `1e16` for
    `1e+16`: the same values). Several times faster than `json.dumps`, which was a tenth of the
    time of a whole `grade` or `filter` run (benchmarks/bench_stages.py)."""
    try:
        return _ENCODER.encode(value).decode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a model's reply: written \u-escaped
        return json.dumps(value, separators=(",", ":"))


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
