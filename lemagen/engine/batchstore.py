"""The request store's record of provider Batch API jobs (`--batch`): what each job asks for,
its file and batch ids, and the samples batches were asked for and did not return.

Every remote step is written down (and fsync'd) right after the call that made it returns,
before anything else happens: a job is `prepared` (its lines stored) before its file is
uploaded, gets its `file_id` as soon as the upload returns and its `batch_id` as soon as the
create returns. A run that stops anywhere picks the job up where it was: a prepared job is
uploaded, an uploaded one submitted (its file reused), a submitted one polled; a job's results
go into `samples` in the same transaction that marks it collected, so a job is collected
exactly once.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from lemagen.engine.store import (
    STORE_FILE,
    StoredSample,
    guarded,
    insert_samples,
    open_store_file,
    store_error,
)
from lemagen.sidecache import select_in

KEY_SIZE = 32
LOCK_FILE = "batches.lock"

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


@dataclass(frozen=True)
class BatchRequest:
    """One line of a Batch input file: the samples `keys` of one call, asked for at once."""

    custom_id: str
    model: str
    endpoint: str  # /v1/chat/completions or /v1/completions
    line: str  # the JSONL line ({"custom_id", "method", "url", "body"})
    keys: tuple[bytes, ...]


@dataclass(frozen=True)
class Job:
    job: str
    base_url: str
    endpoint: str
    model: str
    file_id: str | None
    batch_id: str | None
    status: str
    counts: dict[str, int]
    created: float
    collected: float | None


_JOB_COLUMNS = (
    "job, base_url, endpoint, model, file_id, batch_id, status, counts, created, collected"
)


def _job(row: Sequence[object] | None) -> Job:
    """A row of batch_jobs; one lemagen did not write so is a damaged store."""
    if row is None:
        raise sqlite3.DatabaseError("a batch job is missing")
    job, base_url, endpoint, model, file_id, batch_id, status = row[:7]
    counts, created, collected = row[7:]
    texts = (job, base_url, endpoint, model, status)
    if not all(type(v) is str for v in texts) or not all(
        v is None or type(v) is str for v in (file_id, batch_id)
    ):
        raise sqlite3.DatabaseError("a batch job's fields are not text")
    try:
        count = json.loads(counts) if isinstance(counts, str) and counts else {}
    except (ValueError, RecursionError):
        count = None
    if (
        not isinstance(count, dict)
        or not all(type(v) is int for v in count.values())
        or type(created) is not float
        or not (collected is None or type(collected) is float)
    ):
        raise sqlite3.DatabaseError("a batch job's counts or times are not lemagen's")
    return Job(
        job,  # type: ignore[arg-type]
        base_url,  # type: ignore[arg-type]
        endpoint,  # type: ignore[arg-type]
        model,  # type: ignore[arg-type]
        file_id,  # type: ignore[arg-type]
        batch_id,  # type: ignore[arg-type]
        status,  # type: ignore[arg-type]
        count,
        created,
        collected,
    )


def _request(cid: object, model: str, endpoint: str, line: object, keys: object) -> BatchRequest:
    """A row of batch_requests; one lemagen did not write so is a damaged store."""
    try:
        body = json.loads(line) if isinstance(line, str) else None
    except (ValueError, RecursionError):
        body = None
    if (
        type(cid) is not str
        or not isinstance(body, dict)
        or body.get("custom_id") != cid
        or not isinstance(body.get("body"), dict)
        or type(keys) is not bytes
        or not keys
        or len(keys) % KEY_SIZE
    ):
        raise sqlite3.DatabaseError("a batch request is not one lemagen wrote")
    return BatchRequest(cid, model, endpoint, line, split_keys(keys))  # type: ignore[arg-type]


class BatchLedger:
    """Reads and writes the batch tables; every write is its own durable transaction."""

    def __init__(self, directory: Path) -> None:
        try:
            self.path = open_store_file(directory)
            self._conn = sqlite3.connect(
                self.path, timeout=60.0, isolation_level=None, check_same_thread=False
            )  # made in the main thread, read on the engine's (never at once)
            self._conn.execute("PRAGMA busy_timeout = 60000")
            self._conn.execute("PRAGMA synchronous = FULL")
        except sqlite3.Error as exc:
            raise store_error(directory / STORE_FILE, exc) from None

    def close(self) -> None:
        self._conn.close()

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold `batches.lock` beside the store (flock, blocking): runs on one store take the
        steps of batch jobs (prepare, upload, create, collect) one at a time, each reading the
        job's state after taking the lock, so two runs never upload or submit one job twice.
        The kernel drops the lock when its process ends in any way."""
        if fcntl is None:  # pragma: no cover - Windows: no flock
            yield
            return
        fd = os.open(self.path.parent / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # drops the lock

    # ------------------------------------------------------------------ reads

    @guarded
    def jobs(self, *, open_only: bool = False) -> list[Job]:
        where = " WHERE collected IS NULL" if open_only else ""
        rows = self._conn.execute(f"SELECT {_JOB_COLUMNS} FROM batch_jobs{where} ORDER BY created")
        return [_job(row) for row in rows]

    @guarded
    def job(self, job: str) -> Job:
        row = self._conn.execute(
            f"SELECT {_JOB_COLUMNS} FROM batch_jobs WHERE job = ?", (job,)
        ).fetchone()
        return _job(row)

    @guarded
    def requests(self, job: str) -> list[BatchRequest]:
        found = self.job(job)
        rows = self._conn.execute(
            "SELECT custom_id, line, keys FROM batch_requests WHERE job = ? ORDER BY seq",
            (job,),
        )
        return [_request(cid, found.model, found.endpoint, line, keys) for cid, line, keys in rows]

    @guarded
    def open_custom_ids(self) -> dict[str, str]:
        """custom_id -> job, for every job not collected yet."""
        rows = self._conn.execute(
            "SELECT r.custom_id, r.job FROM batch_requests r JOIN batch_jobs j USING (job) "
            "WHERE j.collected IS NULL"
        )
        return dict(rows)

    @guarded
    def open_keys(self, keys: Sequence[bytes]) -> dict[bytes, str]:
        """key -> the job not collected yet that asks for it, among `keys`."""
        query = (
            "SELECT k.key, k.job FROM batch_keys k JOIN batch_jobs j USING (job) "
            "WHERE j.collected IS NULL AND k.key IN "
        )
        return dict(select_in(self._conn, query, keys))

    @guarded
    def failures(self, keys: Sequence[bytes]) -> dict[bytes, tuple[int, str]]:
        """key -> (times a batch did not return it, the last reason)."""
        rows = select_in(
            self._conn, "SELECT key, attempts, error FROM batch_failures WHERE key IN ", keys
        )
        found = {key: (attempts, error) for key, attempts, error in rows}
        if not all(type(a) is int and type(e) is str for a, e in found.values()):
            raise sqlite3.DatabaseError("a batch failure is not one lemagen wrote")
        return found

    # ------------------------------------------------------------------ writes

    @guarded
    def prepare(
        self, job: str, base_url: str, endpoint: str, model: str, requests: Sequence[BatchRequest]
    ) -> None:
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO batch_jobs (job, base_url, endpoint, model, status, created) "
                "VALUES (?, ?, ?, ?, 'prepared', ?)",
                (job, base_url, endpoint, model, time.time()),
            )
            conn.executemany(
                "INSERT INTO batch_requests (job, seq, custom_id, keys, line) "
                "VALUES (?, ?, ?, ?, ?)",
                [(job, i, r.custom_id, b"".join(r.keys), r.line) for i, r in enumerate(requests)],
            )
            conn.executemany(
                "INSERT OR IGNORE INTO batch_keys VALUES (?, ?)",
                [(key, job) for r in requests for key in r.keys],
            )

    @guarded
    def mark(self, job: str, status: str) -> None:
        """`uploading` / `submitting`: the call is about to go out (a re-run first looks for
        what it may have made)."""
        with self._transaction() as conn:
            conn.execute("UPDATE batch_jobs SET status = ? WHERE job = ?", (status, job))

    @guarded
    def uploaded(self, job: str, file_id: str) -> None:
        with self._transaction() as conn:
            conn.execute(
                "UPDATE batch_jobs SET file_id = ?, status = 'uploaded' WHERE job = ?",
                (file_id, job),
            )

    @guarded
    def submitted(self, job: str, batch_id: str, status: str) -> None:
        with self._transaction() as conn:
            conn.execute(
                "UPDATE batch_jobs SET batch_id = ?, status = ? WHERE job = ?",
                (batch_id, status, job),
            )

    @guarded
    def seen(self, job: str, status: str, counts: dict[str, int]) -> None:
        with self._transaction() as conn:
            conn.execute(
                "UPDATE batch_jobs SET status = ?, counts = ? WHERE job = ?",
                (status, json.dumps(counts, sort_keys=True), job),
            )

    @guarded
    def collect(
        self,
        job: str,
        status: str,
        samples: Iterable[tuple[bytes, StoredSample]],
        failed: Iterable[tuple[bytes, str]],
        final: Iterable[tuple[bytes, str]] = (),
    ) -> None:
        """In one transaction: a finished job's samples stored, the samples it did not return
        counted as failed once more (`final`: failed for good, never asked for again), and
        the job marked collected."""
        now = time.time()
        rows = list(samples)
        with self._transaction() as conn:
            insert_samples(conn, rows, now)
            conn.executemany("DELETE FROM batch_failures WHERE key = ?", [(k,) for k, _ in rows])
            conn.executemany(
                "INSERT INTO batch_failures VALUES (?, 1, ?) ON CONFLICT (key) DO UPDATE SET "
                "attempts = attempts + 1, error = excluded.error",
                list(failed),
            )
            conn.executemany(
                "INSERT INTO batch_failures VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET "
                "attempts = excluded.attempts, error = excluded.error",
                [(key, FINAL, error) for key, error in final],
            )
            conn.execute(
                "UPDATE batch_jobs SET status = ?, collected = ? WHERE job = ?", (status, now, job)
            )

    def _transaction(self) -> _Transaction:
        return _Transaction(self._conn)


class _Transaction:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, kind: object, *rest: object) -> None:
        self.conn.execute("COMMIT" if kind is None else "ROLLBACK")


FINAL = 1 << 30  # a failure's attempts once it is final (a 4xx): more than any --max-retries


def split_keys(blob: bytes) -> tuple[bytes, ...]:
    return tuple(blob[i : i + KEY_SIZE] for i in range(0, len(blob), KEY_SIZE))
