"""Real reasoners: the loopback server answers like a reasoning model (thinking in the text,
in a field, never closed), a base model that runs on into an invented next question, and a
reasoning corrector; the records written and set aside are exactly the expected ones and no
training record holds thinking. Also the request shape: --system, --stop, --extra-body and
max_completion_tokens reach the server, and change the store key only when given."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXAMPLES, endpoint, known_answers, load_jsonl, records, run
from tests.fake_openai import FakeOpenAI, MathTutor, Reply

THINKING = "Let me think. 48 / 2 is 24, and 48 + 24 = 72. I am confident now."


class Reasoner(MathTutor):
    """Thinks aloud before every answer: `<think>...</think>` then MathTutor's solution; with
    `unclosed`, sample 1 of each request thinks until the token limit."""

    def __init__(self, *, unclosed: bool = False, opened: bool = True) -> None:
        super().__init__(known_answers(EXAMPLES / "gsm8k.jsonl"))
        self.unclosed = unclosed
        self.opened = opened

    def __call__(self, prompt: str, n: int) -> list[Reply]:
        replies = super().__call__(prompt, n)
        out = []
        for i, (text, finish) in enumerate(replies):
            if self.unclosed and i == 1:
                out.append((f"<think>{THINKING} Wait, let me recount the", "length"))
                continue
            opening = "<think>" if self.opened else ""  # the template opened it
            out.append((f"{opening}{THINKING}</think>\n\n{text}", finish))
        return out


class RunOn(MathTutor):
    """A base model on /completions: a whole solution, then an invented next question, cut at
    the token limit."""

    def __init__(self) -> None:
        super().__init__(known_answers(EXAMPLES / "gsm8k.jsonl"))

    def __call__(self, prompt: str, n: int) -> list[Reply]:
        replies = super().__call__(prompt, n)
        tail = "\n\nQuestion: A farmer has 12 cows and buys 7 more. How many"
        return [(text + tail, "length") for text, _ in replies]


def _problems(tmp_path: Path, rows: int = 5) -> Path:
    path = tmp_path / "p.jsonl"
    path.write_text(
        "".join(json.dumps(r) + "\n" for r in load_jsonl(EXAMPLES / "gsm8k.jsonl")[:rows]),
        encoding="utf-8",
    )
    return path


def _serve(responder: Any, **kw: Any) -> FakeOpenAI:
    return FakeOpenAI(responder, **kw).start()


@pytest.mark.parametrize(
    ("field", "opened"),
    [
        pytest.param(None, True, id="think-in-text"),
        pytest.param(None, False, id="think-opened-by-template"),
        pytest.param("reasoning_content", True, id="reasoning_content-field"),
        pytest.param("reasoning", True, id="reasoning-field"),
    ],
)
def test_thinking_is_kept_apart_and_never_in_steps_or_training(
    field: str | None, opened: bool, tmp_path: Path
) -> None:
    server = _serve(Reasoner(opened=opened), reasoning_field=field)
    try:
        result = run(
            "sample", str(_problems(tmp_path)), "-m", "r1", "-n", "2", "--keep", "all",
            *endpoint(server),
        )  # fmt: skip
        assert result.exit_code == 0, result.stderr
        samples = records(result)
        assert len(samples) == 10  # 5 problems x (1 right + 1 wrong)
        for s in samples:
            assert s["thinking"] == THINKING
            assert "think>" not in s["response"]
            assert all(THINKING not in step and "think>" not in step for step in s["steps"])
            assert s["steps"][-1].startswith("The answer is")
        assert sorted(s["verdict"] for s in samples) == ["correct"] * 5 + ["wrong"] * 5
        corrected = run("correct", "-", "-m", "c", *endpoint(server), input=result.stdout)
        for fmt in ("lema", "cot", "lemma", "dpo", "sharegpt"):
            out = run("export", "-", "-f", fmt, "--mix" if fmt == "lema" else "-q",
                      input=corrected.stdout).stdout  # fmt: skip
            assert out.strip(), fmt
            assert THINKING not in out
            assert "think>" not in out
    finally:
        server.stop()


def test_thinking_drop_and_steps(tmp_path: Path) -> None:
    server = _serve(Reasoner())
    try:
        problems = str(_problems(tmp_path, 2))
        dropped = records(
            run("sample", problems, "-m", "r1", "-n", "2", "--keep", "all", "--thinking", "drop",
                *endpoint(server))
        )  # fmt: skip
        kept = records(
            run("sample", problems, "-m", "r1", "-n", "2", "--keep", "all", "--thinking",
                "steps", *endpoint(server))
        )  # fmt: skip
    finally:
        server.stop()
    assert len(dropped) == 4
    assert all("thinking" not in s and "think>" not in json.dumps(s) for s in dropped)
    assert all(not s["steps"][0].startswith("Let me think.") for s in dropped)
    assert len(kept) == 4
    assert all(s["steps"][0].startswith("Let me think.") for s in kept)
    assert all(s["thinking"] == THINKING for s in kept)


def test_thinking_that_never_closes_is_truncated(tmp_path: Path) -> None:
    server = _serve(Reasoner(unclosed=True))
    rejects = tmp_path / "rejects.jsonl"
    try:
        result = run(
            "sample", str(_problems(tmp_path)), "-m", "r1", "-n", "2", "--keep", "all",
            "--rejects", str(rejects), *endpoint(server),
        )  # fmt: skip
    finally:
        server.stop()
    assert [s["verdict"] for s in records(result)] == ["correct"] * 5
    set_aside = load_jsonl(rejects)
    assert [r["reason"] for r in set_aside] == ["truncated"] * 5
    assert all(r["record"]["thinking"].startswith("Let me think.") for r in set_aside)
    assert all(r["record"]["response"] == "" for r in set_aside)


def test_a_base_model_that_runs_on_is_judged_on_what_came_before(tmp_path: Path) -> None:
    server = _serve(RunOn())
    try:
        result = run(
            "sample", str(_problems(tmp_path)), "-m", "base", "--api", "completion", "-n", "2",
            "--keep", "all", *endpoint(server),
        )  # fmt: skip
        body = server.requests[0]["body"]
    finally:
        server.stop()
    samples = records(result)
    assert len(samples) == 10  # none set aside as truncated
    assert sorted(s["verdict"] for s in samples) == ["correct"] * 5 + ["wrong"] * 5
    assert all("farmer" not in " ".join(s["steps"]) for s in samples)
    assert body["stop"] == ["\n\nQuestion:", "\n\nProblem:"]  # the default stop of --api completion
    assert all(s["meta"]["stop"] == ["\n\nQuestion:", "\n\nProblem:"] for s in samples)


def test_a_reasoning_corrector_is_read_after_its_thinking(fake: FakeOpenAI, tmp_path: Path) -> None:
    sampled = run("sample", str(_problems(tmp_path)), "-m", "r", "-n", "2", *endpoint(fake))
    plain = records(run("correct", "-", "-m", "c", *endpoint(fake), input=sampled.stdout))
    tutor = fake.responder

    def thinking_corrector(prompt: str, n: int) -> list[Reply]:
        return [(f"<think>{THINKING}</think>{text}", f) for text, f in tutor(prompt, n)]

    fake.responder = thinking_corrector
    thought = records(run("correct", "-", "-m", "c2", *endpoint(fake), input=sampled.stdout))
    assert len(thought) == len(plain) == 5
    by_sample = sorted(plain, key=lambda r: r["sample_id"])
    for a, b in zip(by_sample, sorted(thought, key=lambda r: r["sample_id"]), strict=True):
        assert (a["incorrect_step"], a["corrected_steps"], a["verdict"]) == (
            b["incorrect_step"],
            b["corrected_steps"],
            b["verdict"],
        )
        assert b["reject_reason"] is None


def test_request_shape_reaches_the_server(fake: FakeOpenAI, tmp_path: Path) -> None:
    problems = str(_problems(tmp_path, 2))
    system = tmp_path / "system.txt"
    system.write_text("You are a careful grade-school math tutor.", encoding="utf-8")
    result = run(
        "sample", problems, "-m", "o3-mini", "-n", "2", "--system", f"@{system}",
        "--stop", "END", "--stop", "\n\n\n", "--extra-body",
        '{"chat_template_kwargs": {"enable_thinking": false}}', "--max-tokens", "256",
        *endpoint(fake),
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    body = fake.requests[0]["body"]
    assert body["messages"][0] == {
        "role": "system",
        "content": "You are a careful grade-school math tutor.",
    }
    assert body["messages"][1]["role"] == "user"
    assert body["stop"] == ["END", "\n\n\n"]
    assert body["chat_template_kwargs"] == {"enable_thinking": False}
    assert body["max_completion_tokens"] == 256  # o3 refuses max_tokens
    assert "max_tokens" not in body
    meta = records(result)[0]["meta"]
    assert meta["stop"] == ["END", "\n\n\n"]
    assert meta["extra_body"] == {"chat_template_kwargs": {"enable_thinking": False}}
    assert len(meta["system_sha256"]) == 64

    # Each of them is part of the store key: changing one sends again, repeating sends nothing.
    sent = len(fake.requests)
    again = run(
        "sample", problems, "-m", "o3-mini", "-n", "2", "--system", f"@{system}",
        "--stop", "END", "--stop", "\n\n\n", "--extra-body",
        '{"chat_template_kwargs": {"enable_thinking": false}}', "--max-tokens", "256",
        *endpoint(fake),
    )  # fmt: skip
    assert again.stdout == result.stdout
    assert len(fake.requests) == sent
    for change in (["--stop", "END"], ["--extra-body", "{}"], ["--system", "Be brief."]):
        before = len(fake.requests)
        extra = '{"chat_template_kwargs": {"enable_thinking": false}}'
        args = [
            "--stop",
            "END",
            "--stop",
            "\n\n\n",
            "--extra-body",
            extra,
            "--system",
            f"@{system}",
        ]
        flag = change[0]
        i = args.index(flag)
        args[i : i + (4 if flag == "--stop" else 2)] = change
        run("sample", problems, "-m", "o3-mini", "-n", "2", "--max-tokens", "256", *args,
            *endpoint(fake))  # fmt: skip
        assert len(fake.requests) == before + 2, change


def test_a_plain_request_is_unchanged(fake: FakeOpenAI, tmp_path: Path) -> None:
    """No --system/--stop/--extra-body: the body and the meta are what they always were."""
    result = run("sample", str(_problems(tmp_path, 1)), "-m", "gpt-4o-mini", *endpoint(fake))
    body = fake.requests[0]["body"]
    assert set(body) == {"model", "n", "messages", "temperature", "max_tokens"}
    meta = records(result)[0]["meta"]
    assert not {"stop", "extra_body", "system_sha256"} & set(meta)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--extra-body", "{nope"], "--extra-body"),
        (["--extra-body", "[1]"], "must be a JSON object"),
        (["--system", "@/no/such/file"], "--system"),
    ],
)
def test_bad_request_options_are_usage_errors(
    args: list[str], message: str, tmp_path: Path
) -> None:
    result = run("sample", str(_problems(tmp_path, 1)), "-m", "m", "--dry-run", *args)
    assert result.exit_code == 2
    assert message in result.stderr
