"""What a finished row wrote, kept so that a re-run writes it again without rebuilding it.

A re-run of a stage over the same input finds every sample in the request store, and used to
rebuild every record from them: parse, grade, split into steps, encode. The row book keeps,
for each input row whose calls all succeeded, the lines the row wrote (records and set-aside
rows, already encoded and redacted), what it added to the summary's counts, and the request
id of every sample it was made from. A re-run looks rows up in chunks and writes a kept row's
lines as they are; only rows the book does not know go through the engine and the stage.

A kept row is used only when it is exactly what a run would write again:
* its key is a hash of the stage's output options (`EngineStage.replay_options`: everything
  besides the request that changes a record, the grading code's digest and the checkers
  included), lemagen's own source and the versions of the libraries that shape a record
  (`code_digest`), the input row as read, and the identity of every call it makes (so a
  changed prompt, model or sampling parameter is a different key);
* every sample it was made from is still in the request store under the same request id
  (a store that was deleted, or a sample another process stored first, is a miss).

Rows with a failed call, a check that timed out or (`correct --reask`) a reply still to ask
again are not kept, nor rows with no call: a re-run makes them again. Used by `sample` and
`correct` (`EngineStage.replay_options`; the other stages give None).

It is a cache, like the grade book: `rows-v1.sqlite` beside the request store, written
without syncing, and any SQLite error turns it off (the run goes on without it).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import msgspec

from lemagen.records.rows import Encoded
from lemagen.sidecache import SideCache

ROWS_FILE = "rows-v1.sqlite"
ROWS_VERSION = 1  # bump when what a kept row holds, or how its key is made, changes
FLUSH_EVERY = 500  # rows kept in memory before they are written

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rows (
    key BLOB PRIMARY KEY,   -- sha256 of the stage's options, the row and its calls
    entry BLOB NOT NULL     -- a msgpack `Kept`
);
-- A rowid table, not WITHOUT ROWID: rows of about a kilobyte went in four times faster
-- (new rows are appended; only the key's index takes random inserts). Not compressed:
-- zlib cost more than the rest of keeping a row.
"""


class Kept(msgspec.Struct, array_like=True, frozen=True):
    """What one row wrote and counted, and the samples it was made from."""

    keys: list[bytes]  # the store key of each sample of each call, in order
    sources: list[str]  # the request id of each of those samples
    lines: list[Encoded]  # records and set-aside rows, as written
    counts: dict[str, int]


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(Kept).decode


def pack(kept: Kept) -> bytes:
    return _encode(kept)


def unpack(blob: bytes) -> Kept:
    return _decode(blob)


@functools.cache
def code_digest() -> str:
    """A hash of lemagen's own source and of the libraries that shape a record: what makes a
    row's lines besides its input, so that any other code (an upgrade, an install from git,
    a local edit) makes every row again. Read once per run (about 170 files)."""
    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    for name in ("msgspec", "sympy", "math-verify"):
        try:
            digest.update(f"{name}={metadata.version(name)}".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"{name}=-".encode())
    return digest.hexdigest()


def row_key(options: bytes, row: bytes, identities: Sequence[bytes]) -> bytes:
    """The key of a row: the stage's options, the row as read, the identity of each call."""
    digest = hashlib.sha256(options)
    digest.update(len(row).to_bytes(8, "big"))
    digest.update(row)
    for identity in identities:
        digest.update(identity)
    return digest.digest()


class RowBook:
    """Kept rows by key: `get_many` in a few queries, `add` a finished row (written in one
    transaction every `FLUSH_EVERY` rows, and at `flush`). Used from one thread. Without a
    directory, it keeps nothing."""

    def __init__(self, directory: Path | None) -> None:
        self.path = None if directory is None else directory / ROWS_FILE
        self._cache = SideCache(
            self.path,
            _SCHEMA,
            "rows",
            off_message="finished rows are not kept",
            flush_every=FLUSH_EVERY,
        )

    @property
    def on(self) -> bool:
        return self._cache.on

    def get_many(self, keys: Sequence[bytes]) -> dict[bytes, Kept]:
        found: dict[bytes, Kept] = {}
        for key, blob in self._cache.select("key, entry", keys):
            try:
                found[key] = unpack(blob)
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue  # a damaged entry is a miss: the row is made again
        return found

    def add(self, key: bytes, kept: Kept) -> None:
        if self._cache.on:
            self._cache.add((key, pack(kept)))

    def flush(self) -> None:
        self._cache.flush()

    def close(self) -> None:
        self._cache.close()
