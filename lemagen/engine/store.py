"""The request store: every paid-for sample on disk, keyed by what produced it.

One row per sample (not per HTTP request), keyed by a hash of the model, the exact prompt,
every sampling parameter and the sample's index, so raising `-n` from 4 to 8 asks only for
samples 4-7, and changing anything downstream of the request asks for nothing. The API key
is never stored, and the endpoint URL is never part of a key; a `--batch` job keeps the base
URL it was submitted to (without any user:password) so a re-run follows it there.

SQLite in WAL mode. Writes go through one writer thread that commits whatever has arrived
in one transaction (group commit) with `synchronous=FULL`, so a response is on disk within
milliseconds of arriving and a crash (Ctrl-C, kill -9, power loss) never leaves a torn row:
a transaction is either all there or not there. Several lemagen processes (`sample | correct`)
may share one store.

Two runs on one store never pay for one sample twice: before a sample is sent, its key is
leased in the store (`claim`, one transaction for a call's samples) to this process, named by
a random owner token. A process that finds a key leased by another waits for its sample; a
lease dies with its owner: each process holds an exclusive `flock` on
`owners/<token>.lock` for as long as it runs, which the kernel drops when it exits in any way
(kill -9 included), so a lease whose owner's lock can be taken is taken over. A sample's lease
is deleted in the transaction that stores it, and a process deletes its leases when it stops.

Leases are taken only while another process shares the store (`leasing`): a run alone sends
without them (a transaction per batch of sends, about a tenth of its CPU at 512 connections).
A process that starts beside others leases from the start, says so (`owners/<token>.leasing`)
and waits until every other live owner says so too; a process running alone looks at
`owners/` every `PEER_WATCH` seconds, and on finding another owner leases every sample it is
fetching (in the writer's next transaction), then says so. So the newcomer finds the first
one's samples leased before it claims any. (A lemagen from before this scheme writes an empty
lock file and always leases: it is not waited for; one started beside a run of this one may,
for at most `PEER_WATCH`, send a sample that run is fetching.)

The schema's version is kept in `PRAGMA user_version`; version 2 added the tables of provider
batch jobs (`batchschema`), and an older store is migrated in place when it is opened.

A commit that fails (disk full, I/O error) loses nothing: its rows stay in memory and go with
the next commit, and with one last try at `close`; `failed` says why the store cannot be
written, and the engine then sends nothing more (a lease cannot be taken either), so only the
requests already in flight can be paid for without being stored (`unwritten` counts them).
"""

from __future__ import annotations

import contextlib
import functools
import os
import queue
import re
import secrets
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Concatenate, ParamSpec, Protocol, TypeVar

import msgspec

from lemagen.engine.batchschema import BATCH_SCHEMA
from lemagen.engine.calls import RequestFailed
from lemagen.errors import CannotWrite, LemagenError
from lemagen.sidecache import select_in

