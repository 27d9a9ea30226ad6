from __future__ import annotations

import pytest

from lemagen.errors import InputError
from lemagen.records.problems import ProblemReader, detect_task, read_gold
from tests.conftest import DATA, load_jsonl


def test_gsm8k_rows() -> None:
    reader = ProblemReader()
    rows = load_jsonl(DATA / "gsm8k_train_slice.jsonl")
    problems = [reader.read(row, f"f:{i}") for i, row in enumerate(rows, 1)]
    assert reader.task == "gsm8k"
    assert all(p.task == "gsm8k" for p in problems)
    assert all(
        p.gold == row["answer"].split("####")[-1].strip().replace(",", "")
        for p, row in zip(problems, rows, strict=True)
    )
    assert len({p.id for p in problems}) == len(problems)


def test_math500_rows() -> None:
    reader = ProblemReader()
    problems = [
        reader.read(r, f"f:{i}") for i, r in enumerate(load_jsonl(DATA / "math500_slice.jsonl"), 1)
    ]
    assert reader.task == "math"
    assert problems[0].gold == "\\left( 3, \\frac{\\pi}{2} \\right)"


def test_hendrycks_math_shape() -> None:
    row = {"problem": "What is $1+1$?", "solution": "Clearly $1+1=\\boxed{2}$.", "level": "Level 1"}
    problem = ProblemReader().read(row, "f:1")
    assert (problem.task, problem.question, problem.gold) == (
        "math",
        "What is $1+1$?",
        "2",
    )


@pytest.mark.parametrize(
    ("row", "fields", "task", "gold"),
    [
        ({"q": "How many?", "a": 42}, ("q", "a"), "gsm8k", "42"),
        ({"q": "Half?", "a": "\\frac{1}{2}"}, ("q", "a"), "math", "\\frac{1}{2}"),
        ({"q": "Half?", "a": "$\\frac{1}{2}$"}, ("q", "a"), "math", "\\frac{1}{2}"),
    ],
)
def test_custom_fields_with_bare_gold(
    row: dict[str, object], fields: tuple[str, str], task: str, gold: str
) -> None:
    problem = ProblemReader(question_field=fields[0], answer_field=fields[1]).read(row, "f:1")
    assert (problem.task, problem.gold) == (task, gold)


def test_id_is_kept_or_derived_stably() -> None:
    row = {"question": "How many?", "answer": "#### 3"}
    first = ProblemReader().read(row, "f:1").id
    assert first == ProblemReader().read(dict(row), "f:9").id
    assert ProblemReader().read({**row, "id": "abc"}, "f:1").id == "abc"
    assert ProblemReader().read({**row, "question": "How few?"}, "f:1").id != first


@pytest.mark.parametrize(
    ("row", "message", "reason"),
    [
        ({"answer": "#### 3"}, "f.jsonl:7: missing field 'question'", "missing_field"),
        ({"question": "q"}, "f.jsonl:7: missing field 'answer'", "missing_field"),
        (
            {"question": "q", "answer": "#### many"},
            "f.jsonl:7: cannot read a gsm8k gold answer",
            "bad_gold",
        ),
        (
            {"question": "q", "answer": "#### 3", "task": "chess"},
            "f.jsonl:7: unknown task 'chess'",
            "unknown_task",
        ),
    ],
)
def test_bad_rows(row: dict[str, object], message: str, reason: str) -> None:
    with pytest.raises(InputError) as err:
        ProblemReader().read(row, "f.jsonl:7")
    assert err.value.format_message().startswith(message)
    assert err.value.reason == reason


def test_detect_and_read_gold() -> None:
    assert detect_task("a\n#### 5") == "gsm8k"
    assert detect_task("so \\boxed{5}") == "math"
    assert read_gold("math", "long solution\nwith no box at all " * 5) is None
