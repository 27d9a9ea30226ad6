"""lemagen evolve: new questions from the corrected ones, with pseudo-gold by majority vote,
against a loopback server that answers as an evolver and as a voter."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

from tests.conftest import EXAMPLES, endpoint, load_jsonl, records, run
from tests.fake_openai import FakeOpenAI, MathTutor, Reply


class Evolver:
    """Evolution prompts get `Variant i of: <seed>` questions (i = the choice index); voting
    prompts on variant 0 agree (the tutor's right, wrong, right), on any other variant all
    three answers differ."""

    def __init__(self, tutor: MathTutor) -> None:
        self.tutor = tutor
        self.evolution_prompts = 0

    def __call__(self, prompt: str, n: int) -> list[Reply]:
        if "#Created Question#" in prompt:
            self.evolution_prompts += 1
            seed = prompt.split("#Given Question#:\n", 1)[1].split("\n\n#Created", 1)[0]
            return [
                (f"#Created Question#: Variant {i} of: {seed[:60]} How many are left?", "stop")
                for i in range(n)
            ]
        if "Variant 0 of:" in prompt:
            return self.tutor(prompt, n)
        if "Variant" in prompt:
            return [(f"So it is {3 + i}.\nThe answer is {3 + i}.", "stop") for i in range(n)]
        return self.tutor(prompt, n)


def test_evolve_writes_problems_with_voted_gold(fake: FakeOpenAI, tmp_path: Path) -> None:
    sampled = run("sample", str(EXAMPLES / "gsm8k.jsonl"), "-m", "r", "-n", "2", *endpoint(fake))
    corrected = run("correct", "-", "-m", "c", *endpoint(fake), input=sampled.stdout)
    corrections = tmp_path / "c.jsonl"
    corrections.write_text(corrected.stdout, encoding="utf-8")
    seeds = {r["id"] for r in records(corrected)}
    assert len(seeds) == 10

    evolver = Evolver(fake.responder)  # type: ignore[arg-type]
    fake.responder = evolver
    rejects = tmp_path / "rejects.jsonl"
    args = ["evolve", str(corrections), "-m", "gpt-4o", "--samples", "25", "--seed", "5",
            "--rejects", str(rejects), "--base-url", fake.base_url]  # fmt: skip
    result = run(*args)
    assert result.exit_code == 0, result.stderr
    evolved = records(result)
    set_aside = load_jsonl(rejects)
    # One created question per draw: the first draw of each seed agrees, later ones do not.
    variants = Counter(int(m.group(1)) for m in re.finditer(r"Variant (\d+)", result.stdout))
    assert len(evolved) + len(set_aside) == 25
    assert len(evolved) == len({e["seed_id"] for e in evolved}) == variants[0]
    assert all(r["reason"] == "no_agreement" for r in set_aside)
    assert all("Variant 0" not in r["record"]["question"] for r in set_aside)
    for e in evolved:
        assert e["seed_id"] in seeds
        assert e["question"].startswith("Variant 0 of:")
        assert e["gold"] == "1"  # the tutor's answer for a question it does not know
        assert e["gold_vote"]["votes"] == 2
        assert e["gold_vote"]["samples"] == 3
        assert e["evolved_by"] == "gpt-4o"
        assert e["task"] == "gsm8k"
    assert len({e["id"] for e in evolved}) == len(evolved)
    assert "25 draws" in result.stderr
    assert evolver.evolution_prompts <= 10  # one request per seed drawn, n = its draws

    # `lemagen sample` reads the evolved problems; the seed travels in `source`.
    path = tmp_path / "evolved.jsonl"
    path.write_text(result.stdout, encoding="utf-8")
    fake.responder = evolver.tutor
    again = records(
        run("sample", str(path), "-m", "r", "-n", "2", "--keep", "all", *endpoint(fake))
    )
    assert len(again) == 2 * len(evolved)
    assert all(s["source"]["seed_id"] in seeds for s in again)

    # Re-running sends nothing and writes the same problems.
    fake.responder = evolver
    before = len(fake.requests)
    rerun = run(*args)
    assert sorted(rerun.stdout.splitlines()) == sorted(result.stdout.splitlines())
    assert len(fake.requests) == before


def test_failed_evolution_calls_are_set_aside(fake: FakeOpenAI, tmp_path: Path) -> None:
    sampled = run("sample", str(EXAMPLES / "gsm8k.jsonl"), "-m", "r", "-n", "2", *endpoint(fake))
    corrected = run("correct", "-", "-m", "c", *endpoint(fake), input=sampled.stdout)
    corrections = tmp_path / "c.jsonl"
    corrections.write_text(corrected.stdout, encoding="utf-8")

    def refuse_evolution(body: dict[str, object]) -> tuple[int, dict[str, object]] | None:
        if "#Created Question#" in json.dumps(body):
            return 400, {"error": {"message": "no evolving today"}}
        return None

    fake.rule = refuse_evolution
    rejects = tmp_path / "rejects.jsonl"
    result = run(
        "evolve", str(corrections), "-m", "gpt-4o", "--samples", "6", "--rejects", str(rejects),
        *endpoint(fake),
    )  # fmt: skip
    assert result.exit_code == 4
    set_aside = load_jsonl(rejects)
    assert set_aside
    assert {r["reason"] for r in set_aside} == {"request_failed"}
    assert all("no evolving today" in r["detail"] for r in set_aside)
