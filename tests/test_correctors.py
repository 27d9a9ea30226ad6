"""Each kind of corrector, answering on the loopback server, through correct, filter and export.

For every kind: the correction records written and the rows set aside are exactly the expected
ones, and no training record (`filter`, `export -f cot|lemma|dpo`) holds chatter or lacks a step.
The replies come from `tests/correctors.py` (the same texts as the `parse_reply` table).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from lemagen.engine import Call, Sampling
from lemagen.engine.calls import KEY_VERSION
from tests.conftest import EXAMPLES, endpoint, load_jsonl, records, run
from tests.correctors import EXPLANATION, GOOD, Corrector, K, fixed_steps
from tests.fake_openai import FakeOpenAI, MathTutor


def pipeline(fake: FakeOpenAI, tmp_path: Path, *correct_args: str) -> dict[str, Any]:
    """sample, correct, filter and the three exports that rebuild the full solution."""
    sampled = run("sample", str(EXAMPLES / "gsm8k.jsonl"), "-m", "r", "-n", "2", *endpoint(fake))
    assert sampled.exit_code == 0, sampled.stderr
    fake.requests.clear()
    corrected = run(
        "correct", "-m", "c", "--rejects", str(tmp_path / "correct.rejects.jsonl"),
        *correct_args, "--base-url", fake.base_url, input=sampled.stdout,
    )  # fmt: skip
    assert corrected.exit_code == 0, corrected.stderr
    filtered = run(
        "filter", "-", "--rejects", str(tmp_path / "filter.rejects.jsonl"),
        input=corrected.stdout,
    )  # fmt: skip
    assert filtered.exit_code == 0, filtered.stderr
    out: dict[str, Any] = {
        "samples": records(sampled),
        "correct": records(corrected),
        "correct_stderr": corrected.stderr,
        "correct_rejects": load_jsonl(tmp_path / "correct.rejects.jsonl"),
        "filter": records(filtered),
        "filter_rejects": load_jsonl(tmp_path / "filter.rejects.jsonl"),
    }
    for fmt in ("cot", "lemma", "dpo"):
        fix = ["--restart-rate", "0"] if fmt == "lemma" else []  # Fix & Continue: the rebuild
        exported = run("export", "-", "-f", fmt, *fix, input=corrected.stdout)
        assert exported.exit_code == 0, exported.stderr
        out[fmt] = records(exported)
    return out


def no_chatter(*rows: list[dict[str, Any]]) -> None:
    text = json.dumps(rows)
    for phrase in ("hope", "Let me know", "```", "###", "**"):
        assert phrase not in text


@pytest.mark.parametrize("kind", GOOD)
def test_good_corrector(fake: FakeOpenAI, tmp_path: Path, kind: str) -> None:
    assert isinstance(fake.responder, MathTutor)
    fake.responder = Corrector(fake.responder, kind)
    out = pipeline(fake, tmp_path)
    golds = sorted(s["gold"] for s in out["samples"])
    assert len(golds) == 10
    assert out["correct_rejects"] == []
    assert sorted(r["gold"] for r in out["correct"]) == golds
    for row in out["correct"]:
        assert row["reject_reason"] is None
        assert (row["incorrect_step"], row["elided"], row["corrected_from"]) == (K, True, K)
        assert row["explanation"] == EXPLANATION
        assert row["corrected_steps"] == fixed_steps(row["gold"])
        assert row["verdict"] == "correct"
    assert out["filter_rejects"] == []
    assert sorted(r["completion"] for r in out["filter"]) == sorted(
        f" Step 2.\nExplanation: {EXPLANATION}\nCorrect Solution:\n{{\n...\n"
        f"Step 2: The total comes to {g}.\nStep 3: The answer is {g}.\n}}"
        for g in golds
    )
    full = sorted(f"We work through it. The total comes to {g}. The answer is {g}." for g in golds)
    assert sorted(r["completion"] for r in out["cot"]) == full
    assert sorted(r["chosen"] for r in out["dpo"]) == full
    wrong = {s["gold"]: s["steps"] for s in out["samples"]}
    lemma = sorted(r["output"] for r in out["lemma"])
    assert len(lemma) == 10
    for g in golds:
        start = " ".join(wrong[g][:K])  # the wrong prefix through the incorrect step
        end = f"{EXPLANATION} The total comes to {g}. The answer is {g}."
        assert sum(o.startswith(start) and o.endswith(end) for o in lemma) == 1
    no_chatter(out["filter"], out["cot"], out["lemma"], out["dpo"])


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("prefix_changer", "prefix_changed"),
        ("step_keeper", "step_unchanged"),
        ("unparseable", "unparseable"),
    ],
)
def test_corrector_set_aside(fake: FakeOpenAI, tmp_path: Path, kind: str, reason: str) -> None:
    """Every correction is written by `correct` (paid for), none becomes training data."""
    assert isinstance(fake.responder, MathTutor)
    fake.responder = Corrector(fake.responder, kind)
    out = pipeline(fake, tmp_path)
    assert len(out["correct"]) == 10
    assert out["correct_rejects"] == []
    parse_error = "unparseable: no incorrect step number" if kind == "unparseable" else None
    assert {r["reject_reason"] for r in out["correct"]} == {parse_error}
    assert out["filter"] == out["cot"] == out["lemma"] == []
    assert [r["reason"] for r in out["filter_rejects"]] == [reason] * 10
    # dpo still pairs correct and wrong samples; there are no correct samples here
    assert out["dpo"] == []


def test_reask_asks_again_for_unparseable_replies(fake: FakeOpenAI, tmp_path: Path) -> None:
    assert isinstance(fake.responder, MathTutor)
    corrector = Corrector(fake.responder, "lema", first="unparseable")
    fake.responder = corrector
    out = pipeline(fake, tmp_path, "--reask", "2")
    rows = out["correct"]
    assert len(rows) == 20  # the unparseable reply is kept (paid for), and the one asked again
    by_index = {0: [r for r in rows if r["meta"]["sample_index"] == 0]}
    by_index[1] = [r for r in rows if r["meta"]["sample_index"] == 1]
    assert [len(by_index[0]), len(by_index[1])] == [10, 10]
    assert {r["reject_reason"] for r in by_index[0]} == {"unparseable: no incorrect step number"}
    assert {r["reject_reason"] for r in by_index[1]} == {None}
    assert len({r["correction_id"] for r in rows}) == 20
    # 10 first requests, then 10 asking for the new sample index only
    bodies = [r["body"] for r in fake.requests]
    assert sorted(b["n"] for b in bodies) == [1] * 20
    assert set(corrector.asked.values()) == {2}
    assert "10 unparseable, 10 asked again;" in out["correct_stderr"]
    assert "still unparseable" not in out["correct_stderr"]
    assert sorted(r["reason"] for r in out["filter_rejects"]) == ["unparseable"] * 10
    assert len(out["filter"]) == len(out["cot"]) == len(out["lemma"]) == 10
    no_chatter(out["filter"], out["cot"], out["lemma"])


def test_reask_gives_up_after_n_and_counts(fake: FakeOpenAI, tmp_path: Path) -> None:
    assert isinstance(fake.responder, MathTutor)
    fake.responder = Corrector(fake.responder, "unparseable")
    out = pipeline(fake, tmp_path, "--reask", "2", "-n", "2")
    assert len(out["correct"]) == 60  # 2 replies per sample, each asked again twice
    assert sorted({r["meta"]["sample_index"] for r in out["correct"]}) == [0, 1, 2, 3, 4, 5]
    assert "60 unparseable, 40 asked again, 40 still unparseable;" in out["correct_stderr"]
    assert out["filter"] == []


def test_reask_sends_nothing_new_when_run_again(fake: FakeOpenAI, tmp_path: Path) -> None:
    """The store keeps the replies asked for again: the same command reads them all back."""
    assert isinstance(fake.responder, MathTutor)
    fake.responder = Corrector(fake.responder, "lema", first="unparseable")
    sampled = run("sample", str(EXAMPLES / "gsm8k.jsonl"), "-m", "r", "-n", "2", *endpoint(fake))
    args = ["correct", "-m", "c", "--reask", "1", *endpoint(fake)]
    first = run(*args, input=sampled.stdout)
    sent = len(fake.requests)
    again = run(*args, input=sampled.stdout)
    assert len(fake.requests) == sent
    assert sorted(first.stdout.splitlines()) == sorted(again.stdout.splitlines())


def test_without_reask_nothing_is_asked_again(fake: FakeOpenAI, tmp_path: Path) -> None:
    assert isinstance(fake.responder, MathTutor)
    fake.responder = Corrector(fake.responder, "lema", first="unparseable")
    out = pipeline(fake, tmp_path)
    assert len(out["correct"]) == 10
    assert len(fake.requests) == 10
    assert out["filter"] == []


# ---------------------------------------------------------------- --json


def test_json_mode(fake: FakeOpenAI, tmp_path: Path) -> None:
    out = pipeline(fake, tmp_path, "--json")
    bodies = [r["body"] for r in fake.requests]
    assert len(bodies) == 10
    for body in bodies:
        assert body["response_format"]["type"] == "json_schema"
        schema = body["response_format"]["json_schema"]["schema"]
        assert schema["required"] == ["incorrect_step", "explanation", "corrected_steps"]
    assert len(out["correct"]) == 10
    for row in out["correct"]:
        assert row["reject_reason"] is None
        assert json.loads(row["response"])["incorrect_step"] == 3
        assert (row["incorrect_step"], row["elided"], row["corrected_from"]) == (3, True, 3)
        assert row["corrected_steps"] == [f"The answer is {row['gold']}."]
        assert row["meta"]["response_format"] == "json_schema"
    assert sorted(r["completion"] for r in out["cot"]) == sorted(
        " ".join([*r["original"]["steps"][:2], f"The answer is {r['gold']}."])
        for r in out["correct"]
    )
    assert len(out["filter"]) == 10
    no_chatter(out["filter"], out["cot"], out["lemma"])


def test_json_mode_is_its_own_request(fake: FakeOpenAI, tmp_path: Path) -> None:
    """--json is part of the request's identity: the text replies stored are not reused."""
    sampled = run("sample", str(EXAMPLES / "gsm8k.jsonl"), "-m", "r", "-n", "2", *endpoint(fake))
    text = run("correct", "-m", "c", *endpoint(fake), input=sampled.stdout)
    sent = len(fake.requests)
    as_json = run("correct", "-m", "c", "--json", *endpoint(fake), input=sampled.stdout)
    assert len(fake.requests) == sent + 10
    ids = {json.loads(line)["correction_id"] for line in text.stdout.splitlines()}
    assert ids.isdisjoint(json.loads(line)["correction_id"] for line in as_json.stdout.splitlines())


