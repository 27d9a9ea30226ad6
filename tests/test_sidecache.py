"""The cache files beside the request store (grades, finished rows): what they cannot do
turns them off, never the run."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from lemagen.sidecache import SideCache
from lemagen.stage.rowbook import ROWS_FILE, Kept, RowBook
from tests.conftest import EXAMPLES, endpoint, run
from tests.fake_openai import FakeOpenAI

SCHEMA = "CREATE TABLE IF NOT EXISTS t (key BLOB PRIMARY KEY, value TEXT);"


def cache(path: Path | None, flush_every: int = 2) -> SideCache:
    return SideCache(path, SCHEMA, "t", off_message="off", flush_every=flush_every)


def test_rows_are_written_in_batches_and_looked_up(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    book = cache(path)
    book.add((b"a", "1"))
    other = sqlite3.connect(path)
    assert other.execute("SELECT count(*) FROM t").fetchone()[0] == 0  # held
    book.add((b"b", "2"))  # the second: both written
    assert other.execute("SELECT count(*) FROM t").fetchone()[0] == 2
    book.add((b"c", "3"))
    book.close()  # the rest on close
    assert other.execute("SELECT count(*) FROM t").fetchone()[0] == 3
    other.close()
    again = cache(path)
    assert sorted(again.select("key, value", [b"a", b"c", b"z"])) == [(b"a", "1"), (b"c", "3")]
    again.close()


def test_a_cache_that_cannot_be_used_is_off_and_costs_nothing(tmp_path: Path) -> None:
    not_a_file = tmp_path / "dir.sqlite"
    not_a_file.mkdir()
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"this is not a database" * 100)
    for path in (None, not_a_file, garbage):
        book = cache(path)
        assert not book.on
        book.add((b"a", "1"))
        book.flush()
        assert book.select("key, value", [b"a"]) == []
        book.close()


def test_a_damaged_kept_row_is_a_miss(tmp_path: Path) -> None:
    book = RowBook(tmp_path)
    book.add(b"good", Kept([b"k"], ["r"], [], {"problems": 1}))
    book.close()
    conn = sqlite3.connect(tmp_path / ROWS_FILE)
    conn.execute("INSERT INTO rows VALUES (?, ?)", (b"bad", b"\xff\x00 not msgpack"))
    conn.commit()
    conn.close()
    book = RowBook(tmp_path)
    assert set(book.get_many([b"good", b"bad"])) == {b"good"}
    book.close()


def test_a_damaged_row_book_file_does_not_stop_a_run(fake: FakeOpenAI, tmp_path: Path) -> None:
    args = ["sample", str(EXAMPLES / "gsm8k.jsonl"), "-m", "r", "-n", "2", "--keep", "all"]
    fresh = run(*args, "--cache-dir", str(tmp_path / "fresh"), *endpoint(fake))
    cache_dir = tmp_path / "c"
    cache_dir.mkdir()
    (cache_dir / ROWS_FILE).write_bytes(b"not a database" * 100)
    result = run(*args, "--cache-dir", str(cache_dir), *endpoint(fake))
    assert result.exit_code == 0, result.stderr
    assert sorted(result.stdout.splitlines()) == sorted(fresh.stdout.splitlines())
