"""sample --gold vote: problems without an answer take the answer most samples agree on."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import EXAMPLES, endpoint, load_jsonl, records, run, write_jsonl
from tests.fake_openai import FakeOpenAI


def _unanswered(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    rows = load_jsonl(EXAMPLES / "gsm8k.jsonl")
    gold = {r["question"]: r["answer"].split("####")[-1].strip() for r in rows}
    path = write_jsonl(tmp_path / "q.jsonl", [{"question": r["question"]} for r in rows])
    return path, gold


def test_the_majority_answer_becomes_gold(fake: FakeOpenAI, tmp_path: Path) -> None:
    """The tutor answers right, wrong, right: two of three samples agree on the real answer."""
    path, gold = _unanswered(tmp_path)
    result = run(
        "sample", str(path), "--task", "gsm8k", "--gold", "vote", "-m", "r", "-n", "3",
        "--keep", "all", *endpoint(fake),
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    samples = records(result)
    assert len(samples) == 30
    for s in samples:
        assert s["gold"] == gold[s["question"]]
        assert s["gold_vote"]["votes"] == 2
        assert s["gold_vote"]["samples"] == 3
        assert s["gold_vote"]["agreement"] == 0.6667
    assert sorted(s["verdict"] for s in samples) == ["correct"] * 20 + ["wrong"] * 10
    # Downstream stages take the voted gold like any other.
    corrected = records(run("correct", "-", "-m", "c", *endpoint(fake), input=result.stdout))
    fixes = [c for c in corrected if "correction_id" in c]
    assert len(fixes) == 10
    assert all(c["verdict"] == "correct" and c["gold_vote"]["votes"] == 2 for c in fixes)


def test_no_agreement_is_set_aside(fake: FakeOpenAI, tmp_path: Path) -> None:
    path, _ = _unanswered(tmp_path)
    for args, detail in (
        (["-n", "4"], "a tie"),  # right, wrong, right, wrong
        (["-n", "3", "--min-agreement", "0.9"], "agreement 0.6667 < 0.9"),
    ):
        rejects = tmp_path / "r.jsonl"
        result = run(
            "sample", str(path), "--task", "gsm8k", "--gold", "vote", "-m", "r", *args,
            "--rejects", str(rejects), "--base-url", fake.base_url,
        )  # fmt: skip
        assert result.exit_code == 0, result.stderr
        assert records(result) == []
        set_aside = load_jsonl(rejects)
        assert [r["reason"] for r in set_aside] == ["no_agreement"] * 10
        assert all(detail in r["detail"] for r in set_aside)
        assert "10 no agreement" in result.stderr


def test_given_gold_is_used_when_there_is_one(fake: FakeOpenAI) -> None:
    result = run(
        "sample", str(EXAMPLES / "gsm8k.jsonl"), "--gold", "vote", "-m", "r", "-n", "4",
        *endpoint(fake),
    )  # fmt: skip
    rows = records(result)
    assert len(rows) == 10
    assert all("gold_vote" not in r for r in rows)


def test_vote_needs_a_task(tmp_path: Path) -> None:
    path, _ = _unanswered(tmp_path)
    result = run("sample", str(path), "--gold", "vote", "-m", "r", "--dry-run")
    assert result.exit_code == 1
    assert "missing field 'answer' (give --task to vote a gold answer)" in result.stderr
