"""`lemagen crosscheck` against the loopback server answering as a coder, and the
`--require-pot-agreement` options of `filter` and `export` that use what it writes."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lemagen.cotnpot import sandbox
from lemagen.cotnpot.programs import extract_program, printed_answer
from lemagen.records import Correction, Pot, Sample, read_sample_or_correction
from tests.conftest import EXAMPLES, load_jsonl, records, run
from tests.fake_openai import FakeOpenAI, Reply

GSM8K = str(EXAMPLES / "gsm8k.jsonl")
# Programs that finish get room on a loaded machine; the hanging one is stopped after 1 s.
ROOM = ["--program-timeout", "10"]

# What the coder writes, given the question and the solution's final answer.
PROGRAMS: dict[str, Callable[[str, str], str]] = {
    "agree": lambda q, a: (
        f"```python\nfrom fractions import Fraction\nx = Fraction({a})\nprint(x)\n```"
    ),
    "disagree": lambda q, a: f"```python\nprint({a} + 1)\n```",
    "crash": lambda q, a: "```python\nprint(1 / 0)\n```",
    "hang": lambda q, a: "```python\nwhile True:\n    pass\n```",
    "socket": lambda q, a: (
        f"```python\nimport socket\nsocket.create_connection(('1.1.1.1', 443), 1)\nprint({a})\n```"
    ),
    "read-ssh": lambda q, a: f"```python\nprint(open('/root/.ssh/id_rsa').read())\nprint({a})\n```",
    "fork": lambda q, a: f"```python\nimport os\nos.fork()\nprint({a})\n```",
    "print-1GB": lambda q, a: "```python\nwhile True:\n    print('x' * 65536)\n```",
    "silent": lambda q, a: "```python\nx = 1\n```",
    "no-program": lambda q, a: "I would rather not write code.",
}


class Coder:
    """A responder that answers crosscheck prompts with a program chosen by `plan(question)`."""

    def __init__(self, plan: Callable[[str], str]) -> None:
        self.plan = plan

    def __call__(self, prompt: str, n: int) -> list[Reply]:
        question = prompt.split("Problem:\n", 1)[1].split("\n\nSolution:\n", 1)[0]
        solution = prompt.split("\n\nSolution:\n", 1)[1]
        answer = re.findall(r"-?\d+(?:\.\d+)?", solution.replace(",", ""))[-1]
        return [(PROGRAMS[self.plan(question)](question, answer), "stop")] * n


@pytest.fixture
def corrections(fake: FakeOpenAI, tmp_path: Path) -> Path:
    """10 problems x (2 correct samples + 2 corrections that reach gold)."""
    fake.tag_samples = True
    sampled = run("sample", GSM8K, "-m", "r", "-n", "4", "--keep", "all", "--base-url",
                  fake.base_url, "-q")  # fmt: skip
    corrected = run("correct", "-m", "c", "--base-url", fake.base_url, "-q", input=sampled.stdout)
    assert corrected.exit_code == 0
    path = tmp_path / "corrections.jsonl"
    path.write_text(corrected.stdout)
    return path


def crosscheck(fake: FakeOpenAI, path: Path, *args: str) -> list[dict[str, Any]]:
    result = run("crosscheck", str(path), "-m", "coder", "--base-url", fake.base_url, "-q",
                 *ROOM, *args)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    return records(result)


def first_question(path: Path) -> str:
    return str(load_jsonl(path)[0]["question"])


def test_agreeing_programs(fake: FakeOpenAI, corrections: Path) -> None:
    fake.responder = Coder(lambda q: "agree")
    fake.requests.clear()
    rows = crosscheck(fake, corrections)
    assert len(rows) == 40
    assert {r["pot_verdict"] for r in rows} == {"agree"}
    for row in rows:
        assert row["pot_answer"] == row["pred"]
        assert "print(x)" in row["pot_program"]
        assert row["pot_meta"]["stage"] == "crosscheck"
        assert row["pot_meta"]["model"] == "coder"
        assert row["pot_meta"]["prompt"] == "crosscheck"
        assert row["pot_meta"]["sandbox"]["timeout"] == 10.0
    # A correction's program is asked for from its whole corrected solution.
    correction = next(r for r in rows if "correction_id" in r)
    record = read_sample_or_correction(correction, "x")
    assert isinstance(record, Correction)
    prompts = [r["body"]["messages"][0]["content"] for r in fake.requests]
    steps = "\n".join(f"Step {i}: {s}" for i, s in enumerate(record.full_solution(), 1))
    assert any(p.endswith(f"Solution:\n{steps}") for p in prompts)
    assert len(fake.requests) == 40


@pytest.mark.parametrize(
    ("behaviour", "verdict", "detail"),
    [
        pytest.param("disagree", "disagree", None, id="disagree"),
        pytest.param("crash", "error", "ZeroDivisionError", id="crash"),
        pytest.param("hang", "timeout", "", id="hang"),
        pytest.param("socket", "error", "not allowed", id="socket"),
        pytest.param("read-ssh", "error", "No such file", id="read-ssh"),
        pytest.param("fork", "error", "not allowed", id="fork"),
        pytest.param("print-1GB", "error", "printed more than", id="print-1GB"),
        pytest.param("silent", "error", "printed nothing", id="silent"),
        pytest.param("no-program", "error", "no program", id="no-program"),
    ],
)
def test_misbehaving_programs(
    fake: FakeOpenAI, corrections: Path, tmp_path: Path, behaviour: str, verdict: str, detail: str
) -> None:
    one = tmp_path / "one.jsonl"
    one.write_text(corrections.read_text().splitlines()[0] + "\n")
    fake.responder = Coder(lambda q: behaviour)
    [row] = crosscheck(fake, one, *(["--program-timeout", "1"] if behaviour == "hang" else []))
    assert row["pot_verdict"] == verdict
    assert row["pot_answer"] == (str(int(row["pred"]) + 1) if verdict == "disagree" else None)
    if detail is not None:
        assert detail in row["pot_meta"]["detail"]


def test_unchecked_records_pass_through_unchanged(fake: FakeOpenAI, tmp_path: Path) -> None:
    sampled = run("sample", GSM8K, "-m", "r", "-n", "2", "--base-url", fake.base_url, "-q")
    fake.responder = Coder(lambda q: "agree")
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_text(sampled.stdout)
    fake.requests.clear()
    result = run("crosscheck", str(wrong), "-m", "coder", "--base-url", fake.base_url, "-q")
    assert result.stdout == sampled.stdout  # byte for byte: no pot fields
    assert fake.requests == []
    # --all checks wrong samples too: their programs agree with their (wrong) answer.
    assert {r["pot_verdict"] for r in crosscheck(fake, wrong, "--all")} == {"agree"}


def test_without_bwrap_nothing_is_sent(
    fake: FakeOpenAI, corrections: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    fake.requests.clear()
    result = run("crosscheck", str(corrections), "-m", "coder", "--base-url", fake.base_url)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: crosscheck runs programs in a bubblewrap sandbox")
    assert result.stderr.count("\n") == 1
    assert fake.requests == []


def mixed(fake: FakeOpenAI, corrections: Path, tmp_path: Path) -> Path:
    """The corrections cross-checked with programs that disagree for questions 1 and 3."""
    questions = sorted({r["question"] for r in load_jsonl(corrections)})
    fake.responder = Coder(lambda q: "disagree" if q in (questions[1], questions[3]) else "agree")
    checked = tmp_path / "checked.jsonl"
    checked.write_text("".join(json.dumps(r) + "\n" for r in crosscheck(fake, corrections)))
    return checked


def test_filter_require_pot_agreement_drops_exactly_the_disagreeing(
    fake: FakeOpenAI, corrections: Path, tmp_path: Path
) -> None:
    checked = mixed(fake, corrections, tmp_path)
    rows = load_jsonl(checked)
    disagreeing = {
        r["correction_id"] for r in rows if "correction_id" in r and r["pot_verdict"] != "agree"
    }
    assert len(disagreeing) == 4
    plain = records(run("filter", str(checked), "-q"))
    rejects = tmp_path / "rejects.jsonl"
    result = run("filter", str(checked), "--require-pot-agreement", "--rejects", str(rejects))
    assert result.exit_code == 0
    kept = records(result)
    assert len(plain) == 20
    assert len(kept) == 16
    assert all(row in plain for row in kept)
    dropped = [r for r in load_jsonl(rejects) if r["reason"].startswith("pot_")]
    assert {r["record"]["correction_id"] for r in dropped} == disagreeing
    assert {r["reason"] for r in dropped} == {"pot_disagree"}
    assert "pot_disagree 4" in result.stderr
    # Never cross-checked: nothing agrees, nothing is kept.
    unchecked = run("filter", str(corrections), "--require-pot-agreement", "-q")
    assert unchecked.stdout == ""


def test_export_dpo_pairs_only_chosen_sides_that_agree(
    fake: FakeOpenAI, corrections: Path, tmp_path: Path
) -> None:
    checked = mixed(fake, corrections, tmp_path)
    rows = load_jsonl(checked)
    failed = {r["question"] for r in rows if r["pot_verdict"] != "agree"}
    plain = records(run("export", str(checked), "-f", "dpo", "-q"))
    pairs = records(run("export", str(checked), "-f", "dpo", "--require-pot-agreement", "-q"))
    assert {p["prompt"] for p in plain} > {p["prompt"] for p in pairs}
    assert len(pairs) == len(plain) - sum(1 for p in plain if any(q in p["prompt"] for q in failed))
    assert not any(q in p["prompt"] for p in pairs for q in failed)
    assert all(p in plain for p in pairs)


# ---------------------------------------------------------------- pieces


@pytest.mark.parametrize(
    ("reply", "program"),
    [
        pytest.param("```python\nprint(1)\n```", "print(1)\n", id="fenced"),
        pytest.param(
            "Here:\n```py\nx=1\n```\nthen\n```python\nprint(2)\n```", "print(2)\n", id="last-block"
        ),
        pytest.param("```\nprint(3)\n```", "print(3)\n", id="bare-fence"),
        pytest.param("print(4)", "print(4)\n", id="no-fence"),
        pytest.param("```text\nprint(5)\n```", None, id="other-language"),
        pytest.param("No code.", None, id="none"),
    ],
)
def test_extract_program(reply: str, program: str | None) -> None:
    assert extract_program(reply) == program


@pytest.mark.parametrize(
    ("stdout", "answer"),
    [
        pytest.param("18\n", "18", id="plain"),
        pytest.param("step 1\n\n3/4\n\n", "3/4", id="last-line"),
        pytest.param("$\\frac{1}{2}$\n", "\\frac{1}{2}", id="dollars"),
        pytest.param("72.\n", "72", id="full-stop"),
        pytest.param("\n  \n", None, id="nothing"),
    ],
)
def test_printed_answer(stdout: str, answer: str | None) -> None:
    assert printed_answer(stdout) == answer


def test_pot_fields_round_trip(corrections: Path) -> None:
    data = load_jsonl(corrections)[0]
    data |= {"pot_program": "print(1)\n", "pot_answer": "1", "pot_verdict": "disagree",
             "pot_meta": {"model": "coder"}}  # fmt: skip
    record = read_sample_or_correction(data, "x")
    assert record.pot == Pot("print(1)\n", "1", "disagree", {"model": "coder"})
    assert record.to_dict() == data
    assert isinstance(record, (Sample, Correction))


def test_programs_run_in_several_sandboxes_at_once(
    fake: FakeOpenAI, corrections: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--workers 2: the first two programs wait for each other inside the sandbox call (a
    barrier that a one-at-a-time run never passes: it breaks after 30 s and the run fails),
    and every record is still written once."""
    fake.responder = Coder(lambda q: "agree")
    barrier = threading.Barrier(2, timeout=30)
    lock = threading.Lock()
    calls = 0
    real = sandbox.run

    def first_two_together(*args: Any, **kwargs: Any) -> sandbox.Outcome:
        nonlocal calls
        with lock:
            calls += 1
            waits = calls <= 2
        if waits:
            barrier.wait()
        return real(*args, **kwargs)

    monkeypatch.setattr(sandbox, "run", first_two_together)
    rows = crosscheck(fake, corrections, "--workers", "2")
    assert calls == 40
    assert not barrier.broken
    assert len(rows) == 40
    assert {r["pot_verdict"] for r in rows} == {"agree"}
