"""Grades kept across runs, so a re-run does not check again what it checked before.

A grade (the extracted answer, how it was found, the verdict) is a function of the task, the
gold answer, the sample's text and the checker: it is kept in `grades-v1.sqlite` beside the
request store, keyed by a hash of those, of the grading code and the checker libraries'
versions (`grading.grader_digest`) and of the checker's name and version (`checker_info`), so
any change to what decides a verdict grades everything again. A check that
ran out of time is not kept (a re-run with a longer `--check-timeout` tries again). `sample`
keeps only grades that needed the symbolic checker: the others (every GSM8K answer, MATH
answers equal as written) cost less to grade again than to look up.

It is a cache: a grade that was not written (a crash, a full disk, another process holding the
file) is checked again, so writes are not synced and any SQLite error turns the book off.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from lemagen.math import grading
from lemagen.math.grading import Grade, checker_info
from lemagen.sidecache import SideCache

GRADES_FILE = "grades-v1.sqlite"
Item = tuple[str, str, str]  # task, gold, the sample's text

_SCHEMA = """
CREATE TABLE IF NOT EXISTS grades (
    key BLOB PRIMARY KEY,   -- sha256 of the grading code, checker, task, gold and text
    pred TEXT,
    extracted_by TEXT,
    verdict TEXT NOT NULL
) WITHOUT ROWID;
"""


def grade_key(item: Item, grader: str) -> bytes:
    """The key of a grade: `grader` (a `grading.grader_digest`), the checker, the item."""
    task, gold, text = item
    checker = checker_info(task)
    parts = (grader, checker["name"], checker["version"], task, gold, text)
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).digest()


class GradeBook:
    """Grades by (task, gold, text): `get_many` in a few queries, `add` what was checked,
    `flush` it in one transaction. Used from one thread. Without a directory, it keeps
    nothing. Grades are those of the grading code `grader` hashes to (this code, unless
    told)."""

    def __init__(self, directory: Path | None, grader: str | None = None) -> None:
        self.path = None if directory is None else directory / GRADES_FILE
        self.grader = grading.grader_digest() if grader is None else grader
        self._cache = SideCache(
            self.path, _SCHEMA, "grades", off_message="grades are not kept", flush_every=5000
        )

    def get_many(self, items: Sequence[Item]) -> dict[Item, Grade]:
        if not self._cache.on or not items:
            return {}
        by_key = {grade_key(item, self.grader): item for item in items}
        rows = self._cache.select("key, pred, extracted_by, verdict", list(by_key))
        return {by_key[key]: Grade(pred, verdict, method) for key, pred, method, verdict in rows}

    def add(self, item: Item, grade: Grade) -> None:
        if self._cache.on and grade.verdict != "timeout":
            self._cache.add(
                (grade_key(item, self.grader), grade.pred, grade.extracted_by, grade.verdict)
            )

    def flush(self) -> None:
        self._cache.flush()

    def close(self) -> None:
        self._cache.close()
