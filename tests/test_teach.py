"""`lemagen inject --model`: a teacher on the loopback server puts a mistake of a LEMMA type
into a step of each gold solution, answering as real teachers do (markdown, thinking, chatty,
JSON, LEMMA's <explanation> tag) and as bad ones (the answer left at gold, an earlier step
rewritten, the named step left alone, a refusal, a reply cut short)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from lemagen.lemma.teacher import gold_steps
from lemagen.math.grading import Grader
from lemagen.records.problems import ProblemReader
from tests.conftest import DATA, EXAMPLES, known_answers, load_jsonl, records, run, write_jsonl
from tests.fake_openai import FakeOpenAI, MathTutor
from tests.mistake_models import TEACHER_STYLES, MistakeModels

SLICE = DATA / "gsm8k_train_slice.jsonl"
TYPES = "calculation_error,operator_error,missing_step"


@pytest.fixture
def models() -> Iterator[tuple[FakeOpenAI, MistakeModels]]:
    responder = MistakeModels(MathTutor(known_answers(EXAMPLES / "gsm8k.jsonl", SLICE)))
    server = FakeOpenAI(responder, reasoning_field="reasoning_content").start()
    yield server, responder
    server.stop()


def problems_by_question() -> dict[str, list[str]]:
    reader = ProblemReader()
    return {
        p.question: gold_steps(p)
        for p in (reader.read(r, f"f:{i}") for i, r in enumerate(load_jsonl(SLICE), 1))
    }


def test_injected_mistakes_are_kept_or_set_aside_with_their_reason(
    models: tuple[FakeOpenAI, MistakeModels], tmp_path: Path, grader: Grader
) -> None:
    fake, responder = models
    gold = problems_by_question()
    assert len(gold) == 40
    styles = list(TEACHER_STYLES)
    for i, question in enumerate(gold):
        responder.styles[question] = styles[i % len(styles)]
    rejects = tmp_path / "rejects.jsonl"
    result = run("inject", str(SLICE), "-m", "gpt-4o", "--types", TYPES, "--seed", "1",
                 "--rejects", str(rejects), "--base-url", fake.base_url)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    kept = records(result)
    set_aside = load_jsonl(rejects)
    assert len(kept) + len(set_aside) == 40 == responder.asked["teacher"]

    for r in kept:
        steps = gold[r["question"]]
        k = r["incorrect_step"]
        style = responder.styles[r["question"]]
        assert TEACHER_STYLES[style] is None or (style == "prefix_changer" and k == 1)
        assert 1 <= k < len(steps)
        original = r["original"]["steps"]
        assert original[: k - 1] == steps[: k - 1]  # the steps before are the gold ones
        assert original[k - 1] != steps[k - 1]
        assert r["original"]["verdict"] == "wrong"
        assert grader.compare("gsm8k", r["gold"], r["original"]["pred"]) == "wrong"
        assert r["corrected_steps"] == steps[k - 1 :]
        assert r["corrected_from"] == k
        assert r["verdict"] == "correct"
        assert r["explanation"] == f"Step {k} is off by 3." or style == "chatty"
        meta = r["meta"]
        assert meta["stage"] == "inject"
        assert meta["model"] == "gpt-4o"
        assert meta["injected_error_type"] in TYPES.split(",")
        assert meta["injected_step"] == k
        assert meta["seed"] == 1  # inject's --seed, not the (unsent) sampling seed
        assert r["response"].startswith(f" Step {k}.\nExplanation: ")
    good = [q for q, s in responder.styles.items() if TEACHER_STYLES[s] is None]
    assert len(kept) >= len(good) == 25  # 7 good styles of 12 over 40 problems: 7+7+7+4
    respaced = [r for r in kept if responder.styles[r["question"]] == "respaced"]
    assert any(r["incorrect_step"] > 1 for r in respaced)
    for r in set_aside:
        injection = r["record"]["injection"]
        style = responder.styles[r["record"]["question"]]
        assert r["reason"] == TEACHER_STYLES[style], style
        assert injection["reply"]  # nothing paid for is lost
        assert injection["error_type"] in TYPES.split(",")
        assert r["detail"]
    assert {r["reason"] for r in set_aside} == {v for v in TEACHER_STYLES.values() if v}
    assert f"{len(kept)} injected" in result.stderr

    # `filter` and `export` take them as they take `correct`'s corrections.
    path = tmp_path / "injected.jsonl"
    path.write_text(result.stdout)
    filtered = run("filter", str(path), "-q")
    assert filtered.exit_code == 0
    assert len(records(filtered)) == len(kept)
    exported = run("export", str(path), "-f", "alpaca", "-q")
    assert len(records(exported)) == len(kept)

    # Same seed, same requests: all from the request store, the same bytes out.
    before = len(fake.requests)
    again = run("inject", str(SLICE), "-m", "gpt-4o", "--types", TYPES, "--seed", "1",
                "--base-url", fake.base_url, "-q")  # fmt: skip
    assert len(fake.requests) == before
    assert sorted(again.stdout.splitlines()) == sorted(result.stdout.splitlines())


def analysis_file(
    tmp_path: Path, counts: dict[str, int], ids: dict[str, str] | None = None
) -> Path:
    """Analysis records (as `lemagen analyze` writes them) with these error types (of the
    problem `ids[type]`, else of made-up problems)."""
    rows = []
    for i, (error_type, n) in enumerate(
        (t, 1) for t, count in counts.items() for _ in range(count)
    ):
        rows.append(
            {"id": (ids or {}).get(error_type, f"p{i}"), "task": "gsm8k", "question": "q",
             "gold": "1",
             "sample_id": f"p{i}-s", "original": {"steps": ["a", "The answer is 2."],
             "pred": "2", "verdict": "wrong", "meta": {"model": "r"}},
             "response": "First wrong step: 1", "first_error_step": n,
             "error_type": error_type, "explanation": None, "meta": {"model": "a"}}
        )  # fmt: skip
    return write_jsonl(tmp_path / "analysis.jsonl", rows)


def injected_types(fake: FakeOpenAI, *args: str) -> Counter[str]:
    result = run("inject", str(SLICE), "-m", "gpt-4o", "--per-question", "3",
                 "--base-url", fake.base_url, "-q", *args)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    sent = [r["body"]["messages"][-1]["content"] for r in fake.requests]
    return Counter(
        p.split("Kind of mistake: ", 1)[1].split(" ", 1)[0]
        for p in sent
        if "Kind of mistake: " in p
    )


def test_types_are_drawn_by_the_analysed_frequencies(
    models: tuple[FakeOpenAI, MistakeModels], tmp_path: Path
) -> None:
    fake, _ = models
    path = analysis_file(tmp_path, {"calculation_error": 9, "counting_error": 1})
    drawn = injected_types(fake, "--types-from", str(path), "--seed", "7")
    assert set(drawn) == {"calculation_error", "counting_error"}
    assert sum(drawn.values()) >= 100  # 40 problems, 3 distinct (type, step) pairs or fewer
    # 9 : 1 in the analysis; distinct (type, step) pairs per problem temper it a little.
    assert drawn["calculation_error"] > 3 * drawn["counting_error"] > 0
    fake.requests.clear()
    # --types: each given type, alike.
    given = injected_types(fake, "--types", "hallucination,unit_conversion_error", "--seed", "7")
    assert set(given) == {"hallucination", "unit_conversion_error"}
    assert min(given.values()) > sum(given.values()) / 4


def test_question_types_draws_a_problem_s_own_types(
    models: tuple[FakeOpenAI, MistakeModels], tmp_path: Path
) -> None:
    fake, _ = models
    first = ProblemReader().read(load_jsonl(SLICE)[0], "f:1")
    path = analysis_file(
        tmp_path, {"hallucination": 1, "counting_error": 30}, ids={"hallucination": first.id}
    )

    def asked_of_first(*args: str) -> Counter[str]:
        fake.requests.clear()
        run("inject", str(SLICE), "-m", "t", "--types-from", str(path), "--per-question", "3",
            "--seed", "2", "--no-cache", "--base-url", fake.base_url, "-q", *args)  # fmt: skip
        prompts = [r["body"]["messages"][-1]["content"] for r in fake.requests]
        mine = [p for p in prompts if f"Problem:\n{first.question}\n" in p]
        assert len(mine) == 3
        return Counter(p.split("Kind of mistake: ", 1)[1].split(" ", 1)[0] for p in mine)

    assert asked_of_first("--question-types") == {"hallucination": 3}
    assert asked_of_first()["counting_error"] >= 2  # the whole file's: 30 to 1


def test_a_problem_without_a_gold_solution_is_set_aside(
    models: tuple[FakeOpenAI, MistakeModels], tmp_path: Path
) -> None:
    fake, _ = models
    path = write_jsonl(tmp_path / "p.jsonl", [{"question": "What is 2 + 3?", "answer": "5"}])
    rejects = tmp_path / "r.jsonl"
    result = run("inject", str(path), "-m", "t", "--types", "calculation_error", "--task",
                 "gsm8k", "--rejects", str(rejects), "--base-url", fake.base_url)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert [r["reason"] for r in load_jsonl(rejects)] == ["no_gold_solution"]
    assert fake.requests == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--types", "calculation_error"], "unknown error type calculation_error",
                     id="taxonomy-type-offline"),
        pytest.param(["-m", "t", "--types", "calculation"], "unknown error type calculation; "
                     "choose from calculation_error,", id="offline-type-with-model"),
        pytest.param(["-m", "t"], "--model needs --types or --types-from", id="no-types"),
        pytest.param(["-m", "t", "--types", "missing_step", "--format", "retry"],
                     "--format retry is offline only", id="retry-with-model"),
        pytest.param(["--max-tokens", "5"], "--max-tokens: only with --model", id="endpoint-opt"),
        pytest.param(["--types-from", "a.jsonl"], "--types-from: only with --model",
                     id="types-from-offline"),
        pytest.param(["-m", "t", "--types", "missing_step", "--question-types"],
                     "--question-types needs --types-from", id="question-types-without-file"),
    ],
)  # fmt: skip
def test_usage_errors(args: list[str], message: str) -> None:
    result = run("inject", str(SLICE), *args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_a_bad_analysis_file_is_one_line(tmp_path: Path) -> None:
    path = analysis_file(tmp_path, {"calculation_error": 1})
    row = json.loads(path.read_text())
    row["error_type"] = "sign_error"
    path.write_text(path.read_text() + json.dumps(row) + "\n")
    result = run("inject", str(SLICE), "-m", "t", "--types-from", str(path))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {path}:2: field 'error_type' must be one of ")
    empty = write_jsonl(tmp_path / "e.jsonl", [])
    result = run("inject", str(SLICE), "-m", "t", "--types-from", str(empty))
    assert result.exit_code == 1
    assert "no analysis records" in result.stderr
