"""Verifier data as Math-Rev builds it (methods.md §4): several generators' correct and wrong
solutions, each model's own wrong paths kept (deduplicated per model, not across models), and
preference pairs whose two sides come from different models (--cross-model)."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import EXAMPLES, endpoint, known_answers, records, run
from tests.fake_openai import FakeOpenAI, MathTutor, Reply, _last_question

PROBLEMS = EXAMPLES / "gsm8k.jsonl"


def _generate(*, tagged: bool) -> list[dict[str, Any]]:
    """Samples of three generators: `weak` always wrong (its two samples the same path),
    `mixed` right then wrong, `strong` always right. Untagged, every model writes the same
    text for the same answer; tagged, each names itself in its first step."""
    tutor = MathTutor(known_answers(PROBLEMS))
    current: dict[str, str] = {}

    def responder(prompt: str, n: int) -> list[Reply]:
        task, gold = tutor.answers[_last_question(prompt)]
        model = current["model"]
        right = {"weak": [False, False], "mixed": [True, False], "strong": [True, True]}[model]
        replies = [tutor.solve(task, gold, right=r) for r in right[:n]]
        if tagged:
            replies = [(f"{model.title()} starts.\n{text}", f) for text, f in replies]
        return replies

    def note_model(body: dict[str, Any]) -> None:
        current["model"] = str(body["model"])

    fake = FakeOpenAI(responder, rule=note_model).start()
    try:
        result = run(
            "sample", str(PROBLEMS), "-m", "weak", "-m", "mixed", "-m", "strong", "-n", "2",
            "--keep", "all", "--concurrency", "1", *endpoint(fake),
        )  # fmt: skip
        assert result.exit_code == 0, result.stderr
    finally:
        fake.stop()
    return records(result)


def _jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def test_each_models_wrong_paths_are_kept_once_per_model() -> None:
    samples = _generate(tagged=False)
    wrong = [s for s in samples if s["verdict"] == "wrong"]
    # weak's two identical wrong paths count once; mixed's wrong path is the same text as
    # weak's, and is kept as well: it is another model's answer.
    assert sorted(s["meta"]["model"] for s in wrong) == ["mixed"] * 10 + ["weak"] * 10
    assert len({(s["question"], tuple(s["steps"])) for s in wrong}) == 10


def test_pairs_can_be_made_across_models_only() -> None:
    samples = _generate(tagged=True)
    pairs = records(run("export", "-", "-f", "dpo", "--cross-model", input=_jsonl(samples)))
    assert len(pairs) == 20  # each of the 20 wrong samples finds a correct one of another model
    for pair in pairs:
        chosen_model = pair["chosen"].split(" starts.")[0]
        rejected_model = pair["rejected"].split(" starts.")[0]
        assert chosen_model != rejected_model
        assert rejected_model in ("Weak", "Mixed")
    # mixed alone: its wrong samples have no correct sample of another model.
    mixed = _jsonl([s for s in samples if s["meta"]["model"] == "mixed"])
    assert records(run("export", "-", "-f", "dpo", "--cross-model", input=mixed)) == []
    assert len(records(run("export", "-", "-f", "dpo", input=mixed))) == 10


def test_cross_model_is_for_pairs_only() -> None:
    result = run("export", "/dev/null", "-f", "alpaca", "--cross-model")
    assert result.exit_code == 2
    assert "--cross-model applies to --format dpo" in result.stderr
