"""`lemagen art ask` (sub-questions from an asker on the loopback server, answering as real
models do, or not at all) and `lemagen art trust` (initial vs refined, labelled by gold)."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from lemagen.records import AskerRecord, TrusterRecord
from tests.conftest import EXAMPLES, known_answers, load_jsonl, records, run, write_jsonl
from tests.fake_openai import FakeOpenAI, MathTutor
from tests.mistake_models import ASKER_STYLES, MistakeModels


@pytest.fixture
def models() -> Iterator[tuple[FakeOpenAI, MistakeModels]]:
    tutor = MathTutor(known_answers(EXAMPLES / "gsm8k.jsonl", EXAMPLES / "math.jsonl"))
    responder = MistakeModels(tutor)
    server = FakeOpenAI(responder, reasoning_field="reasoning_content").start()
    yield server, responder
    server.stop()


def sampled(fake: FakeOpenAI, tmp_path: Path) -> Path:
    out = ""
    for name in ("gsm8k.jsonl", "math.jsonl"):
        out += run("sample", str(EXAMPLES / name), "-m", "r", "-n", "2", "--keep", "all",
                   "--base-url", fake.base_url, "-q").stdout  # fmt: skip
    path = tmp_path / "samples.jsonl"
    path.write_text(out)
    return path


def test_asker_records_label_each_prediction_by_its_verdict(
    models: tuple[FakeOpenAI, MistakeModels], tmp_path: Path
) -> None:
    fake, responder = models
    samples = sampled(fake, tmp_path)
    rows = load_jsonl(samples)
    questions = list(dict.fromkeys(r["question"] for r in rows))
    assert len(rows) == 40
    assert len(questions) == 20
    styles = list(ASKER_STYLES)
    for i, question in enumerate(questions):
        responder.styles[question] = styles[i % len(styles)]
    unanswered = copy.deepcopy(rows[0])
    unanswered["sample_id"] += "-x"
    unanswered["verdict"] = "no_answer"
    write_jsonl(samples, [*rows, unanswered])
    rejects = tmp_path / "rejects.jsonl"
    result = run("art", "ask", str(samples), "-m", "gpt-4o", "--rejects", str(rejects),
                 "--base-url", fake.base_url)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    asked = records(result)
    set_aside = load_jsonl(rejects)
    assert responder.asked["asker"] == 20  # one request per problem, not per prediction
    bad = {q for q in questions if ASKER_STYLES[responder.styles[q]]}
    assert len(bad) == 3  # malformed, cycled over 20 questions
    assert len(asked) == 40 - 2 * len(bad)
    verdicts = {r["sample_id"]: r["verdict"] for r in rows}
    for a in asked:
        assert a["question"] not in bad
        assert a["answers_all"] == (verdicts[a["sample_id"]] == "correct")
        assert a["prediction"]["verdict"] == verdicts[a["sample_id"]]
        assert len(a["sub_questions"]) == 3
        assert all(
            q.endswith("?") and not q.startswith(("-", "*", "1")) for q in a["sub_questions"]
        )
        assert a["sub_questions"][-1] == "What is the final answer the problem asks for?"
        assert a["meta"]["stage"] == "art-ask"
        assert AskerRecord.from_dict(a, "x:1").to_dict() == a
    assert sum(a["answers_all"] for a in asked) == len(asked) / 2
    reasons = sorted(r["reason"] for r in set_aside)
    assert reasons == ["no_verdict"] + ["unparseable"] * (2 * len(bad))
    assert all(r["record"]["asker_reply"] for r in set_aside if r["reason"] == "unparseable")


def test_truster_records_prefer_what_reaches_gold(
    models: tuple[FakeOpenAI, MistakeModels], tmp_path: Path
) -> None:
    fake, _ = models
    samples = sampled(fake, tmp_path)
    corrected = run("correct", str(samples), "-m", "c", "--base-url", fake.base_url, "-q")
    rows = records(corrected)
    corrections = [r for r in rows if "correction_id" in r]
    assert len(corrections) == 20
    assert all(c["verdict"] == "correct" for c in corrections)
    failed = copy.deepcopy(corrections[0])
    failed["correction_id"] += "-failed"
    failed["verdict"] = "wrong"
    unread = copy.deepcopy(corrections[1])
    unread["correction_id"] += "-unread"
    unread["reject_reason"] = "unparseable: no steps"
    worse = copy.deepcopy(corrections[2])  # a refinement that broke a right prediction
    worse["correction_id"] += "-worse"
    worse["original"]["verdict"] = "correct"
    worse["verdict"] = "wrong"
    path = write_jsonl(tmp_path / "c.jsonl", [*rows, failed, unread, worse])
    rejects = tmp_path / "rejects.jsonl"
    result = run("art", "trust", str(path), "--rejects", str(rejects))
    assert result.exit_code == 0, result.stderr
    trusted = records(result)
    assert len(trusted) == 21
    preferred = {t["correction_id"]: t["preferred"] for t in trusted}
    assert preferred.pop(worse["correction_id"]) == "initial"
    assert set(preferred.values()) == {"refined"}
    for t in trusted:
        assert t["initial"]["verdict"] != t["refined"]["verdict"]
        chosen = t[t["preferred"]]
        assert chosen["verdict"] == "correct"
        assert TrusterRecord.from_dict(t, "x:1").to_dict() == t
    by_id = {c["correction_id"]: c for c in corrections}
    one = next(t for t in trusted if t["correction_id"] in by_id)
    c = by_id[one["correction_id"]]
    assert one["initial"]["text"] == "\n".join(c["original"]["steps"])
    assert one["refined"]["text"].endswith(c["corrected_steps"][-1])
    assert sorted((r["reason"], r["record"]["correction_id"]) for r in load_jsonl(rejects)) == [
        ("no_preference", failed["correction_id"]),
        ("unparseable", unread["correction_id"]),
    ]
    assert "21 truster records" in result.stderr
    assert "1 initial preferred" in result.stderr

    # `stats` reads ART records with any other output and counts them.
    out = tmp_path / "truster.jsonl"
    out.write_text(result.stdout)
    report = run("stats", str(out), str(samples), "--json", "-q")
    assert report.exit_code == 0, report.stderr
    assert json.loads(report.stdout)["art_records"] == {"asker": 0, "truster": 21}


def test_a_correction_without_incorrect_step_is_bad_input_everywhere(tmp_path: Path) -> None:
    """`correct` and `inject` always write `incorrect_step` (null only beside a
    reject_reason); a record without the key is an error naming file:line in every command
    that reads corrections, and with --skip-bad-rows it is set aside as missing_field. One
    whose step is null or outside the sample is set aside by `art trust` as `filter` does."""
    injected = run("inject", str(EXAMPLES / "gsm8k.jsonl"), "--per-question", "1", "-q")
    rows = records(injected)
    assert len(rows) >= 4
    assert all(r["verdict"] == "correct" and r["original"]["verdict"] == "wrong" for r in rows)
    missing = copy.deepcopy(rows[1])
    del missing["incorrect_step"]
    path = write_jsonl(tmp_path / "c.jsonl", [rows[0], missing, *rows[2:]])
    commands = [["filter"], ["export", "-f", "lema"], ["art", "trust"], ["stats"]]
    for command in commands:
        result = run(*command, str(path))
        assert result.exit_code == 1, (command, result.stderr)
        assert f"{path.name}:2: missing field 'incorrect_step'" in result.stderr, command
        assert "Traceback" not in result.stderr
    rejects = tmp_path / "rejects.jsonl"
    skipped = run("art", "trust", str(path), "--skip-bad-rows", "--rejects", str(rejects))
    assert skipped.exit_code == 0, skipped.stderr
    assert len(records(skipped)) == len(rows) - 1
    assert [r["reason"] for r in load_jsonl(rejects)] == ["missing_field"]

    # Present but null (no reject_reason) or past the last step: no step to refine from.
    null, past = copy.deepcopy(rows[1]), copy.deepcopy(rows[2])
    null["incorrect_step"] = None
    past["incorrect_step"] = len(past["original"]["steps"]) + 1
    path = write_jsonl(tmp_path / "odd.jsonl", [rows[0], null, past])
    for command in (["art", "trust"], ["filter"], ["export", "-f", "lema"]):
        rejects = tmp_path / f"{command[0]}.rejects.jsonl"
        result = run(*command, str(path), "--rejects", str(rejects))
        assert result.exit_code == 0, (command, result.stderr)
        assert len(records(result)) == 1, command
        reasons = [(r["reason"], r["record"]["correction_id"]) for r in load_jsonl(rejects)]
        assert reasons == [
            ("step_out_of_range", null["correction_id"]),
            ("step_out_of_range", past["correction_id"]),
        ], command
