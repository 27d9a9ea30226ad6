"""Metadata travels: every input field lemagen does not use (a dataset's `level`, `type`, an id
under another name) is carried in `source` through sample, correct, inject and their rejects,
can be written beside any export format (`--keep-fields`), and `stats --by` breaks the funnel
down by it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import DATA, endpoint, load_jsonl, records, run, write_jsonl
from tests.fake_openai import FakeOpenAI

LEVELS = ["Level 1", "Level 2", "Level 3"]


def _math_rows(tmp_path: Path) -> tuple[Path, list[dict[str, Any]]]:
    """Real MATH-500 problems in the Hendrycks MATH shape, with level, type and unique_id."""
    rows = []
    for i, row in enumerate(load_jsonl(DATA / "math500_slice.jsonl")[:12]):
        rows.append(
            {
                "problem": row["question"],
                "solution": row["answer"],
                "level": LEVELS[i % 3],
                "type": "Algebra" if i % 2 else "Geometry",
                "unique_id": f"test/{i}.json",
            }
        )
    return write_jsonl(tmp_path / "math.jsonl", rows), rows


def test_input_fields_travel_through_every_stage(fake: FakeOpenAI, tmp_path: Path) -> None:
    path, rows = _math_rows(tmp_path)
    by_id = {r["unique_id"]: r for r in rows}
    rejects = tmp_path / "sample-rejects.jsonl"
    sampled = run(
        "sample", str(path), "-m", "r", "-n", "4", "--keep", "all", "--id-field", "unique_id",
        "--rejects", str(rejects), *endpoint(fake),
    )  # fmt: skip
    assert sampled.exit_code == 0, sampled.stderr
    samples = records(sampled)
    assert len(samples) >= 24
    for sample in samples:
        original = by_id[sample["id"]]
        assert sample["source"] == {"level": original["level"], "type": original["type"]}
    for reject in load_jsonl(rejects):
        assert reject["record"]["source"]["level"] in LEVELS

    corrected = run("correct", "-", "-m", "c", *endpoint(fake), input=sampled.stdout)
    assert corrected.exit_code == 0, corrected.stderr
    corrections = [r for r in records(corrected) if "correction_id" in r]
    assert len(corrections) >= 12
    assert all(c["source"] == samples_source(samples, c["id"]) for c in corrections)

    exported = run(
        "export", "-", "-f", "alpaca", "--mix", "--keep-fields", "level,type,id,nothing",
        input=corrected.stdout,
    )  # fmt: skip
    out = records(exported)
    assert len(out) >= 24
    for row in out:
        assert set(row) == {"instruction", "input", "output", "level", "type", "id", "nothing"}
        assert row["level"] == by_id[row["id"]]["level"]
        assert row["nothing"] is None
    pairs = records(
        run("export", "-", "-f", "dpo", "--keep-fields", "level", input=corrected.stdout)
    )
    assert pairs
    assert all(p["level"] in LEVELS for p in pairs)

    stats = run("stats", "-", "--json", "--by", "level", input=corrected.stdout)
    report = json.loads(stats.stdout)
    groups = report["by"]["groups"]
    assert report["by"]["field"] == "level"
    assert sorted(groups) == LEVELS
    assert sum(g["problems"] for g in groups.values()) == report["funnel"]["problems"]
    assert sum(g["samples"] for g in groups.values()) == report["funnel"]["samples"]
    assert sum(g["kept"] for g in groups.values()) == report["funnel"]["kept"]
    assert all(g["problems"] == 4 for g in groups.values())  # 12 problems, levels in turn
    assert "by level:" in run("stats", "-", "--by", "level", input=corrected.stdout).stderr


def samples_source(samples: list[dict[str, Any]], problem_id: str) -> dict[str, Any]:
    return next(s["source"] for s in samples if s["id"] == problem_id)


def test_inject_and_retry_records_carry_the_source(tmp_path: Path) -> None:
    rows = [
        {**row, "origin": "gsm8k-train", "row": i}
        for i, row in enumerate(load_jsonl(DATA / "gsm8k_train_slice.jsonl")[:10])
    ]
    path = write_jsonl(tmp_path / "p.jsonl", rows)
    injected = records(run("inject", str(path)))
    assert len(injected) >= 8
    assert all(r["source"]["origin"] == "gsm8k-train" for r in injected)
    retry = records(run("inject", str(path), "--format", "retry"))
    assert [r["source"]["row"] for r in retry] == list(range(10))


def test_records_without_extra_fields_have_no_source(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", load_jsonl(DATA / "gsm8k_train_slice.jsonl")[:3])
    assert all("source" not in r for r in records(run("inject", str(path))))


def test_a_missing_id_field_names_the_place(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", [{"question": "q", "answer": "#### 1"}])
    result = run("inject", str(path), "--id-field", "uid")
    assert result.exit_code == 1
    assert result.stderr == f"Error: {path}:1: missing field 'uid' (--id-field)\n"