def test_json_mode_on_an_endpoint_without_response_format(fake: FakeOpenAI, tmp_path: Path) -> None:
    fake.json_responder = None
    sampled = run("sample", str(EXAMPLES / "gsm8k.jsonl"), "-m", "r", "-n", "2", *endpoint(fake))
    rejects = tmp_path / "rejects.jsonl"
    result = run(
        "correct", "-m", "c", "--json", "--rejects", str(rejects), *endpoint(fake),
        input=sampled.stdout,
    )  # fmt: skip
    assert result.exit_code == 4
    assert result.stdout == ""
    set_aside = load_jsonl(rejects)
    assert [r["reason"] for r in set_aside] == ["request_failed"] * 10
    assert "response_format is not supported" in set_aside[0]["detail"]


def test_json_mode_reads_a_text_reply(fake: FakeOpenAI, tmp_path: Path) -> None:
    """An endpoint that takes response_format but ignores it, answering in the prompt's layout:
    the reply is read as LEMA text, with the same checks."""
    assert isinstance(fake.responder, MathTutor)
    fake.responder = Corrector(fake.responder, "chatty")
    fake.ignore_response_format = True
    out = pipeline(fake, tmp_path, "--json")
    assert all("response_format" in r["body"] for r in fake.requests)
    assert {r["reject_reason"] for r in out["correct"]} == {None}
    assert len(out["filter"]) == len(out["cot"]) == 10
    no_chatter(out["filter"], out["cot"], out["lemma"])


def test_a_call_without_extra_keeps_the_store_key_it_always_had() -> None:
    """`Call.extra` is in the identity only when set: replies stored before it existed match."""
    call = Call("m", "p", 1, Sampling(temperature=0.0))
    before = {
        "v": KEY_VERSION,
        "api": "chat",
        "model": "m",
        "input": "p",
        **call.sampling.as_meta(),
    }
    assert (
        call.identity("chat")
        == hashlib.sha256(json.dumps(before, sort_keys=True).encode()).digest()
    )
    assert Call("m", "p", 1, call.sampling, {"response_format": {}}).identity(
        "chat"
    ) != call.identity("chat")