SCHEMA_VERSION = 2  # PRAGMA user_version; 2 added the batch tables (`batchstore`)
STORE_FILE = "requests-v1.sqlite"  # the file keeps its name: a v1 store is migrated in place
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
-- The parts of a sample's token counts that a server reported (OpenAI's usage details), for
-- the samples that have any; a table of its own, so that a store stays readable and writable
-- by a lemagen that predates it.
CREATE TABLE IF NOT EXISTS usage_parts (
    key BLOB PRIMARY KEY,          -- a key of samples
    cached_tokens INTEGER NOT NULL,    -- of prompt_tokens, read from the prompt cache
    reasoning_tokens INTEGER NOT NULL  -- of completion_tokens
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS leases (
    key BLOB PRIMARY KEY,          -- a sample being fetched ...
    owner TEXT NOT NULL,           -- ... by the process holding owners/<owner>.lock
    taken REAL NOT NULL
) WITHOUT ROWID;
"""
_SELECT = (
    "SELECT s.key, s.text, s.finish_reason, s.request, s.prompt_tokens, s.completion_tokens, "
    "coalesce(u.cached_tokens, 0), coalesce(u.reasoning_tokens, 0) "
    "FROM samples s LEFT JOIN usage_parts u ON u.key = s.key WHERE s.key IN "
)
OWNERS_DIR = "owners"
_OWNER = re.compile(r"[0-9a-f]{16}")
ON_DEMAND = b"leases on demand\n"  # an owner lock's content: this owner says when it leases
PEER_WATCH = 0.05  # seconds between looks at owners/ of a process leasing nothing
PEER_WAIT = 10.0  # the longest a newcomer waits for the others to say they lease

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock; leases are taken, never waited on
    fcntl = None  # type: ignore[assignment]

Rows = list[tuple[bytes, "StoredSample"]]
# Samples, run when durable, leases to drop, leases to take (`publish`).
Entry = tuple[Rows, "Callable[[], None] | None", list[bytes], list[bytes]]


class StoredSample(msgspec.Struct, frozen=True):
    """One sample as stored. A Struct, not a frozen dataclass: one is built for every sample
    a run reads or receives, and a frozen dataclass costs several times more to build."""

    text: str
    finish_reason: str | None
    request: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0  # of prompt_tokens (priced at the cached rate)
    reasoning_tokens: int = 0  # of completion_tokens


def _storable(text: str | None) -> str | bytes | None:
    """A text as SQLite can hold it: itself when it is UTF-8, else (a lone surrogate, half an
    emoji cut at max_tokens) its bytes under `surrogatepass`, stored as a BLOB, which
    `_text` turns back into the same string: lossless, and no error in the writer thread."""
    if text is None or text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")
    return text


def _text(value: str | bytes | None) -> str | None:
    """What `_storable` stored, as the string it was."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            raise sqlite3.DatabaseError("a stored text is neither text nor its bytes") from None
    if value is not None and type(value) is not str:
        raise sqlite3.DatabaseError(f"a stored text is a {type(value).__name__}")
    return value


def stored_sample(row: Sequence[object]) -> StoredSample:
    """A row of `_SELECT` without its key (text and finish reason as `_storable` wrote them).
    A row lemagen did not write so is a damaged store (`sqlite3.DatabaseError`)."""
    text, reason, *rest = row
    if type(text) is not str or (reason is not None and type(reason) is not str):
        text, reason = _text(text), _text(reason)  # type: ignore[arg-type]
    if text is None or type(rest[0]) is not str or any(type(n) is not int for n in rest[1:]):
        raise sqlite3.DatabaseError("a stored sample is not one lemagen wrote")
    return StoredSample(text, reason, *rest)  # type: ignore[arg-type]


def insert_samples(
    conn: sqlite3.Connection, rows: Sequence[tuple[bytes, StoredSample]], now: float
) -> None:
    """Insert samples and their usage parts in the caller's transaction; a key stored before
    keeps its first sample. The one place the samples table is written (the writer thread
    and a collected Batch job both come here)."""
    conn.executemany(
        "INSERT OR IGNORE INTO samples VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (
                key,
                _storable(s.text),
                _storable(s.finish_reason),
                s.request,
                s.prompt_tokens,
                s.completion_tokens,
                now,
            )
            for key, s in rows
        ],
    )
    conn.executemany(  # the parts of the row stored, not of one stored before it
        "INSERT OR IGNORE INTO usage_parts SELECT ?, ?, ? WHERE EXISTS "
        "(SELECT 1 FROM samples WHERE key = ? AND request = ?)",
        [
            (key, s.cached_tokens, s.reasoning_tokens, key, s.request)
            for key, s in rows
            if s.cached_tokens or s.reasoning_tokens
        ],
    )


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


