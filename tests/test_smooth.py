"""lemagen smooth: LEMMA trajectories rewritten by a model, against a loopback server that
answers as a smoother: fluently (with thinking and an echoed label, as chat models reply), by
changing a value of the work, or by changing the final answer."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DATA, load_jsonl, records, run
from tests.fake_openai import FakeOpenAI, Reply

OPENING = "Let me work through this carefully."


class Smoother:
    """Answers smoothing prompts; `modes` maps a question to `changed` (the first number of the
    solution is off by one) or `wrong` (the final answer is off by one); any other question is
    rewritten faithfully."""

    def __init__(self, modes: dict[str, str] | None = None) -> None:
        self.modes = modes or {}
        self.prompts = 0

    def __call__(self, prompt: str, n: int) -> list[Reply]:
        assert "Rewritten solution:" in prompt, prompt
        self.prompts += 1
        question = prompt.split("Problem:\n", 1)[1].split("\n\nSolution:\n", 1)[0]
        trajectory = prompt.split("\n\nSolution:\n", 1)[1].rsplit("\n\nRewritten solution:", 1)[0]
        text = f"{OPENING} {trajectory}"
        mode = self.modes.get(question)
        if mode == "changed":
            first = re.search(r"\d+", trajectory)
            assert first is not None
            text = f"{OPENING} {trajectory[: first.start()]}{int(first.group()) + 1}"
            text += trajectory[first.end() :]
        elif mode == "wrong":
            answer = re.search(r"The answer is (\d+)\.$", trajectory)
            assert answer is not None
            text = f"{OPENING} {trajectory[: answer.start()]}The answer is {int(answer[1]) + 1}."
        reply = f"<think>I will keep every number.</think>**Rewritten solution:**\n\n{text}"
        return [(reply, "stop") for _ in range(n)]


@pytest.fixture
def injected(tmp_path: Path) -> Path:
    result = run("inject", str(DATA / "gsm8k_train_slice.jsonl"), "-q")
    assert result.exit_code == 0
    path = tmp_path / "injected.jsonl"
    path.write_text(result.stdout)
    return path


def smooth(fake: FakeOpenAI, path: Path, *args: str) -> Any:
    return run("smooth", str(path), "-m", "smoother", "--base-url", fake.base_url, *args)


def test_smoothing_keeps_every_trajectory_that_keeps_its_work(
    fake: FakeOpenAI, injected: Path
) -> None:
    smoother = Smoother()
    fake.responder = smoother
    result = smooth(fake, injected, "--seed", "3", "--restart-rate", "0.5")
    assert result.exit_code == 0, result.stderr
    rows = records(result)
    exported = records(run("export", str(injected), "-f", "lemma", "--seed", "3"))
    assert len(rows) == len(exported) == len(load_jsonl(injected)) > 30
    # The same trajectories `export -f lemma` writes (same seed and rate), rewritten; the
    # thinking and the echoed label are not part of the text.
    by_question = {r["instruction"]: r for r in exported}
    for row in rows:
        assert set(row) == {"instruction", "input", "output"}
        assert row["output"] == f"{OPENING} {by_question[row['instruction']]['output']}"
    assert "set aside none" in result.stderr
    assert re.search(r"\d+ fix, \d+ restart", result.stderr)

    # A re-run sends nothing: every reply is in the request store.
    asked = smoother.prompts
    again = smooth(fake, injected, "--seed", "3", "--restart-rate", "0.5")
    assert sorted(again.stdout.splitlines()) == sorted(result.stdout.splitlines())
    assert smoother.prompts == asked


def test_rewrites_that_change_the_work_are_set_aside(
    fake: FakeOpenAI, injected: Path, tmp_path: Path
) -> None:
    questions = [r["question"] for r in load_jsonl(injected)]
    modes = {q: ("changed", "wrong", "good")[i % 3] for i, q in enumerate(questions)}
    fake.responder = Smoother(modes)
    rejects = tmp_path / "rejects.jsonl"
    result = smooth(fake, injected, "--rejects", str(rejects))
    assert result.exit_code == 0, result.stderr
    written = {r["instruction"] for r in records(result)}
    assert written == {q for q, mode in modes.items() if mode == "good"}
    aside = load_jsonl(rejects)
    reasons = {r["record"]["question"]: r["reason"] for r in aside}
    assert len(aside) == len(questions) - len(written)
    for question, reason in reasons.items():
        expected = {"changed": "smooth_changed_values", "wrong": "smooth_wrong_answer"}
        assert reason == expected[modes[question]]
    lost = [r["detail"] for r in aside if r["reason"] == "smooth_changed_values"]
    assert all(d.startswith("lost ") for d in lost)
    assert len(lost) == sum(m == "changed" for m in modes.values())


def test_failed_and_truncated_smoothing_is_set_aside(
    fake: FakeOpenAI, injected: Path, tmp_path: Path
) -> None:
    smoother = Smoother()
    first_question = load_jsonl(injected)[0]["question"]

    def rule(body: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
        if first_question in json.dumps(body["messages"]):
            return 400, {"error": {"message": "no smoothing today"}}
        return None

    def cut_short(prompt: str, n: int) -> list[Reply]:
        text, _ = smoother(prompt, n)[0]
        return [(text[:40], "length") for _ in range(n)]

    fake.rule = rule
    fake.responder = cut_short
    rejects = tmp_path / "rejects.jsonl"
    result = smooth(fake, injected, "--rejects", str(rejects))
    assert result.exit_code == 4  # requests failed: re-running retries only those
    reasons = [r["reason"] for r in load_jsonl(rejects)]
    assert reasons.count("request_failed") == 1
    assert reasons.count("truncated") == len(load_jsonl(injected)) - 1
    assert records(result) == []
