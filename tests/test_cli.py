"""The commands end to end, against the loopback OpenAI-compatible server."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from lemagen import __version__
from lemagen.cli import cli
from tests.conftest import (
    DATA,
    EXAMPLES,
    endpoint,
    interruptible,
    load_jsonl,
    records,
    run,
    write_jsonl,
)
from tests.fake_openai import FakeOpenAI, wait_until

GSM8K = str(EXAMPLES / "gsm8k.jsonl")
MATH = str(EXAMPLES / "math.jsonl")


def test_version_and_help_examples() -> None:
    version = run("--version").stdout.splitlines()
    assert version[0] == f"lemagen, version {__version__}"
    libraries = next(line for line in version if line.startswith("libraries: "))
    for name in ("httptools", "aiohttp", "uvloop"):  # what carries the requests is named
        assert f" {name} " in libraries, libraries
    cli.load_all()
    assert len(cli.commands) == 13
    for name, command in cli.commands.items():
        text = run(name, "--help").stdout
        assert "Example:" in text, name
        assert f"lemagen {command.name}" in text.split("Example:", 1)[1], name
        assert "Exit codes:" in text


# ---------------------------------------------------------------- sample


def test_sample_keeps_wrong_samples_with_everything_the_next_stage_needs(fake: FakeOpenAI) -> None:
    result = run("sample", GSM8K, "-m", "reasoner", "-n", "4", "--seed", "7", *endpoint(fake))
    assert result.exit_code == 0, result.stderr
    rows = records(result)
    # The tutor answers every other sample wrongly with the same text: one kept per question.
    assert len(rows) == 10
    assert {r["verdict"] for r in rows} == {"wrong"}
    first = rows[0]
    assert first["id"]
    assert first["sample_id"].startswith(first["id"])
    assert first["task"] == "gsm8k"
    assert first["gold"] == "72"
    assert first["steps"][-1] == f"The answer is {first['pred']}."
    meta = first["meta"]
    assert meta["model"] == "reasoner"
    assert meta["temperature"] == 0.7
    assert meta["seed"] == 7
    assert meta["prompt"] == "sample"
    assert len(meta["prompt_sha256"]) == 64
    assert meta["finish_reason"] == "stop"
    assert meta["usage"]["completion_tokens"] > 0
    assert meta["checker"] == {"name": "lemagen-numeric", "version": __version__}
    # One request per problem: n=4 asked for at once, so the prompt is paid once.
    assert len(fake.requests) == 10
    assert all(r["body"]["n"] == 4 and r["body"]["seed"] == 7 for r in fake.requests)
    sent = [r["body"]["messages"][0]["content"] for r in fake.requests]
    assert any(
        p.startswith("Please solve the following math problem.\nQuestion: Natalia") for p in sent
    )


def test_sample_summary_goes_to_stderr(fake: FakeOpenAI) -> None:
    result = run("sample", GSM8K, "-m", "r", "-n", "4", "--base-url", fake.base_url)
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("sample: 10 problems, 40 samples, 20 correct, 10 wrong, 10 duplicate")
    )
    assert all(line.startswith("{") for line in result.stdout.splitlines())


def test_several_reasoners_keep_all(fake: FakeOpenAI) -> None:
    result = run("sample", GSM8K, "-m", "a", "-m", "b", "-n", "2", "--keep", "all", *endpoint(fake))
    rows = records(result)
    assert {r["meta"]["model"] for r in rows} == {"a", "b"}
    assert {r["verdict"] for r in rows} == {"correct", "wrong"}
    # Identical wrong paths from the two reasoners are each model's own: kept once per model
    # (Math-Rev's verifier data wants every generator's mistakes).
    assert sum(r["verdict"] == "wrong" for r in rows) == 20
    assert sum(r["verdict"] == "correct" for r in rows) == 20


def test_server_returning_fewer_choices_is_asked_again(fake: FakeOpenAI) -> None:
    fake.max_n = 1
    result = run("sample", GSM8K, "-m", "r", "-n", "3", "--keep", "all", *endpoint(fake))
    assert result.exit_code == 0
    # The tutor's choice 0 is right in every request: 3 right, 0 wrong per question.
    assert len(records(result)) == 10 * 3
    assert sorted(r["body"]["n"] for r in fake.requests) == [1] * 10 + [2] * 10 + [3] * 10
    assert len(fake.requests) == 30


def test_completion_api(fake: FakeOpenAI) -> None:
    result = run("sample", MATH, "-m", "r", "-n", "2", "--api", "completion", *endpoint(fake))
    assert result.exit_code == 0
    rows = records(result)
    assert len(rows) == 10
    assert {r["path"] for r in fake.requests} == {"/v1/completions"}
    assert fake.requests[0]["body"]["prompt"].endswith("Answer: Let's think step by step.\n")
    assert rows[0]["task"] == "math"
    assert rows[0]["meta"]["checker"]["name"] == "math-verify"


@pytest.mark.parametrize(("prompt", "problems"), [("gsm8k-fewshot", GSM8K), ("math-fewshot", MATH)])
def test_fewshot_prompt_for_base_models(fake: FakeOpenAI, prompt: str, problems: str) -> None:
    """A base model through the completion API: the shipped few-shot prompt ends where the
    solution of the target question starts."""
    args = ["sample", problems, "-m", "r", "-n", "2", "--api", "completion", "--prompt", prompt]
    result = run(*args, *endpoint(fake))
    assert result.exit_code == 0
    sent = fake.requests[0]["body"]["prompt"]
    assert sent.count("Question: ") == 5
    assert sent.endswith("\nAnswer: Let's think step by step.")
    assert {r["meta"]["prompt"] for r in records(result)} == {prompt}


def test_truncated_and_unanswered_samples_are_set_aside(fake: FakeOpenAI, tmp_path: Path) -> None:
    replies = iter(
        [
            ("We start with 48 / 2 = 24 and then", "length"),
            ("I cannot tell.", "stop"),
            ("48 + 24 = 72. The answer is 70.", "stop"),
        ]
    )
    fake.responder = lambda prompt, n: [next(replies) for _ in range(n)]
    problem = write_jsonl(tmp_path / "p.jsonl", [load_jsonl(EXAMPLES / "gsm8k.jsonl")[0]])
    rejects = tmp_path / "rejects.jsonl"
    result = run(
        "sample",
        str(problem),
        "-m",
        "r",
        "-n",
        "3",
        "--rejects",
        str(rejects),
        "--base-url",
        fake.base_url,
    )
    assert [r["pred"] for r in records(result)] == ["70"]
    assert [(r["reason"], r["record"]["response"]) for r in load_jsonl(rejects)] == [
        ("truncated", "We start with 48 / 2 = 24 and then"),
        ("no_answer", "I cannot tell."),
    ]
    assert "1 wrong" in result.stderr
    assert "1 truncated" in result.stderr
    assert "1 no answer" in result.stderr


def test_explicit_answers_only_sets_unmarked_answers_aside(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    """Every sample says how its answer was found; with --explicit-answers-only a sample whose
    answer was only read off its last sentence is set aside, not kept as a mistake."""
    problem = write_jsonl(tmp_path / "p.jsonl", [load_jsonl(EXAMPLES / "gsm8k.jsonl")[0]])
    replies = [
        ("48 + 24 = 72. The answer is 70.", "stop"),
        ("48 + 24 = 72 clips.\n#### 71", "stop"),
        ("She sold 48 + 24 = 69 clips in all.", "stop"),
        ("Sample 3-1.\nI am not sure how to go on from here.", "stop"),
    ]
    fake.responder = lambda prompt, n: replies[:n]
    args = ["sample", str(problem), "-m", "r", "-n", "4", "--base-url", fake.base_url]
    result = run(*args, "--rejects", str(tmp_path / "all.jsonl"))
    assert [(r["pred"], r["extracted_by"]) for r in records(result)] == [
        ("70", "answer_is"),
        ("71", "hashes"),
        ("69", "last_number"),
    ]
    assert [r["record"]["extracted_by"] for r in load_jsonl(tmp_path / "all.jsonl")] == [None]

    rejects = tmp_path / "explicit.jsonl"
    result = run(*args, "--explicit-answers-only", "--rejects", str(rejects))
    assert [r["extracted_by"] for r in records(result)] == ["answer_is", "hashes"]
    assert [(r["reason"], r["record"]["pred"]) for r in load_jsonl(rejects)] == [
        ("implicit_answer", "69"),
        ("no_answer", None),
    ]
    assert "2 wrong" in result.stderr
    assert "1 implicit answer" in result.stderr


# ---------------------------------------------------------------- correct and filter


def test_correct_sends_the_lema_query_and_parses_replies(fake: FakeOpenAI) -> None:
    wrong = run("sample", GSM8K, "-m", "r", "-n", "2", *endpoint(fake)).stdout
    fake.requests.clear()
    result = run("correct", "-m", "corrector", "-n", "2", *endpoint(fake), input=wrong)
    assert result.exit_code == 0
    rows = records(result)
    assert len(rows) == 20
    prompts = [r["body"]["messages"][0]["content"] for r in fake.requests]
    assert all(p.startswith("Each math word problem below comes with a solution") for p in prompts)
    assert any(
        p.endswith(
            "Question: Natalia sold clips to 48 of her friends in April, and then she sold half as "
            "many clips in May. How many clips did Natalia sell altogether in April and May?\n"
            "Original Solution:\n{\nStep 1: We work through it.\nStep 2: The total comes to 79.\n"
            "Step 3: The answer is 79.\n}\nIncorrect Step:"
        )
        for p in prompts
    )
    first = rows[0]
    assert (first["incorrect_step"], first["elided"], first["corrected_from"]) == (3, True, 3)
    assert first["pred"] == "72"
    assert first["verdict"] == "correct"
    assert first["original"]["pred"] == "79"
    assert first["sample_id"] in first["correction_id"]
    assert first["meta"]["stage"] == "correct"
    assert first["meta"]["model"] == "corrector"
    assert len({r["correction_id"] for r in rows}) == 20


def test_unparseable_reply_is_kept_with_its_reason_then_filtered(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    wrong = run("sample", GSM8K, "-m", "r", "-n", "2", *endpoint(fake)).stdout
    fake.responder = lambda prompt, n: [("The solution looks fine to me.", "stop")] * n
    corrected = run("correct", "-m", "c", *endpoint(fake), input=wrong)
    rows = records(corrected)
    assert len(rows) == 10
    assert {r["reject_reason"] for r in rows} == {"unparseable: no incorrect step number"}
    assert {(r["pred"], r["verdict"]) for r in rows} == {(None, "no_answer")}
    dropped = tmp_path / "dropped.jsonl"
    result = run("filter", "--rejects", str(dropped), input=corrected.stdout)
    assert result.stdout == ""
    assert {r["reason"] for r in load_jsonl(dropped)} == {"unparseable"}
    assert "dropped 10: unparseable 10" in result.stderr


def test_pipeline_with_cot(fake: FakeOpenAI) -> None:
    sampled = run("sample", MATH, "-m", "r", "-n", "2", "--keep", "all", *endpoint(fake))
    corrected = run("correct", "-m", "c", *endpoint(fake), input=sampled.stdout)
    result = run("filter", "--with-cot", input=corrected.stdout)
    rows = records(result)
    kinds = [("Correct Solution:" in r["completion"]) for r in rows]
    assert kinds.count(True) == 10
    assert kinds.count(False) == 10
    assert all(set(r) == {"prompt", "completion"} for r in rows)
    assert "kept 20 (10 correction, 10 cot)" in result.stderr


# ---------------------------------------------------------------- grade


def test_grade_labels_outputs(tmp_path: Path) -> None:
    rows = load_jsonl(DATA / "math500_slice.jsonl")[:3]
    outputs = [
        {**rows[0], "response": "So it is $\\boxed{(3, \\pi/2)}$."},
        {**rows[1], "response": "The answer is $p + q$."},
        {**rows[2], "response": "No idea."},
    ]
    path = write_jsonl(tmp_path / "out.jsonl", outputs)
    result = run("grade", str(path), "-q")
    graded = records(result)
    assert [(r["pred"], r["verdict"]) for r in graded] == [
        ("(3, \\pi/2)", "correct"),
        ("p + q", "wrong"),
        (None, "no_answer"),
    ]
    assert all(
        set(g) == set(o) | {"pred", "extracted_by", "verdict"}
        for g, o in zip(graded, outputs, strict=True)
    )


def test_grade_reads_unmarked_and_labelled_answers(tmp_path: Path) -> None:
    """Real answer endings that are not boxed: graded on what they say, with how it was read."""
    outputs = [
        {"question": "q1", "answer": "34", "response": "Final Answer: The largest $n$ is 34."},
        {"question": "q2", "answer": "\\frac{1}{3}", "response": "So the chance is\n$\\frac13$"},
        {"question": "q3", "answer": "18.90", "response": "The answer is $\\$18.90$."},
        {
            "question": "q4",
            "answer": "(-\\infty,-2)\\cup(3,\\infty)",
            "response": "The answer is $x<-2$ or $x>3$.",
        },
        {"question": "q5", "answer": "12", "response": "Then $n=12$. I am not sure how to go on."},
    ]
    path = write_jsonl(tmp_path / "out.jsonl", outputs)
    result = run("grade", str(path), "--task", "math")
    assert [(r["pred"], r["extracted_by"], r["verdict"]) for r in records(result)] == [
        ("34", "label", "correct"),
        ("\\frac13", "last_expression", "correct"),
        ("\\$18.90", "answer_is", "correct"),
        ("x<-2 \\text{ or } x>3", "answer_is", "correct"),
        (None, None, "no_answer"),
    ]
    assert result.stderr == "grade: 4 correct, 1 no answer\n"


def test_grade_custom_fields_and_timeout(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "o.jsonl",
        [
            # Decided without the symbolic checker: only the second row meets the 1 s limit.
            {"completion": "The answer is 1000.", "target": 1000},
            {"completion": "\\boxed{9^{9^{9^{9}}}}", "target": "5"},
        ],
    )
    result = run(
        "grade",
        str(path),
        "--response-field",
        "completion",
        "--answer-field",
        "target",
        "--task",
        "math",
        "--check-timeout",
        "1",
    )
    assert [r["verdict"] for r in records(result)] == ["correct", "timeout"]
    assert "grade: 1 correct, 1 timeout" in result.stderr


# ---------------------------------------------------------------- bad input and endpoints


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        pytest.param(
            ['{"question": "q", "answer": "#### 1"}', "{not json"],
            "Error: {path}:2: invalid JSON: Expecting property name enclosed in double quotes "
            "(column 2)",
            id="malformed-json",
        ),
        pytest.param(
            ['{"question": "a\x01b", "answer": "#### 1"}'],
            "Error: {path}:1: invalid JSON: Invalid control character (column 16)",
            id="control-character",  # json's message ends in "at": the column is said instead
        ),
        pytest.param(
            ['["a list"]'], "Error: {path}:1: expected a JSON object, got list", id="not-object"
        ),
        pytest.param(
            ['{"question": "q"}'], "Error: {path}:1: missing field 'answer'", id="missing-gold"
        ),
        pytest.param(
            ['{"answer": "#### 3"}'],
            "Error: {path}:1: missing field 'question'",
            id="missing-question",
        ),
        pytest.param(
            ['{"question": "q", "answer": "#### lots"}'],
            "Error: {path}:1: cannot read a gsm8k gold answer from field 'answer'",
            id="unreadable-gold",
        ),
        pytest.param(
            ['{"question": "q", "answer": "#### 3", "task": "chess"}'],
            "Error: {path}:1: unknown task 'chess' (expected gsm8k or math)",
            id="unknown-task",
        ),
    ],
)
def test_bad_input_stops_with_file_and_line(
    fake: FakeOpenAI, tmp_path: Path, lines: list[str], message: str
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = run("sample", str(path), "-m", "r", *endpoint(fake))
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [message.format(path=path)]


def test_unknown_task_option_is_a_usage_error(tmp_path: Path) -> None:
    result = run("sample", GSM8K, "-m", "r", "--task", "chess")
    assert result.exit_code == 2
    assert "Invalid value for '--task'" in result.stderr


def test_skip_bad_rows_sets_them_aside(fake: FakeOpenAI, tmp_path: Path) -> None:
    good = load_jsonl(EXAMPLES / "gsm8k.jsonl")[:2]
    path = tmp_path / "mixed.jsonl"
    path.write_text(
        json.dumps(good[0]) + "\n{oops\n" + '{"question": "q"}\n' + json.dumps(good[1]) + "\n",
        encoding="utf-8",
    )
    rejects = tmp_path / "rejects.jsonl"
    result = run(
        "sample",
        str(path),
        "-m",
        "r",
        "-n",
        "2",
        "--skip-bad-rows",
        "--rejects",
        str(rejects),
        "--base-url",
        fake.base_url,
    )
    assert result.exit_code == 0
    assert len(records(result)) == 2
    assert [(r["reason"], r["detail"]) for r in load_jsonl(rejects)] == [
        (
            "bad_json",
            f"{path}:2: invalid JSON: Expecting property name enclosed in double quotes (column 2)",
        ),
        ("missing_field", f"{path}:3: missing field 'answer'"),
    ]
    assert "2 bad rows" in result.stderr


def test_bad_row_after_sent_requests_keeps_their_output(fake: FakeOpenAI, tmp_path: Path) -> None:
    good = load_jsonl(EXAMPLES / "gsm8k.jsonl")[:3]
    path = write_jsonl(tmp_path / "p.jsonl", good)
    with path.open("a") as f:
        f.write("{broken\n")
    result = run("sample", str(path), "-m", "r", "-n", "2", *endpoint(fake))
    assert result.exit_code == 1
    assert len(records(result)) == 3  # paid for before the bad line was reached: not lost
    assert result.stderr.startswith(f"Error: {path}:4: invalid JSON")


def test_correct_rejects_input_that_is_not_sample_output(tmp_path: Path) -> None:
    result = run("correct", GSM8K, "-m", "c", "--base-url", "http://127.0.0.1:9/v1")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"Error: {GSM8K}:1: missing field 'sample_id' (is this `lemagen sample` output?)"
    )


@pytest.mark.parametrize("transport", ["aiohttp", "openai"])
def test_unreachable_endpoint(transport: str) -> None:
    # Default retries: a refused connection before any success is not worth retrying.
    result = run(
        "sample", GSM8K, "-m", "llama", "--base-url", "http://127.0.0.1:9/v1",
        "--transport", transport,
    )  # fmt: skip
    assert result.exit_code == 3
    message = result.stderr.strip()
    assert message.startswith(
        "Error: cannot reach endpoint http://127.0.0.1:9/v1 (model 'llama'): "
    )
    assert "\n" not in message
    if transport == "aiohttp":  # the SDK words it its own way ("All connection attempts failed")
        assert message.endswith("): connection refused")
    # One attempt (-v logs each), not a retry after --retry-delay.
    result = run(
        "-v", "sample", GSM8K, "-m", "llama", "--base-url", "http://127.0.0.1:9/v1",
        "--transport", transport, "--concurrency", "1",
    )  # fmt: skip
    assert result.exit_code == 3
    assert result.stderr.count("POST http://127.0.0.1:9/v1/chat/completions") == 1
    assert result.stderr.strip().splitlines()[-1] == message


def test_bad_key(fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    fake.api_key = "sk-right"
    monkeypatch.setenv("MY_KEY", "sk-wrong-secret")
    result = run("sample", GSM8K, "-m", "gpt-x", "--api-key-env", "MY_KEY", *endpoint(fake))
    assert result.exit_code == 3
    assert result.stderr.strip() == (
        f"Error: endpoint {fake.base_url}, model 'gpt-x': API key rejected "
        "(HTTP 401: Incorrect API key provided.)"
    )
    assert "sk-wrong-secret" not in result.stdout + result.stderr
    assert len(fake.requests) == 1  # stopped at once, no retries
    monkeypatch.delenv("MY_KEY")
    result = run("sample", GSM8K, "-m", "gpt-x", "--api-key-env", "MY_KEY", *endpoint(fake))
    assert result.stderr.strip().endswith("; set MY_KEY")


@pytest.mark.parametrize("key", ["sk-secret\n", "sk-sec ret", "sk-s\u00e9cret"])
def test_a_key_no_header_can_carry_is_a_usage_error(
    fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    monkeypatch.setenv("MY_KEY", key)
    result = run("sample", GSM8K, "-m", "gpt-x", "--api-key-env", "MY_KEY", *endpoint(fake))
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "Error: the API key from $MY_KEY holds a space, a line break or a non-ASCII character, "
        "which an HTTP header cannot carry (a newline left over from a file?)"
    )
    assert "secret" not in result.stdout + result.stderr
    assert fake.requests == []


def test_unknown_model(fake: FakeOpenAI) -> None:
    fake.models = {"known"}
    result = run("sample", GSM8K, "-m", "nope", *endpoint(fake))
    assert result.exit_code == 3
    assert result.stderr.strip() == (
        f"Error: endpoint {fake.base_url}, model 'nope': model or route not found "
        "(HTTP 404: The model `nope` does not exist.)"
    )


def test_failing_requests_are_retried_then_set_aside(fake: FakeOpenAI, tmp_path: Path) -> None:
    problems = write_jsonl(tmp_path / "p.jsonl", load_jsonl(EXAMPLES / "gsm8k.jsonl")[:3])
    doomed = load_jsonl(problems)[1]["question"]
    server_error = (500, {"error": {"message": "boom", "type": "server_error"}})
    fake.rule = lambda body: server_error if doomed in json.dumps(body) else None
    rejects = tmp_path / "rejects.jsonl"
    result = run(
        "sample",
        str(problems),
        "-m",
        "r",
        "-n",
        "2",
        "--max-retries",
        "2",
        "--retry-delay",
        "0.01",
        "--rejects",
        str(rejects),
        "--base-url",
        fake.base_url,
    )
    assert result.exit_code == 4
    assert sum(doomed in json.dumps(r["body"]) for r in fake.requests) == 3  # 1 try + 2 retries
    assert len(records(result)) == 2
    failed = load_jsonl(rejects)
    assert [(r["reason"], r["record"]["error"]) for r in failed] == [
        ("request_failed", "HTTP 500: boom (gave up after 3 attempts)")
    ]
    assert result.stderr.strip().endswith(
        "Error: 1 requests failed (see --rejects); re-running the same command retries only those"
    )
    # Re-running sends only the failed call; the rest come from the request store.
    fake.rule = None
    before = len(fake.requests)
    again = run("sample", str(problems), "-m", "r", "-n", "2", *endpoint(fake))
    assert again.exit_code == 0
    assert len(records(again)) == 3
    assert [doomed in json.dumps(r["body"]) for r in fake.requests[before:]] == [True]


def test_transient_errors_are_retried_transparently(fake: FakeOpenAI) -> None:
    fake.errors.extend([(429, {"error": {"message": "slow down"}}), (503, {"error": "busy"})])
    result = run("sample", GSM8K, "-m", "r", "-n", "2", "--concurrency", "1", *endpoint(fake))
    assert result.exit_code == 0
    assert len(records(result)) == 10


# ---------------------------------------------------------------- process-level exits


def _lemagen(*args: str) -> list[str]:
    return [sys.executable, "-m", "lemagen", *args]


def test_closed_stdout_stops_quietly(tmp_path: Path) -> None:
    rows = load_jsonl(EXAMPLES / "gsm8k.jsonl") * 200
    path = write_jsonl(tmp_path / "many.jsonl", [{**r, "response": r["answer"]} for r in rows])
    proc = subprocess.Popen(
        _lemagen("grade", str(path), "-q"), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None
    assert json.loads(proc.stdout.readline())["verdict"] == "correct"
    proc.stdout.close()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 141
    assert err == b""


def test_ctrl_c_exits_130(fake: FakeOpenAI) -> None:
    """Ctrl-C while a request is out (the server holds its answer until the run is over)."""
    over = threading.Event()

    def held(prompt: str, n: int) -> list[tuple[str, str]]:
        over.wait(120)
        return [("The answer is 1.", "stop")] * n

    fake.responder = held
    proc = subprocess.Popen(
        _lemagen("sample", GSM8K, "-m", "r", "--concurrency", "1", "--base-url", fake.base_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=interruptible,
    )
    try:
        wait_until(lambda: len(fake.log) > 0 or proc.poll() is not None, "the first request")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        answered = len(fake.served)
    finally:
        over.set()
    assert answered == 0  # interrupted while waiting for the answer
    assert proc.returncode == 130
    assert err.decode().strip().splitlines()[-1] == "Interrupted."
    assert "Traceback" not in err.decode()


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        pytest.param([], "", "OPENAI_BASE_URL is set but empty", id="empty-env"),
        pytest.param([], "  ", "OPENAI_BASE_URL is set but empty", id="blank-env"),
        pytest.param(["--base-url", ""], None, "--base-url is empty", id="empty-flag"),
        pytest.param(
            ["--base-url", "localhost:8000/v1"], None, "is not an http:// or https://", id="scheme"
        ),
    ],
)
def test_an_empty_endpoint_is_a_usage_error_not_the_hosted_default(
    args: list[str], env: str | None, message: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    if env is not None:
        monkeypatch.setenv("OPENAI_BASE_URL", env)
    problems = tmp_path / "p.jsonl"
    problems.write_text('{"question": "q", "answer": "#### 1"}\n', encoding="utf-8")
    result = run("sample", str(problems), "-m", "m", "--dry-run", *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert "api.openai.com" not in result.stderr.split(message)[0]


def test_an_output_that_is_the_input_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_bytes((EXAMPLES / "gsm8k.jsonl").read_bytes())
    for flag in ("-o", "--rejects"):
        result = run("inject", str(path), flag, str(path))
        assert result.exit_code == 2
        assert "is the input file" in result.stderr
        assert path.read_bytes() == (EXAMPLES / "gsm8k.jsonl").read_bytes()


def test_rejects_on_stdout_beside_the_records_is_refused() -> None:
    result = run("inject", GSM8K, "--rejects", "-")
    assert result.exit_code == 2
    assert "--rejects - would mix" in result.stderr


def test_a_samples_own_fields_travel_into_its_corrections(fake: FakeOpenAI) -> None:
    sampled = records(run("sample", GSM8K, "-m", "r", "-n", "2", *endpoint(fake)))
    mine = "".join(json.dumps({**s, "annotator": "bob"}) + "\n" for s in sampled)
    corrected = records(run("correct", "-", "-m", "c", *endpoint(fake), input=mine))
    assert len(corrected) == 10
    assert all(c["annotator"] == "bob" for c in corrected)
    pairs = records(run("export", "-", "-f", "dpo", "--keep-fields", "annotator", input=mine))
    assert pairs == []  # wrong samples only: nothing to pair, the field is read without error


def test_a_command_loads_only_its_own_modules() -> None:
    """`lemagen filter` starts without the batch machinery, the LaTeX parser or the other
    commands' stages (cli.app.LazyGroup): start-up is part of every run's time."""
    code = (
        "import sys, click; from lemagen.cli import cli; "
        "cli.get_command(click.Context(cli), 'filter'); "
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('lemagen'))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert "lemagen.cli.lema" in loaded
    for other in ("lemagen.cli.curate", "lemagen.cli.batches", "lemagen.mistakes.latex"):
        assert other not in loaded
