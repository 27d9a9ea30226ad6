"""Every command reads JSONL (plain, gzip, zstd), Parquet, CSV and Hugging Face datasets (a
`save_to_disk` directory, or `hf:NAME[:CONFIG]:SPLIT`) and writes the same records as from
JSONL; a bad row keeps its one-line `file:line` or `file:row N` error. The Parquet, CSV and
dataset inputs are built here from the test data; nothing reaches the network (conftest sets
HF_DATASETS_OFFLINE)."""

from __future__ import annotations

import csv
import gzip
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from tests.conftest import DATA, run, write_jsonl
from tests.fake_openai import FakeOpenAI
from tests.test_jsonl_input import COMMANDS, case, lines

# Every record of the flat commands' inputs is flat (text fields): those also go through CSV.
FLAT = ("sample", "grade", "inject")


def write_as(fmt: str, rows: list[dict[str, Any]], tmp_path: Path) -> Path:
    """`rows` written in `fmt`, as a user would have them."""
    text = "".join(json.dumps(r) + "\n" for r in rows)
    if fmt == "jsonl.gz":
        path = tmp_path / "rows.jsonl.gz"
        path.write_bytes(gzip.compress(text.encode()))
    elif fmt == "jsonl.zst":
        path = tmp_path / "rows.jsonl.zst"
        path.write_bytes(zstandard.ZstdCompressor().compress(text.encode()))
    elif fmt == "parquet":
        path = tmp_path / "rows.parquet"
        pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=2)
    elif fmt == "csv":
        path = tmp_path / "rows.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    elif fmt == "dataset":
        path = tmp_path / "rows_dataset"
        datasets.Dataset.from_list(rows).save_to_disk(str(path))
    else:
        raise AssertionError(fmt)
    return path


FORMATS = ["jsonl.gz", "jsonl.zst", "parquet", "csv", "dataset"]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("command", COMMANDS)
def test_every_format_gives_the_jsonl_records(
    command: str, fmt: str, fake: FakeOpenAI, tmp_path: Path
) -> None:
    if fmt == "csv" and command not in FLAT:
        pytest.skip("CSV holds flat rows (problems), not nested records")
    rows, args = case(command, fake, tmp_path)
    assert len(rows) >= 3
    expected = run(command, str(write_jsonl(tmp_path / "rows.jsonl", rows)), *args)
    assert expected.exit_code == 0, expected.stderr
    assert len(lines(expected.stdout)) >= (1 if command == "stats" else 3)

    path = write_as(fmt, rows, tmp_path)
    result = run(command, str(path), *args)
    assert result.exit_code == 0, result.stderr
    assert lines(result.stdout) == lines(expected.stdout)


def test_format_by_option_whatever_the_name(tmp_path: Path) -> None:
    rows = json.loads((DATA / "gsm8k_train_slice.jsonl").read_text().splitlines()[0])
    path = write_as("csv", [rows], tmp_path).rename(tmp_path / "problems.txt")
    as_jsonl = run("inject", str(path), "-q")
    assert as_jsonl.exit_code == 1
    assert as_jsonl.stderr.startswith(f"Error: {path}:1: invalid JSON")
    as_csv = run("inject", str(path), "-q", "--input-format", "csv")
    assert as_csv.exit_code == 0, as_csv.stderr
    assert len(lines(as_csv.stdout)) == 1


