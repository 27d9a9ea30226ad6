"""The request store: every paid-for sample on disk, keyed by what produced it.

One row per sample (not per HTTP request), keyed by a hash of the model, the exact prompt,
every sampling parameter and the sample's index, so raising `-n` from 4 to 8 asks only for
samples 4-7, and changing anything downstream of the request asks for nothing. The API key
and the endpoint URL are never part of a key or of anything stored.

SQLite in WAL mode. Writes go through one writer thread that commits whatever has arrived
in one transaction (group commit) with `synchronous=FULL`, so a response is on disk within
milliseconds of arriving and a crash (Ctrl-C, kill -9, power loss) never leaves a torn row:
a transaction is either all there or not there. Several lemagen processes (`sample | correct`)
may share one store.
"""

from __future__ import annotations

import os
import queue
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

SCHEMA_VERSION = 1
STORE_FILE = f"requests-v{SCHEMA_VERSION}.sqlite"
GROUP_COMMIT_WINDOW = 0.005  # seconds

_SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (
    key BLOB PRIMARY KEY,          -- sha256 of the request identity and the sample index
    text TEXT NOT NULL,
    finish_reason TEXT,
    request TEXT NOT NULL,         -- id of the HTTP request that produced it
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    created REAL NOT NULL
) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class StoredSample:
    text: str
    finish_reason: str | None
    request: str
    prompt_tokens: int
    completion_tokens: int


def default_cache_dir() -> Path:
    """`LEMAGEN_CACHE_DIR`, else the platform's user cache directory plus `lemagen`."""
    env = os.environ.get("LEMAGEN_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "lemagen"
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "lemagen" / "Cache"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lemagen"


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=60.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 60000")
    return conn


class RequestStore:
    """Lookups from any thread; writes queued to the writer thread."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / STORE_FILE
        setup = _connect(self.path)
        try:
            setup.execute("PRAGMA journal_mode = WAL")
            setup.executescript(_SCHEMA)
        finally:
            setup.close()
        self._local = threading.local()
        self._queue: queue.SimpleQueue[
            tuple[list[tuple[bytes, StoredSample]], Callable[[], None] | None] | None
        ] = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._writer = threading.Thread(target=self._write_loop, name="lemagen-store", daemon=True)
        self._writer.start()

    # ------------------------------------------------------------------ reads

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self.path)
            conn.execute("PRAGMA query_only = 1")
            self._local.conn = conn
        return conn

    def get_many(self, keys: Sequence[bytes]) -> dict[bytes, StoredSample]:
        if not keys:
            return {}
        marks = ",".join("?" * len(keys))
        rows = self._reader().execute(
            "SELECT key, text, finish_reason, request, prompt_tokens, completion_tokens "
            f"FROM samples WHERE key IN ({marks})",
            list(keys),
        )
        return {row[0]: StoredSample(*row[1:]) for row in rows}

    def count(self) -> int:
        return int(self._reader().execute("SELECT count(*) FROM samples").fetchone()[0])

    # ------------------------------------------------------------------ writes

    def put(
        self, rows: Iterable[tuple[bytes, StoredSample]], done: Callable[[], None] | None = None
    ) -> None:
        """Queue rows for the next group commit; `done()` runs (in the writer thread) once
        they are durable."""
        if self._error is not None:
            raise RuntimeError(f"request store {self.path}: {self._error}") from self._error
        self._queue.put((list(rows), done))

    def _write_loop(self) -> None:
        conn = _connect(self.path)
        conn.execute("PRAGMA synchronous = FULL")
        try:
            while True:
                item = self._queue.get()
                if item is not None:
                    time.sleep(GROUP_COMMIT_WINDOW)  # let a group gather: fewer fsyncs
                batch = [item]
                while True:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                stop = any(entry is None for entry in batch)
                entries = [entry for entry in batch if entry is not None]
                if entries:
                    self._commit(conn, entries)
                if stop:
                    return
        finally:
            conn.close()

    def _commit(
        self,
        conn: sqlite3.Connection,
        entries: list[tuple[list[tuple[bytes, StoredSample]], Callable[[], None] | None]],
    ) -> None:
        now = time.time()
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT OR IGNORE INTO samples VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        key,
                        s.text,
                        s.finish_reason,
                        s.request,
                        s.prompt_tokens,
                        s.completion_tokens,
                        now,
                    )
                    for rows, _ in entries
                    for key, s in rows
                ],
            )
            conn.execute("COMMIT")
        except sqlite3.Error as exc:  # disk full, read-only directory: reported by put()
            self._error = exc
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            return
        for _, done in entries:
            if done is not None:
                done()

    def close(self) -> None:
        """Commit everything queued, then stop the writer."""
        if self._writer.is_alive():
            self._queue.put(None)
            self._writer.join()
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
        if self._error is not None:
            raise RuntimeError(f"request store {self.path}: {self._error}") from self._error