def open_store_file(directory: Path) -> Path:
    """The store's file in `directory`, created or migrated to `SCHEMA_VERSION`."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / STORE_FILE
    setup = _connect(path)
    try:
        setup.execute("PRAGMA journal_mode = WAL")
        _migrate(setup, path)
    finally:
        setup.close()
    return path


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Create the tables that are missing (every step only adds tables, so what an older
    store holds is read as it was, and an older lemagen still reads this one), and record
    `SCHEMA_VERSION`. A store of a newer schema is refused."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise sqlite3.DatabaseError(
            f"{path} was made by a newer lemagen (store schema {version}, this one reads up to "
            f"{SCHEMA_VERSION})"
        )
    # One transaction: the new tables (and the version) reach the log once, not once each.
    mark = f"PRAGMA user_version = {SCHEMA_VERSION};" if version < SCHEMA_VERSION else ""
    conn.executescript(f"BEGIN; {_SCHEMA} {BATCH_SCHEMA} {mark} COMMIT;")


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=60.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 60000")
    return conn


class StoreUnwritable(Exception):
    """The request store cannot be written (disk full, I/O error, read-only)."""


class StoreDamaged(LemagenError):
    """The request store's file is not one lemagen can read (damaged: flipped bytes, cut
    short; rows of the wrong shape; a newer lemagen's): exit 1, one line."""


# SQLite's primary result codes that say the file cannot be written, not that it is damaged:
# PERM, BUSY, LOCKED, READONLY, IOERR, FULL, CANTOPEN, NOLFS.
_UNWRITABLE = frozenset({3, 5, 6, 8, 10, 13, 14, 22})


