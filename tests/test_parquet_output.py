"""`-o out.parquet`: the same records as JSONL, in a file `datasets` loads unchanged, written a
row group at a time; the schema widens as later records bring new fields."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import datasets
import pyarrow.parquet as pq
import pytest

from lemagen.records.parquet import ParquetRecordWriter
from lemagen.redact import remember
from tests.conftest import run, write_jsonl
from tests.fake_openai import FakeOpenAI
from tests.test_jsonl_input import case, lines


def loaded(path: Path, builder: str) -> list[dict[str, Any]]:
    """The rows as `datasets` loads them, in file order."""
    data = datasets.load_dataset(builder, data_files=str(path), split="train")
    return list(data.to_list())


def by_key(rows: list[dict[str, Any]]) -> list[str]:
    return sorted(json.dumps(r, sort_keys=True) for r in rows)  # rows finish in any order


@pytest.mark.parametrize(
    ("command", "more"),
    [
        ("sample", []),
        ("correct", []),
        ("inject", []),
        ("filter", []),
        ("export", ["-f", "sharegpt"]),
        ("export", ["-f", "dpo"]),
        ("grade", []),
    ],
)
def test_parquet_holds_what_jsonl_holds(
    command: str, more: list[str], fake: FakeOpenAI, tmp_path: Path
) -> None:
    rows, args = case(command, fake, tmp_path)
    if command == "export":
        args = [a for a in args if a not in ("-f", "alpaca")]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    jsonl, parquet = tmp_path / "out.jsonl", tmp_path / "out.parquet"
    assert run(command, str(source), *args, *more, "-o", str(jsonl)).exit_code == 0
    result = run(command, str(source), *args, *more, "-o", str(parquet))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    written = lines(jsonl.read_text(encoding="utf-8"))
    assert len(written) >= 2
    assert pq.ParquetFile(parquet).metadata.num_rows == len(written)
    # datasets loads both the same: one schema, the same values.
    from_parquet = loaded(parquet, "parquet")
    assert by_key(from_parquet) == by_key(loaded(jsonl, "json"))
    # Every value of every JSONL record is there (Parquet adds nulls for absent fields).
    assert by_key([_drop_nulls(r) for r in from_parquet]) == by_key(
        [_drop_nulls(json.loads(line)) for line in written]
    )


def test_parquet_output_reads_back_as_input(fake: FakeOpenAI, tmp_path: Path) -> None:
    rows, args = case("correct", fake, tmp_path)
    corrections = tmp_path / "corrections.parquet"
    assert run("correct", str(write_jsonl(tmp_path / "s.jsonl", rows)), *args,
               "-o", str(corrections)).exit_code == 0  # fmt: skip
    as_jsonl = run("correct", str(tmp_path / "s.jsonl"), *args)
    from_jsonl = run("filter", "-", "-q", input=as_jsonl.stdout)
    from_parquet = run("filter", str(corrections), "-q")
    assert from_parquet.exit_code == 0, from_parquet.stderr
    assert len(lines(from_jsonl.stdout)) >= 2
    assert lines(from_parquet.stdout) == lines(from_jsonl.stdout)


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None and v != {}}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def test_row_groups_are_written_as_records_come(tmp_path: Path) -> None:
    path = tmp_path / "out.parquet"
    writer = ParquetRecordWriter(str(path), row_group=2)
    for i in range(5):
        writer.write({"id": str(i), "n": i})
    part = Path(f"{path}.part0")
    assert part.stat().st_size > 100  # two row groups on disk before the file is closed
    assert not path.exists()
    writer.close()
    assert not part.exists()
    handle = pq.ParquetFile(path)
    assert handle.metadata.num_row_groups == 3
    assert handle.read().to_pylist() == [{"id": str(i), "n": i} for i in range(5)]


def test_schema_widens_with_later_records(tmp_path: Path) -> None:
    records: list[dict[str, Any]] = [
        {"id": "a", "meta": {"model": "m"}, "score": 1, "tags": []},
        {"id": "b", "meta": {}, "score": 2, "tags": ["x"]},
        {"id": "c", "meta": {"model": "m", "usage": {"prompt_tokens": 3}}, "score": 2.5},
        {"id": "d", "meta": {"model": "n"}, "score": 4, "tags": ["y"], "new": True},
        {"id": "e", "meta": {"model": "n"}, "score": 5},
    ]
    path = tmp_path / "out.parquet"
    writer = ParquetRecordWriter(str(path), row_group=2)
    for record in records:
        writer.write(record)
    writer.close()
    assert list(Path(tmp_path).iterdir()) == [path]  # the parts are gone
    rows = loaded(path, "parquet")
    assert [_drop_nulls(r) for r in rows] == [_drop_nulls(r) for r in records]
    assert rows[2]["meta"]["usage"] == {"prompt_tokens": 3}
    assert rows[0]["new"] is None


def test_a_field_of_two_types_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "out.parquet"
    writer = ParquetRecordWriter(str(path), row_group=1)
    writer.write({"id": "a", "level": 3})
    with pytest.raises(Exception, match=r"out\.parquet: cannot write these records as one") as err:
        writer.write({"id": "b", "level": "Level 3"})
    assert "\n" not in str(err.value)


def test_keys_are_redacted_in_parquet(tmp_path: Path) -> None:
    remember("secret-key-123456")
    path = tmp_path / "out.parquet"
    writer = ParquetRecordWriter(str(path))
    writer.write({"id": "a", "text": "it said secret-key-123456 and sk-abcdefghijklmnop"})
    writer.close()
    data = path.read_bytes()
    assert b"secret-key-123456" not in data
    assert b"sk-abcdefghijklmnop" not in data
    assert pq.read_table(path).to_pylist()[0]["text"].count("[redacted]") == 2


def test_rejects_stay_jsonl(tmp_path: Path) -> None:
    result = run("filter", "-", "--rejects", str(tmp_path / "r.parquet"), input="")
    assert result.exit_code == 2
    assert "--rejects is written as JSONL" in result.stderr
