"""Answer checks in several processes (`--workers`): as many checker children as workers, the
same output byte for byte and in input order whatever the count, and a check that runs out of
time costs only its own child."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lemagen.math.grading import Grader
from tests.conftest import DATA, load_jsonl, run, write_jsonl

PATHOLOGICAL = "9^{9^{9^{9}}}"


def math_outputs() -> list[dict[str, Any]]:
    """MATH-500 rows answered by their own solutions (correct) and by the next row's answer
    (mostly wrong)."""
    rows = load_jsonl(DATA / "math500_slice.jsonl")
    bodies = [row["answer"].rsplit("The answer is:", 1)[0] for row in rows]
    answers = [row["answer"].rsplit("The answer is:", 1)[1].strip() for row in rows]
    out = []
    for i, row in enumerate(rows):
        out.append({"question": row["question"], "answer": row["answer"], "response": bodies[i]})
        other = answers[(i + 1) % len(rows)]
        out.append(
            {
                "question": row["question"],
                "answer": row["answer"],
                "response": f"$\\boxed{{{other}}}$",
            }
        )
    return out


def test_grade_output_is_the_same_with_one_or_several_workers(tmp_path: Path) -> None:
    rows = math_outputs()
    path = write_jsonl(tmp_path / "outputs.jsonl", rows)
    outputs = []
    for workers in ("1", "3"):
        result = run(
            "grade", str(path), "--task", "math", "--workers", workers, "--check-timeout", "60"
        )
        assert result.exit_code == 0, result.stderr
        outputs.append(result.stdout)
    assert outputs[0] == outputs[1]
    lines = outputs[0].splitlines()
    assert len(lines) == len(rows) == 120
    # Input order (a generous limit: no check may time out in one run and not the other).
    assert [
        line.count(f'"response":"{_json(r["response"])}"')
        for line, r in zip(lines, rows, strict=True)
    ] == [1] * 120
    verdicts = [line.rsplit('"verdict":"', 1)[1].split('"', 1)[0] for line in lines]
    assert verdicts.count("timeout") == 0
    assert verdicts[0::2][:3] == ["correct", "correct", "correct"]
    assert verdicts.count("correct") >= 60


def _json(text: str) -> str:
    import json

    return json.dumps(text, ensure_ascii=False)[1:-1]


def test_a_grader_runs_one_checker_child_per_worker() -> None:
    with Grader(timeout=1.0, workers=3) as grader:
        checks = [
            ("math", "\\frac{1}{2}", "$\\boxed{0.5}$"),
            ("math", "5", f"\\boxed{{{PATHOLOGICAL}}}"),
        ]
        checks += [
            ("math", f"\\sqrt{{{k * k * 2}}}", f"$\\boxed{{{k}\\sqrt{{2}}}}$") for k in range(2, 8)
        ]
        grades = list(grader.grade_many(checks))
        worker = grader._worker._proc
        assert worker is not None
        children = _children(worker.pid)
        assert len(children) == 3
    assert [g.verdict for g in grades] == ["correct", "timeout"] + ["correct"] * 6
    assert [g.pred for g in grades][:2] == ["0.5", PATHOLOGICAL]
    assert not any(_alive(pid) for pid in children)


def _children(pid: int) -> set[int]:
    with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as handle:
        return {int(p) for p in handle.read().split()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