def store_error(path: Path, exc: Exception) -> LemagenError:
    """The one-line error for a request store SQLite failed on: a full disk, an I/O error or
    a lock is `CannotWrite` (exit 6); anything else means the file is damaged (exit 1)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int) and code & 0xFF in _UNWRITABLE:
        return CannotWrite(f"{path}: cannot write the request store ({exc})")
    return StoreDamaged(
        f"{path}: cannot read the request store ({exc}); move it away, or give another "
        "--cache-dir, or --no-cache"
    )


class _OnFile(Protocol):
    path: Path


S = TypeVar("S", bound=_OnFile)
P = ParamSpec("P")
R = TypeVar("R")


def guarded(method: Callable[Concatenate[S, P], R]) -> Callable[Concatenate[S, P], R]:
    """A method of a class over the store's file whose SQLite errors become `store_error`."""

    @functools.wraps(method)
    def call(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise store_error(self.path, exc) from None

    return call


class RequestStore:
    """Lookups from any thread; writes queued to the writer thread; leases taken from any
    thread (`claim`)."""

    def __init__(self, directory: Path, *, leasing: bool | None = None) -> None:
        """`leasing`: lease before sending from the start (default: when another live
        process shares the store)."""
        self.path = open_store_file(directory)
        self.owner = secrets.token_hex(8)
        self._owners = directory / OWNERS_DIR
        self._lock_file = _hold_owner_lock(self._owners, self.owner)
        peers = self.peers()
        self.leasing = bool(peers) if leasing is None else leasing
        if self.leasing:
            self._say_leasing()
            _await_leasing(self._owners, peers)
        self._local = threading.local()
        self._claiming = threading.Lock()  # one claim at a time on `_leaser`
        self._leaser: sqlite3.Connection | None = None  # claims, one at a time
        self._closed = False
        self._queue: queue.SimpleQueue[Entry | None] = queue.SimpleQueue()
        self._unwritten: list[Entry] = []  # failed commits, retried with the next one
        self.failed: str | None = None  # why the store cannot be written, once it could not
        self.backlog = 0  # puts queued and not yet durable (written by the writer thread)
        self._backlog_lock = threading.Lock()
        self.on_commit: Callable[[], None] | None = None  # run by the writer after each commit
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

    @guarded
    def get_many(self, keys: Sequence[bytes]) -> dict[bytes, StoredSample]:
        """The stored samples of `keys` (absent: not stored)."""
        rows = select_in(self._reader(), _SELECT, keys)
        return {row[0]: stored_sample(row[1:]) for row in rows}

    @guarded
    def requests_of(self, keys: Sequence[bytes]) -> dict[bytes, str]:
        """The id of the request that produced each stored sample of `keys` (absent: not
        stored)."""
        return dict(
            select_in(self._reader(), "SELECT key, request FROM samples WHERE key IN ", keys)
        )

    @guarded
    def count(self) -> int:
        return int(self._reader().execute("SELECT count(*) FROM samples").fetchone()[0])

    @property
    def unwritten(self) -> int:
        """Samples that arrived but could not be stored (after `close`: for good)."""
        return sum(len(rows) for rows, _, _, _ in self._unwritten)

    # ------------------------------------------------------------------ leases

    def claim(self, keys: Sequence[bytes]) -> tuple[dict[bytes, StoredSample], list[bytes]]:
        """In one transaction: the samples of `keys` already stored, and the keys another live
        process has leased; every other key is leased to this process. Blocking (run it off
        the event loop). Raises `StoreUnwritable` when the lease cannot be written."""
        with self._claiming:
            if self.failed is not None:
                raise StoreUnwritable(self.failed)
            if self._closed:
                raise StoreUnwritable(f"{self.path}: closed")
            conn = self._leaser
            if conn is None:
                conn = self._leaser = _connect(self.path)
                conn.execute("PRAGMA synchronous = OFF")  # a lease lost in a power cut is harmless
            for attempt in (1, 2):
                try:
                    return self._claim(conn, keys)
                except sqlite3.Error as exc:
                    if conn.in_transaction:
                        with contextlib.suppress(sqlite3.Error):
                            conn.execute("ROLLBACK")
                    if attempt == 1:  # a full disk: free the log's space, as in _commit
                        with contextlib.suppress(sqlite3.Error):
                            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                        continue
                    self._fail(exc)
            raise StoreUnwritable(str(self.failed))

    def _claim(
        self, conn: sqlite3.Connection, keys: Sequence[bytes]
    ) -> tuple[dict[bytes, StoredSample], list[bytes]]:
        marks = ",".join("?" * len(keys))
        conn.execute("BEGIN IMMEDIATE")
        stored = {
            row[0]: stored_sample(row[1:])
            for row in conn.execute(
                _SELECT + f"({marks})",
                list(keys),
            )
        }
        leased = dict(
            conn.execute(f"SELECT key, owner FROM leases WHERE key IN ({marks})", list(keys))
        )
        alive: dict[str, bool] = {self.owner: False}  # our own lease: take it again
        theirs = []
        mine = []
        for key in keys:
            if key in stored:
                continue
            owner = leased.get(key)
            if owner is not None:
                if owner not in alive:
                    alive[owner] = _owner_alive(self._owners, owner)
                if alive[owner]:
                    theirs.append(key)
                    continue
            mine.append(key)
        now = time.time()
        conn.executemany(
            "INSERT OR REPLACE INTO leases VALUES (?, ?, ?)", [(k, self.owner, now) for k in mine]
        )
        conn.execute("COMMIT")
        return stored, theirs

    def refusal(self) -> RequestFailed | None:
        """Why not to send a request now: the store cannot be written (it could not be kept)."""
        if self.failed is None:
            return None
        return RequestFailed(f"not sent: {self.failed}", "store_unwritable")

    def release(self, keys: Sequence[bytes]) -> None:
        """Drop this process's leases of `keys` (their samples will not be fetched)."""
        if keys and self.leasing:
            self._queue.put(([], None, list(keys), []))

    def peers(self) -> list[str]:
        """The other live processes on this store (the lock files of dead ones are removed)."""
        try:
            names = [entry.name for entry in os.scandir(self._owners)]
        except OSError:
            return []
        others = [n[:-5] for n in names if n.endswith(".lock") and n[:-5] != self.owner]
        return [owner for owner in others if _owner_alive(self._owners, owner)]

    def publish(self, keys: Sequence[bytes]) -> None:
        """From now on lease before sending; `keys` (the samples being fetched) are leased in
        the writer's next transaction, after which this process says it leases."""
        self.leasing = True
        self._queue.put(([], self._say_leasing, [], list(keys)))

    def _say_leasing(self) -> None:
        with contextlib.suppress(OSError):
            _leasing_path(self._owners, self.owner).touch()

    # ------------------------------------------------------------------ writes

    def put(
        self, rows: Iterable[tuple[bytes, StoredSample]], done: Callable[[], None] | None = None
    ) -> None:
        """Queue rows for the next group commit; `done()` runs (in the writer thread) once
        they are durable. Never raises: rows a failed commit could not write are kept."""
        with self._backlog_lock:
            self.backlog += 1
        self._queue.put((list(rows), done, [], []))

    def _write_loop(self) -> None:
        """Group commits until `close`. Nothing that goes wrong here ends the thread
        silently: a commit that raises anything keeps its rows for the next try and marks the
        store `failed` (the engine then sends nothing more and the run ends with exit 6), and
        an error outside a commit does the same before the thread ends (`close` then makes the
        last try itself)."""
        try:
            conn = _connect(self.path)
            conn.execute("PRAGMA synchronous = FULL")
        except Exception as exc:  # noqa: BLE001 - reported through `failed`, never lost
            self._fail(exc)
            self._wake()
            return
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
                if entries or (stop and self._unwritten):
                    self._commit(conn, entries)
                if stop:
                    self._release_all(conn)
                    return
        except Exception as exc:  # noqa: BLE001 - a bug here must not hang the run
            self._fail(exc)
            self._wake()
        finally:
            conn.close()

    def _wake(self) -> None:
        if self.on_commit is not None:
            self.on_commit()

    def _commit(self, conn: sqlite3.Connection, entries: list[Entry]) -> None:
        entries = self._unwritten + entries
        try:
            self._committed(conn, entries)
        finally:
            self._wake()

    def _committed(self, conn: sqlite3.Connection, entries: list[Entry]) -> None:
        try:
            try:
                self._write(conn, entries)
            except sqlite3.Error:
                # A full disk: moving the log into the database and truncating it frees the
                # log's space (it holds many versions of the same pages), then try once more.
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                self._write(conn, entries)
        except Exception as exc:  # noqa: BLE001 - disk full, I/O error, read-only, a bug
            self._unwritten = entries  # kept in memory; retried with the next commit
            self._fail(exc)
            return
        self._unwritten = []
        with self._backlog_lock:
            self.backlog -= sum(1 for _, _, drop, take in entries if not drop and not take)
        for _, done, _, _ in entries:
            if done is not None:
                done()

    def _write(self, conn: sqlite3.Connection, entries: list[Entry]) -> None:
        now = time.time()
        try:
            conn.execute("BEGIN IMMEDIATE")
            insert_samples(conn, [row for rows, _, _, _ in entries for row in rows], now)
            conn.executemany(  # leases of samples being fetched, once another process came
                "INSERT OR REPLACE INTO leases VALUES (?, ?, ?)",
                [(key, self.owner, now) for _, _, _, take in entries for key in take],
            )
            # A stored sample needs no lease; a released one is fetched by no one.
            conn.executemany(
                "DELETE FROM leases WHERE key = ?",
                [(key,) for rows, _, _, _ in entries for key, _ in rows],
            )
            conn.executemany(
                "DELETE FROM leases WHERE key = ? AND owner = ?",
                [(key, self.owner) for _, _, drop, _ in entries for key in drop],
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise

    def _fail(self, exc: BaseException) -> None:
        if self.failed is None:
            why = str(exc) if isinstance(exc, (sqlite3.Error, OSError)) else repr(exc)
            self.failed = f"{self.path}: cannot write the request store ({why})"

    def _release_all(self, conn: sqlite3.Connection) -> None:
        """Drop every lease this process still holds (a cancelled run's)."""
        with contextlib.suppress(sqlite3.Error):
            conn.execute("DELETE FROM leases WHERE owner = ?", (self.owner,))

    def _last_try(self) -> None:
        """After the writer stopped: what is still queued (the writer ended on an error) and
        what failed to commit get one more commit here, so what arrived is stored where the
        file can take it; what cannot be is counted in `unwritten`."""
        queued: list[Entry] = []
        while True:
            try:
                entry = self._queue.get_nowait()
            except queue.Empty:
                break
            if entry is not None:
                queued.append(entry)
        if not queued and not self._unwritten:
            return
        try:
            conn = _connect(self.path)
        except Exception as exc:  # noqa: BLE001 - counted in `unwritten`
            self._unwritten += queued
            self._fail(exc)
            return
        try:
            self._commit(conn, queued)
        finally:
            conn.close()

    def close(self) -> None:
        """Commit everything queued (and what failed before: one last try), drop this
        process's leases, then stop the writer. Never raises: see `failed` and `unwritten`."""
        if self._writer.is_alive():
            self._queue.put(None)
            self._writer.join()
        self._last_try()
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
        with self._claiming:
            self._closed = True
            if self._leaser is not None:
                self._leaser.close()
                self._leaser = None
        with contextlib.suppress(OSError):
            _leasing_path(self._owners, self.owner).unlink()
        _drop_owner_lock(self._lock_file, self._owners, self.owner)
        self._lock_file = None


# ---------------------------------------------------------------- lease owners


def _lock_path(owners: Path, owner: str) -> Path:
    return owners / f"{owner}.lock"


def _leasing_path(owners: Path, owner: str) -> Path:
    """The file an owner writes once it leases before sending."""
    return owners / f"{owner}.leasing"


def _hold_owner_lock(owners: Path, owner: str) -> int | None:
    """Create `owners/<owner>.lock` already locked (made and locked under a temporary name,
    then renamed, so no one ever sees it unlocked while this process lives)."""
    if fcntl is None:  # pragma: no cover
        return None
    owners.mkdir(exist_ok=True)
    temp = owners / f".{owner}.tmp"
    fd = os.open(temp, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, ON_DEMAND)
        os.replace(temp, _lock_path(owners, owner))
    except BaseException:
        os.close(fd)
        raise
    return fd


def _drop_owner_lock(fd: int | None, owners: Path, owner: str) -> None:
    if fd is None:  # pragma: no cover
        return
    with contextlib.suppress(OSError):
        _lock_path(owners, owner).unlink()
    os.close(fd)


def _owner_alive(owners: Path, owner: str) -> bool:
    """Whether the process that took a lease still runs: it holds its lock file's flock."""
    if fcntl is None or not _OWNER.fullmatch(owner):  # pragma: no cover
        return False  # no flock (Windows): leases are not honoured, never waited on forever
    try:
        fd = os.open(_lock_path(owners, owner), os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also drops the lock if it was taken
    with contextlib.suppress(OSError):
        _lock_path(owners, owner).unlink()  # a dead owner's files
    with contextlib.suppress(OSError):
        _leasing_path(owners, owner).unlink()
    return False


def _await_leasing(owners: Path, peers: Sequence[str]) -> None:
    """Wait until every live owner of `peers` that leases on demand says it leases (it looks
    at owners/ every PEER_WATCH seconds), at most PEER_WAIT seconds."""
    deadline = time.monotonic() + PEER_WAIT
    waiting = [owner for owner in peers if _leases_on_demand(owners, owner)]
    while waiting and time.monotonic() < deadline:
        waiting = [
            owner
            for owner in waiting
            if not _leasing_path(owners, owner).exists() and _owner_alive(owners, owner)
        ]
        if waiting:
            time.sleep(PEER_WATCH / 5)


def _leases_on_demand(owners: Path, owner: str) -> bool:
    try:
        return _lock_path(owners, owner).read_bytes() == ON_DEMAND
    except OSError:
        return False
