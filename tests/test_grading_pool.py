"""Answer checks in several processes (`--workers`): as many checker children as workers, the
same output byte for byte and in input order whatever the count, and a check that runs out of
time costs only its own child."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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


ROOMY = 300.0  # a limit for checks that must finish, which no loaded machine comes near


def test_a_grader_runs_one_checker_child_per_worker() -> None:
    """Three workers: three checker children; a check that runs out of time has its own child
    killed and replaced, and the other two stay."""
    with Grader(timeout=ROOMY, workers=3) as grader:
        checks = [("math", "\\frac{1}{2}", "$\\boxed{0.5}$")]
        checks += [
            ("math", f"\\sqrt{{{k * k * 2}}}", f"$\\boxed{{{k}\\sqrt{{2}}}}$") for k in range(2, 8)
        ]
        grades = list(grader.grade_many(checks))
        worker = grader._worker._proc
        assert worker is not None
        children = _children(worker.pid)
        assert len(children) == 3
        grader.timeout = 1.0  # the pathological check never finishes
        (stuck,) = grader.grade_many([("math", "5", f"\\boxed{{{PATHOLOGICAL}}}")])
        after = _children(worker.pid)
        assert grader._worker._proc is worker
    assert [g.verdict for g in grades] == ["correct"] * 7
    assert grades[0].pred == "0.5"
    assert (stuck.pred, stuck.verdict) == (PATHOLOGICAL, "timeout")
    assert len(after) == 3
    assert len(after & children) == 2
    assert not any(_alive(pid) for pid in children | after)


def test_a_check_that_runs_out_of_time_holds_up_only_its_own_child() -> None:
    """The worker's own protocol (`[id, gold, pred, timeout]` a line) takes a limit per
    check: one that never finishes, with a limit of a second, beside a stream of checks with
    all the time they need, two always in flight on the other children. When the stuck one
    is killed at its limit (and its child replaced), those in flight go on: every one of them
    is answered, and correct."""
    legit = [(f"\\sqrt{{{k * k * 2}}}", f"{k}\\sqrt{{2}}") for k in range(2, 8)]
    with subprocess.Popen(
        [sys.executable, "-m", "lemagen.math._mathworker", "3"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdin is not None
        assert proc.stdout is not None
        stdin, stdout = proc.stdin, proc.stdout

        def send(request: list[object]) -> None:
            stdin.write(json.dumps(request) + "\n")
            stdin.flush()

        try:
            assert json.loads(stdout.readline()) == {"ready": True}
            children = _children(proc.pid)
            send([0, "5", PATHOLOGICAL, 1.0])
            sent = 1
            replies: dict[int, dict[str, object]] = {}
            while 0 not in replies or len(replies) < sent:
                while 0 not in replies and sent - len(replies) < 3:  # the stuck one, two more
                    gold, pred = legit[sent % len(legit)]
                    send([sent, gold, pred, ROOMY])
                    sent += 1
                reply = json.loads(stdout.readline())
                replies[reply.pop("id")] = reply
                assert sent < 100_000, "the stuck check was never stopped"
            after = _children(proc.pid)
            stdin.close()
            assert proc.wait(timeout=ROOMY) == 0
        finally:
            proc.kill()
    assert replies.pop(0) == {"timeout": True}
    assert len(replies) >= 2
    assert [reply.get("equal") for reply in replies.values()] == [True] * len(replies)
    assert len(children) == len(after) == 3
    assert len(after & children) == 2
    assert not any(_alive(pid) for pid in children | after)


def _children(pid: int) -> set[int]:
    with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as handle:
        return {int(p) for p in handle.read().split()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
