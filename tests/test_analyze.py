"""`lemagen analyze` against a loopback server answering as real analysers do (markdown,
thinking, chatty, JSON, the paper's names, LEMMA's prose), and as bad ones (a type outside the
taxonomy, "the solution is correct", no labels, a step the sample lacks, a reply cut short):
every wrong sample ends up as an analysis record or set aside with its reason."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lemagen.records import SCHEMA_VERSION, Analysis
from tests.conftest import DATA, EXAMPLES, known_answers, load_jsonl, records, run
from tests.fake_openai import FakeOpenAI, MathTutor
from tests.mistake_models import ANALYSER_STYLES, MistakeModels, true_type


@pytest.fixture
def models() -> Iterator[tuple[FakeOpenAI, MistakeModels]]:
    tutor = MathTutor(
        known_answers(
            EXAMPLES / "gsm8k.jsonl", EXAMPLES / "math.jsonl", DATA / "math500_slice.jsonl"
        )
    )
    responder = MistakeModels(tutor)
    server = FakeOpenAI(responder, reasoning_field="reasoning_content").start()
    yield server, responder
    server.stop()


def sampled(fake: FakeOpenAI, tmp_path: Path) -> Path:
    """Both example files, two samples per problem (the tutor: one right, one wrong)."""
    path = tmp_path / "samples.jsonl"
    out = []
    for name in ("gsm8k.jsonl", "math.jsonl"):
        result = run("sample", str(EXAMPLES / name), "-m", "reasoner", "-n", "2", "--keep", "all",
                     "--base-url", fake.base_url, "-q")  # fmt: skip
        assert result.exit_code == 0, result.stderr
        out.append(result.stdout)
    path.write_text("".join(out), encoding="utf-8")
    return path


def test_every_wrong_sample_is_analysed_or_set_aside_with_its_reason(
    models: tuple[FakeOpenAI, MistakeModels], tmp_path: Path
) -> None:
    fake, responder = models
    samples = sampled(fake, tmp_path)
    rows = load_jsonl(samples)
    wrong = [r for r in rows if r["verdict"] == "wrong"]
    assert len(wrong) == 20
    styles = list(ANALYSER_STYLES)
    for i, row in enumerate(wrong):
        responder.styles[row["question"]] = styles[i % len(styles)]
    rejects = tmp_path / "rejects.jsonl"
    result = run("analyze", str(samples), "-m", "gpt-4o", "--rejects", str(rejects),
                 "--base-url", fake.base_url)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    out = records(result)
    analyses = [r for r in out if "error_type" in r]
    passed = [r for r in out if "error_type" not in r]
    assert len(passed) == 20
    assert all(r["verdict"] == "correct" for r in passed)
    set_aside = load_jsonl(rejects)
    assert len(analyses) + len(set_aside) == 20
    assert responder.asked["analyser"] == 20

    expected: dict[str, Any] = {}
    for row in wrong:
        expected[row["sample_id"]] = ANALYSER_STYLES[responder.styles[row["question"]]]
    good = [s for s, v in expected.items() if v is None]
    assert sorted(a["sample_id"] for a in analyses) == sorted(good)
    assert len(good) == 14  # seven good styles of twelve, cycled over 20 samples: 7 + 7
    by_id = {r["sample_id"]: r for r in wrong}
    for a in analyses:
        sample = by_id[a["sample_id"]]
        assert a["error_type"] == true_type(sample["question"])
        assert a["first_error_step"] == max(1, len(sample["steps"]) - 1)
        assert a["explanation"] is None or a["explanation"].startswith("Step ")
        assert a["original"]["steps"] == sample["steps"]
        assert a["original"]["meta"]["model"] == "reasoner"
        assert a["meta"]["stage"] == "analyze"
        assert a["meta"]["model"] == "gpt-4o"
        assert (a["kind"], a["schema_version"]) == ("analysis", SCHEMA_VERSION)
        # The record reads back as the typed record, unchanged.
        assert Analysis.from_dict(a, "x:1").to_dict() == a
    assert sorted((r["record"]["sample_id"], r["reason"]) for r in set_aside) == sorted(
        (s, v) for s, v in expected.items() if v is not None
    )
    for r in set_aside:
        assert r["detail"]
        assert r["record"]["analysis"]["reply"]  # nothing paid for is lost
        assert r["record"]["analysis"]["meta"]["model"] == "gpt-4o"
    reasons = Counter(r["reason"] for r in set_aside)
    assert set(reasons) == {v for v in ANALYSER_STYLES.values() if v}
    assert "20 wrong samples" in result.stderr
    assert f"{len(good)} analysed" in result.stderr

    # Re-running sends nothing: every reply is in the request store.
    before = len(fake.requests)
    again = run("analyze", str(samples), "-m", "gpt-4o", "--base-url", fake.base_url, "-q")
    assert again.exit_code == 0
    assert len(fake.requests) == before
    assert sorted(again.stdout.splitlines()) == sorted(result.stdout.splitlines())


def test_dry_run_sends_nothing(models: tuple[FakeOpenAI, MistakeModels], tmp_path: Path) -> None:
    fake, _ = models
    samples = sampled(fake, tmp_path)
    before = len(fake.requests)
    result = run("analyze", str(samples), "-m", "gpt-4o", "--dry-run", "--base-url", fake.base_url)
    assert result.exit_code == 0, result.stderr
    listed = [json.loads(line) for line in result.stdout.splitlines()]  # what it would send
    assert len(listed) == 20
    assert {r["body"]["model"] for r in listed} == {"gpt-4o"}
    assert all("Student's solution:" in r["body"]["messages"][-1]["content"] for r in listed)
    assert "20 requests" in result.stderr
    assert len(fake.requests) == before


def test_prompt_lists_the_taxonomy_and_the_sample(
    models: tuple[FakeOpenAI, MistakeModels], tmp_path: Path
) -> None:
    fake, _ = models
    samples = sampled(fake, tmp_path)
    run("analyze", str(samples), "-m", "gpt-4o", "--base-url", fake.base_url, "-q")
    prompts = [r["body"]["messages"][-1]["content"] for r in fake.requests]
    asked = [p for p in prompts if "Student's solution:" in p]
    wrong = [r for r in load_jsonl(samples) if r["verdict"] == "wrong"]
    assert len(asked) == len(wrong) == 20
    endings = sorted(
        "\n".join(f"Step {i}: {s}" for i, s in enumerate(r["steps"], 1)) for r in wrong
    )
    assert sorted(p.rsplit("Student's solution:\n", 1)[1] for p in asked) == endings
    for prompt in asked:
        assert "- question_misinterpretation (Question Misinterpretation):" in prompt
        assert "Reference solution:\n" in prompt  # the examples have gold solutions
        assert prompt.count("{{") == 0


def test_a_sample_that_is_not_a_sample_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps({"question": "q", "answer": "1"}) + "\n")
    result = run("analyze", str(path), "-m", "m", "--base-url", "http://127.0.0.1:9/v1")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"Error: {path}:1: missing field 'sample_id' (is this `lemagen sample` output?)"
    )
