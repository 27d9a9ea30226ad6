"""LEMMA trajectories (`export -f lemma`): Fix & Continue, Fresh & Restart, their mix by
--restart-rate, and explanations whose step numbers are rewritten for unnumbered text. Input:
the offline inject pipeline on real GSM8K rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lemagen.lema.gold_cot import gold_cot
from lemagen.lemma.trajectories import RESTARTS, TRANSITIONS, unnumbered
from lemagen.math.grading import Grader
from lemagen.records.problems import ProblemReader
from tests.conftest import DATA, load_jsonl, records, run


@pytest.fixture
def injected(tmp_path: Path) -> Path:
    result = run("inject", str(DATA / "gsm8k_train_slice.jsonl"), "--per-question", "2", "-q")
    assert result.exit_code == 0
    assert len(records(result)) > 60
    path = tmp_path / "injected.jsonl"
    path.write_text(result.stdout)
    return path


def export(path: Path, *args: str) -> list[dict[str, Any]]:
    result = run("export", str(path), *args)
    assert result.exit_code == 0, result.stderr
    return records(result)


def test_lemma_fix_and_continue(injected: Path, grader: Grader) -> None:
    rows = export(injected, "-f", "lemma", "--seed", "4", "--restart-rate", "0")
    source = load_jsonl(injected)
    assert len(rows) == len(source)
    used = set()
    for row, record in zip(rows, source, strict=True):
        assert set(row) == {"instruction", "input", "output"}
        assert row["instruction"] == record["question"]
        k = record["incorrect_step"]
        wrong_prefix = " ".join(record["original"]["steps"][:k])  # through the incorrect step
        assert row["output"].startswith(wrong_prefix + " ")
        phrase = next(p for p in TRANSITIONS if p in row["output"])
        used.add(phrase)
        assert row["output"].index(phrase) == len(wrong_prefix) + 1
        explanation = unnumbered(record["explanation"], k)
        assert "Step" not in explanation
        fixed = record["corrected_steps"]
        assert row["output"].endswith(f"{phrase} {explanation} {' '.join(fixed)}")
        assert not any(p in row["output"] for p in RESTARTS)
        assert grader.grade("gsm8k", record["gold"], row["output"]).verdict == "correct"
    assert len(used) > 3  # the phrases vary


def test_lemma_fresh_and_restart_solves_again_from_the_start(
    injected: Path, grader: Grader
) -> None:
    rows = export(injected, "-f", "lemma", "--seed", "4", "--restart-rate", "1")
    source = load_jsonl(injected)
    assert len(rows) == len(source)
    for row, record in zip(rows, source, strict=True):
        k = record["incorrect_step"]
        wrong_prefix = " ".join(record["original"]["steps"][:k])
        assert row["output"].startswith(wrong_prefix + " ")
        doubt = next(p for p in TRANSITIONS if p in row["output"])
        restart = next(p for p in RESTARTS if p in row["output"])
        explanation = unnumbered(record["explanation"], k)
        problem = {"question": record["question"], "answer": _gsm8k_answer(record["question"])}
        fresh = gold_cot(ProblemReader().read(problem, "t:1"))
        assert fresh is not None
        assert row["output"] == (
            f"{wrong_prefix} {doubt} {explanation} {restart} {fresh.completion}"
        )
        assert grader.grade("gsm8k", record["gold"], row["output"]).verdict == "correct"


def _gsm8k_answer(question: str) -> str:
    rows = load_jsonl(DATA / "gsm8k_train_slice.jsonl")
    return str(next(r["answer"] for r in rows if r["question"] == question))


def test_restart_rate_mixes_both_per_row_with_the_seed(injected: Path) -> None:
    first = run("export", str(injected), "-f", "lemma", "--seed", "7", "--restart-rate", "0.5")
    again = run("export", str(injected), "-f", "lemma", "--seed", "7", "--restart-rate", "0.5")
    other = run("export", str(injected), "-f", "lemma", "--seed", "8", "--restart-rate", "0.5")
    assert first.stdout == again.stdout != other.stdout
    restarts = sum(any(p in r["output"] for p in RESTARTS) for r in records(first))
    assert 0.3 * len(records(first)) < restarts < 0.7 * len(records(first))
    assert f"restart {restarts}" in first.stderr
    fixes = export(injected, "-f", "lemma", "--seed", "7", "--restart-rate", "0")
    # A row that fixes at 0.5 is the very row written at rate 0: the rate only picks.
    assert {r["output"] for r in records(first)} - {r["output"] for r in fixes} == {
        r["output"] for r in records(first) if any(p in r["output"] for p in RESTARTS)
    }


def test_restart_rate_is_for_lemma_only(injected: Path) -> None:
    result = run("export", str(injected), "-f", "alpaca", "--restart-rate", "0.5")
    assert result.exit_code == 2
    assert "--restart-rate applies to --format lemma only" in result.stderr


@pytest.mark.parametrize(
    ("explanation", "k", "expected"),
    [
        pytest.param(
            "Step 3 multiplies the cookie price by the number of muffins (40) instead of the "
            "number of cookies (80) found in Step 1.",
            3,
            "This step multiplies the cookie price by the number of muffins (40) instead of the "
            "number of cookies (80) found in an earlier step.",
            id="lema-example",
        ),
        pytest.param("The error is in step 2.", 2, "The error is in the step above.", id="in"),
        pytest.param(
            "Steps 1 and 2 are right; step 3 adds.", 3,
            "The earlier steps are right; this step adds.", id="several-earlier",
        ),
        pytest.param("as Step 4 shows", 2, "as a later step shows", id="later"),
        pytest.param("Steps 2-3 repeat it", 2, "These steps repeat it", id="range-across"),
        pytest.param("Step 3's result is off.", 3, "This step's result is off.", id="possessive"),
        pytest.param("Two steps later it adds 5.", 1, "Two steps later it adds 5.", id="no-number"),
        pytest.param(
            "STEP 1 is right; STEP 2 adds.", 2,
            "An earlier step is right; this step adds.", id="upper-case",
        ),
        pytest.param(
            "Step two adds 4 to the total of step one.", 2,
            "This step adds 4 to the total of an earlier step.", id="spelled-out",
        ),
        pytest.param(
            "Steps one and two are right", 3, "The earlier steps are right", id="spelled-out-list"
        ),
        pytest.param(
            "The error is in Step 2's sum.", 2, "The error is in that step's sum.",
            id="possessive-after-in",
        ),
        pytest.param(
            "Step 10 adds what step nine found", 10, "This step adds what an earlier step found",
            id="ten-and-nine",
        ),
    ],
)  # fmt: skip
def test_step_references_read_without_numbers(explanation: str, k: int, expected: str) -> None:
    assert unnumbered(explanation, k) == expected
