"""A cache file beside the request store (the grade book, the row book): SQLite in WAL mode,
one table keyed by a hash, looked up in chunks and written in batches without syncing.

What it holds can always be made again, so it never stops a run: a file that cannot be
opened, or any SQLite error later, turns the cache off (logged with -v) and the run goes on
doing the work the cache would have saved. Used from one thread.

`select_in` (rows by a list of keys, a query per `LOOKUP_CHUNK` keys) serves the request
store's lookups too.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

LOOKUP_CHUNK = 500  # keys per query

log = logging.getLogger(__name__)


def select_in(conn: sqlite3.Connection, query: str, keys: Sequence[Any]) -> Iterator[Any]:
    """The rows of `query` (ending in `... IN `) for `keys`, a query per LOOKUP_CHUNK keys
    (SQLite bounds the parameters of one query)."""
    for start in range(0, len(keys), LOOKUP_CHUNK):
        chunk = list(keys[start : start + LOOKUP_CHUNK])
        # Fetched whole: a caller that stops early leaves no cursor open to be closed later,
        # maybe after its connection.
        yield from conn.execute(query + f"({','.join('?' * len(chunk))})", chunk).fetchall()


class SideCache:
    """Table `table` (first column `key`) of the SQLite file `path` (None: keeps nothing).
    `flush_every`: rows `add` holds before it writes them."""

    def __init__(
        self, path: Path | None, schema: str, table: str, *, off_message: str, flush_every: int
    ) -> None:
        self.path = path
        self.table = table
        self.off_message = off_message
        self.flush_every = flush_every
        self._conn: sqlite3.Connection | None = None
        self._new: list[tuple[Any, ...]] = []
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, timeout=5.0, isolation_level=None)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = OFF")
            conn.executescript(schema)
        except (OSError, sqlite3.Error) as exc:
            self._off(exc)
            return
        self._conn = conn

    @property
    def on(self) -> bool:
        return self._conn is not None

    def select(self, columns: str, keys: Sequence[bytes]) -> list[tuple[Any, ...]]:
        """`columns` of the rows whose key is in `keys` (nothing once the cache is off)."""
        conn = self._conn
        if conn is None or not keys:
            return []
        try:
            return list(select_in(conn, f"SELECT {columns} FROM {self.table} WHERE key IN ", keys))
        except sqlite3.Error as exc:
            self._off(exc)
            return []

    def add(self, row: tuple[Any, ...]) -> None:
        if self._conn is not None:
            self._new.append(row)
            if len(self._new) >= self.flush_every:
                self.flush()

    def flush(self) -> None:
        conn, new = self._conn, self._new
        if conn is None or not new:
            return
        self._new = []
        marks = ",".join("?" * len(new[0]))
        try:
            conn.execute("BEGIN")
            conn.executemany(f"INSERT OR REPLACE INTO {self.table} VALUES ({marks})", new)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._off(exc)

    def close(self) -> None:
        self.flush()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _off(self, exc: BaseException) -> None:
        log.info("%s: %s (%s)", self.path, self.off_message, exc)
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(sqlite3.Error):
                conn.close()
