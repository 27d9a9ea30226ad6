"""Grades kept across runs, so a re-run does not check again what it checked before.

A grade (the extracted answer, how it was found, the verdict) is a function of the task, the
gold answer, the sample's text and the checker: it is kept in `grades-v1.sqlite` beside the
request store, keyed by a hash of those and of `grading.GRADER_VERSION` and the checker's
name and version (`checker_info`), so a changed checker grades everything again. A check that
ran out of time is not kept (a re-run with a longer `--check-timeout` tries again).

It is a cache: a grade that was not written (a crash, a full disk, another process holding the
file) is checked again, so writes are not synced and any SQLite error turns the book off.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from lemagen.math import grading
from lemagen.math.grading import Grade, checker_info

GRADES_FILE = "grades-v1.sqlite"
LOOKUP_CHUNK = 500  # keys per query
Item = tuple[str, str, str]  # task, gold, the sample's text

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS grades (
    key BLOB PRIMARY KEY,   -- sha256 of the grader version, checker, task, gold and text
    pred TEXT,
    extracted_by TEXT,
    verdict TEXT NOT NULL
) WITHOUT ROWID;
"""


def grade_key(item: Item) -> bytes:
    task, gold, text = item
    checker = checker_info(task)
    parts = (str(grading.GRADER_VERSION), checker["name"], checker["version"], task, gold, text)
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).digest()


class GradeBook:
    """Grades by (task, gold, text): `get_many` in a few queries, `add` what was checked,
    `flush` it in one transaction. Used from one thread. Without a directory, it keeps
    nothing."""

    def __init__(self, directory: Path | None) -> None:
        self.path = None if directory is None else directory / GRADES_FILE
        self._conn: sqlite3.Connection | None = None
        self._new: list[tuple[bytes, str | None, str | None, str]] = []
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=5.0, isolation_level=None)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = OFF")
            conn.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            self._off(exc)
            return
        self._conn = conn

    def get_many(self, items: Sequence[Item]) -> dict[Item, Grade]:
        conn = self._conn
        if conn is None or not items:
            return {}
        by_key = {grade_key(item): item for item in items}
        keys = list(by_key)
        found: dict[Item, Grade] = {}
        try:
            for start in range(0, len(keys), LOOKUP_CHUNK):
                chunk = keys[start : start + LOOKUP_CHUNK]
                rows = conn.execute(
                    "SELECT key, pred, extracted_by, verdict FROM grades "
                    f"WHERE key IN ({','.join('?' * len(chunk))})",
                    chunk,
                )
                for key, pred, method, verdict in rows:
                    found[by_key[key]] = Grade(pred, verdict, method)
        except sqlite3.Error as exc:
            self._off(exc)
        return found

    def add(self, item: Item, grade: Grade) -> None:
        if self._conn is not None and grade.verdict != "timeout":
            self._new.append((grade_key(item), grade.pred, grade.extracted_by, grade.verdict))

    def flush(self) -> None:
        conn, new = self._conn, self._new
        if conn is None or not new:
            return
        self._new = []
        try:
            conn.execute("BEGIN")
            conn.executemany("INSERT OR REPLACE INTO grades VALUES (?, ?, ?, ?)", new)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._off(exc)

    def close(self) -> None:
        self.flush()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _off(self, exc: BaseException) -> None:
        log.info("%s: grades are not kept (%s)", self.path, exc)
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(sqlite3.Error):
                conn.close()