def problems() -> list[dict[str, Any]]:
    text = (DATA / "gsm8k_train_slice.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()][:4]


@pytest.mark.parametrize(
    ("fmt", "where"),
    [("parquet", "rows.parquet:row 3"), ("dataset", "rows_dataset:row 3"), ("csv", "rows.csv:")],
)
def test_a_bad_row_is_named_by_row_or_line(fmt: str, where: str, tmp_path: Path) -> None:
    rows = problems()
    rows[0]["question"] = "A question\nover two lines?"  # CSV rows span several lines
    rows[2]["answer"] = ""
    path = write_as(fmt, rows, tmp_path)
    if fmt == "csv":  # the line the third row starts on
        text = path.read_text(encoding="utf-8")
        where += str(text[: text.index(rows[2]["question"])].count("\n") + 1)
        assert int(where.split(":")[1]) > 4
    result = run("inject", str(path), "-q")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [f"Error: {tmp_path / where}: missing field 'answer'"]

    rejects = tmp_path / "rejects.jsonl"
    skipping = run("inject", str(path), "-q", "--skip-bad-rows", "--rejects", str(rejects))
    assert skipping.exit_code == 0, skipping.stderr
    reasons = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [r["detail"] for r in reasons if r["reason"] == "missing_field"] == [
        f"{tmp_path / where}: missing field 'answer'"
    ]


def test_csv_rows_of_the_wrong_width(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text('question,answer\n"What is 1+1?","#### 2"\n\n"too",short,row\n')
    result = run("inject", str(path), "-q")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [f"Error: {path}:4: 3 fields, the header has 2"]


def test_corrupt_compressed_input_is_one_line(tmp_path: Path) -> None:
    text = (DATA / "gsm8k_train_slice.jsonl").read_bytes()
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(gzip.compress(text)[:-40])
    result = run("inject", str(path), "-q")
    assert result.exit_code == 1
    (message,) = result.stderr.splitlines()
    assert message.startswith(f"Error: {path}: corrupt gzip data after line ")
    # gzip or zstd is told by its first bytes, not its name.
    named = tmp_path / "named.jsonl"
    named.write_bytes(zstandard.ZstdCompressor().compress(text))
    assert lines(run("inject", str(named), "-q").stdout) == lines(
        run("inject", str(DATA / "gsm8k_train_slice.jsonl"), "-q").stdout
    )


def test_not_parquet(tmp_path: Path) -> None:
    path = tmp_path / "p.parquet"
    path.write_text('{"question": "q", "answer": "#### 1"}\n')
    result = run("inject", str(path), "-q")
    assert result.exit_code == 1
    (message,) = result.stderr.splitlines()
    assert message.startswith(f"Error: {path}: not a Parquet file: ")


def test_dataset_with_splits_names_them(tmp_path: Path) -> None:
    rows = problems()
    path = tmp_path / "dd"
    datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(rows), "test": datasets.Dataset.from_list(rows[:1])}
    ).save_to_disk(str(path))
    result = run("inject", str(path), "-q")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"Error: {path}: a dataset with splits test, train: give one, e.g. {path / 'test'}"
    ]
    one = run("inject", str(path / "train"), "-q")
    assert one.exit_code == 0, one.stderr
    jsonl = run("inject", str(write_jsonl(tmp_path / "p.jsonl", rows)), "-q")
    assert len(lines(jsonl.stdout)) >= 3
    assert lines(one.stdout) == lines(jsonl.stdout)


def test_hub_names(tmp_path: Path) -> None:
    bad = run("inject", "hf:gsm8k", "-q")
    assert bad.exit_code == 1
    assert bad.stderr.splitlines() == [
        "Error: hf:gsm8k: expected hf:NAME[:CONFIG]:SPLIT, e.g. hf:openai/gsm8k:main:train"
    ]
    # Offline (conftest): a dataset not in the cache is a one-line error, without a traceback.
    result = subprocess.run(
        [sys.executable, "-m", "lemagen", "inject", "hf:lemagen-tests/none:main:train", "-q"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    (message,) = result.stderr.splitlines()
    assert message.startswith("Error: hf:lemagen-tests/none:main:train: cannot load the dataset")
    assert "offline" in message.lower()


@pytest.mark.parametrize(
    ("module", "fmt", "extra"),
    [
        ("datasets", "dataset", "hf"),
        ("pyarrow", "parquet", "parquet"),
        ("zstandard", "jsonl.zst", "zstd"),
    ],
)
def test_a_missing_extra_is_named(
    module: str, fmt: str, extra: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_as(fmt, problems(), tmp_path)
    for name in list(sys.modules):
        if name == module or name.startswith(module + "."):
            monkeypatch.setitem(sys.modules, name, None)  # as if not installed
    result = run("inject", str(path), "-q")
    assert result.exit_code == 1
    (message,) = result.stderr.splitlines()
    assert message.startswith(f"Error: {path}")
    assert message.endswith(
        f"this needs {module}, which is not installed: pip install 'lemagen[{extra}]'"
    )


def test_tsv_and_compressed_csv(tmp_path: Path) -> None:
    rows = problems()
    expected = lines(run("inject", str(write_jsonl(tmp_path / "p.jsonl", rows)), "-q").stdout)
    assert len(expected) >= 3
    tsv = tmp_path / "p.tsv"
    with tsv.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter="\t")
        writer.writeheader()
        writer.writerows(rows)
    assert lines(run("inject", str(tsv), "-q").stdout) == expected
    gz = tmp_path / "p.csv.gz"
    gz.write_bytes(gzip.compress(write_as("csv", rows, tmp_path).read_bytes()))
    assert lines(run("inject", str(gz), "-q").stdout) == expected
