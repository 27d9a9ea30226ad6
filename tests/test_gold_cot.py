"""Gold CoT records (methods.md §0.3, §1.8): the dataset's own solutions in LEMA's CoT form, and
LEMA's whole training mix (gold CoT, correct sampled CoT, corrections) from one command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lemagen.lema.formats import LEMA_COT_PROMPT
from lemagen.lema.gold_cot import gold_cot, render_gsm8k
from lemagen.records.problems import ProblemReader
from tests.conftest import DATA, EXAMPLES, endpoint, load_jsonl, records, run
from tests.fake_openai import FakeOpenAI


def test_natalia_is_rendered_exactly_as_lema_prints_it() -> None:
    """GSM8K train #1 (examples/gsm8k.jsonl line 1) against methods.md §0.3's verified string."""
    row = load_jsonl(EXAMPLES / "gsm8k.jsonl")[0]
    record = gold_cot(ProblemReader().read(row, "examples/gsm8k.jsonl:1"))
    assert record is not None
    assert record.completion == (
        "Natalia sold 48 / 2 = 24 clips in May. Natalia sold 48 + 24 = 72 clips altogether in "
        "April and May. The answer is 72."
    )
    assert record.prompt == LEMA_COT_PROMPT.format(question=row["question"])


@pytest.mark.parametrize(
    ("rationale", "rendered"),
    [
        pytest.param(
            "She has 3+4 = <<3+4=7>>7 apples\n#### 7",
            "She has 3 + 4 = 7 apples. The answer is 7.",
            id="annotation-and-missing-period",
        ),
        pytest.param(
            "It costs 2,000-125=1,875 dollars.\n#### 1,875",
            "It costs 2,000 - 125 = 1,875 dollars. The answer is 1875.",
            id="commas-in-the-final-number-only",
        ),
        pytest.param(
            "One-quarter of 8 is 8/4=2.\nSo 2*3 = 6.\n#### 6",
            "One - quarter of 8 is 8 / 4 = 2. So 2 * 3 = 6. The answer is 6.",
            id="every-operator-spaced",
        ),
        pytest.param("no final line", None, id="no-final-line"),
    ],
)
def test_gsm8k_rendering_rules(rationale: str, rendered: str | None) -> None:
    assert render_gsm8k(rationale) == rendered


def test_math_solution_states_its_answer() -> None:
    rows = load_jsonl(DATA / "math500_slice.jsonl")[:5]
    reader = ProblemReader()
    for i, row in enumerate(rows, 1):
        problem = reader.read(row, f"m:{i}")
        record = gold_cot(problem)
        assert record is not None
        lines = record.completion.splitlines()
        assert lines[-1] == f"The answer is {problem.gold}."
        assert "The answer is:" not in record.completion
        assert "\\boxed" in record.completion


def test_every_gsm8k_training_slice_row_renders() -> None:
    result = run(
        "export", "/dev/null", "-f", "cot", "--gold-cot", str(DATA / "gsm8k_train_slice.jsonl")
    )
    out = records(result)
    assert len(out) == 40
    for row in out:
        assert "<<" not in row["completion"]
        assert "####" not in row["completion"]
        assert row["completion"].endswith(".")
        assert row["completion"].split("The answer is ")[-1][:-1].isdigit()
    assert "gold_cot 40" in result.stderr


def test_one_command_writes_lemas_whole_mix(fake: FakeOpenAI, tmp_path: Path) -> None:
    problems = EXAMPLES / "gsm8k.jsonl"
    sampled = run("sample", str(problems), "-m", "r", "-n", "4", "--keep", "all", *endpoint(fake))
    corrected = run("correct", "-", "-m", "c", *endpoint(fake), input=sampled.stdout)
    result = run(
        "export", "-", "-f", "lema", "--mix", "--gold-cot", str(problems), "--seed", "1",
        input=corrected.stdout,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    rows = records(result)
    cot = [r for r in rows if r["prompt"].startswith("Please solve")]
    corrections = [r for r in rows if r["prompt"].startswith("For the following")]
    made = [gold_cot(ProblemReader().read(r, "x:1")) for r in load_jsonl(problems)]
    gold = {json.dumps(g.to_dict(), ensure_ascii=False) for g in made if g is not None}
    assert len(gold) == 10
    assert gold <= {
        json.dumps(r, ensure_ascii=False) for r in cot
    }  # every gold CoT record is in the mix
    assert len(cot) == 10 + 10  # gold + one distinct correct sample per question
    assert len(corrections) == 10
    assert "gold_cot 10" in result.stderr
    shuffled = run(
        "export", "-", "-f", "lema", "--mix", "--gold-cot", str(problems), "--seed", "2",
        input=corrected.stdout,
    )  # fmt: skip
    assert sorted(shuffled.stdout.splitlines()) == sorted(result.stdout.splitlines())
    assert shuffled.stdout != result.stdout


def test_gold_cot_needs_cot_or_mix() -> None:
    result = run("export", "/dev/null", "-f", "alpaca", "--gold-cot", str(EXAMPLES / "gsm8k.jsonl"))
    assert result.exit_code == 2
    assert "--gold-cot applies to --format cot" in result.stderr
