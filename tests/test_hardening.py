"""What a careless or hostile server cannot make lemagen do: write the API key anywhere, drop
rows silently, make a run look cheaper than it is, crash it with a malformed 200, or send
requests elsewhere with a redirect."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXAMPLES, endpoint, load_jsonl, records, run
from tests.fake_openai import FakeOpenAI, MathTutor

GSM8K = str(EXAMPLES / "gsm8k.jsonl")
KEY = "local-secret-7f3a9c1e5b2d"  # shaped like no known key: only remembering it redacts it
TRANSPORTS = ["aiohttp", "openai"]
FAST = ["--max-retries", "2", "--retry-delay", "0.001"]


@pytest.fixture
def other() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI(MathTutor({})).start()
    yield server
    server.stop()


def question(i: int) -> str:
    return str(load_jsonl(EXAMPLES / "gsm8k.jsonl")[i]["question"])


def only_for(text: str, answer: Any) -> Any:
    """A rule: `answer` for requests whose prompt holds `text`, the normal answer otherwise."""
    return lambda body: answer if text in json.dumps(body) else None


def every_byte(root: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file())


# ---------------------------------------------------------------- the key is never written


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    ("kind", "code"), [("400", 4), ("500", 4), ("401", 3), ("200", 0)], ids=lambda v: str(v)
)
def test_a_server_echoing_the_key_gets_it_written_nowhere(
    fake: FakeOpenAI,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    transport: str,
    kind: str,
    code: int,
) -> None:
    fake.echo_auth = kind
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    work = tmp_path / "work"
    work.mkdir()
    args = [
        "sample", GSM8K, "-m", "r", "-n", "2", "--keep", "all", "--transport", transport,
        "--cache-dir", str(work / "cache"), "-o", str(work / "out.jsonl"),
        "--rejects", str(work / "rejects.jsonl"), *FAST, "--base-url", fake.base_url,
    ]  # fmt: skip
    result = run(*args)
    assert result.exit_code == code, result.stderr
    assert fake.requests  # the server did see the key (and echoed it)
    written = every_byte(work)
    assert KEY.encode() not in written
    assert KEY not in result.stdout + result.stderr
    assert b"[redacted]" in (written if kind != "401" else result.stderr.encode())
    if kind == "401":
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith(f"Error: endpoint {fake.base_url}, model 'r': API key rejected")
    elif kind == "200":
        out = load_jsonl(work / "out.jsonl")
        assert len(out) == 20
        assert all(
            r["response"].startswith("(you sent Authorization: Bearer [redacted])") for r in out
        )
    else:
        rejects = load_jsonl(work / "rejects.jsonl")
        assert len(rejects) == 10
        assert all("[redacted]" in r["record"]["error"] for r in rejects)


# ---------------------------------------------------------------- choices


def test_a_200_with_no_choices_is_asked_again(fake: FakeOpenAI) -> None:
    empty = (200, {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 0}})
    asked: list[bool] = []

    def once(body: dict[str, Any]) -> Any:
        if question(2) in json.dumps(body) and not asked:
            asked.append(True)
            return empty
        return None

    fake.rule = once
    result = run("sample", GSM8K, "-m", "r", "-n", "2", "--keep", "all", *endpoint(fake))
    assert result.exit_code == 0, result.stderr
    assert len(records(result)) == 20
    assert sum(question(2) in json.dumps(r["body"]) for r in fake.requests) == 2


def test_a_server_that_keeps_answering_no_choices_sets_the_row_aside(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    fake.rule = only_for(question(2), (200, {"choices": []}))
    rejects = tmp_path / "rejects.jsonl"
    result = run(
        "sample", GSM8K, "-m", "r", "-n", "2", "--keep", "all", "--retry-delay", "0.001",
        "--rejects", str(rejects), *endpoint(fake),
    )  # fmt: skip
    assert result.exit_code == 4, result.stderr
    assert len(records(result)) == 18
    (aside,) = load_jsonl(rejects)
    assert aside["reason"] == "no_choices"
    assert aside["record"]["error"] == "the server answered 3 requests in a row with no choices"
    assert "1 requests failed" in result.stderr


# ---------------------------------------------------------------- usage


def one_choice(usage: Any) -> Any:
    def answer(body: dict[str, Any]) -> Any:
        choice = {"index": 0, "message": {"role": "assistant", "content": "The answer is 5."},
                  "finish_reason": "stop"}  # fmt: skip
        payload: dict[str, Any] = {"choices": [choice] * int(body.get("n") or 1)}
        if usage is not ...:
            payload["usage"] = usage
        return 200, payload

    return answer


@pytest.mark.parametrize(
    "usage",
    [
        {"prompt_tokens": -5_000_000, "completion_tokens": -1_000_000},
        {"prompt_tokens": "many", "completion_tokens": [1]},
        {"prompt_tokens": 1.5, "completion_tokens": None},
        "lots",
        ...,
    ],
    ids=["negative", "not-numbers", "not-whole", "not-an-object", "missing"],
)
def test_unusable_usage_keeps_the_samples_and_books_the_estimate(
    fake: FakeOpenAI, tmp_path: Path, usage: Any
) -> None:
    fake.rule = one_choice(usage)
    args = ["sample", GSM8K, "-m", "r", "-n", "1", "--keep", "all", "--price-in", "1",
            "--price-out", "1", "--max-tokens", "100", "--cache-dir", str(tmp_path / "c"),
            "--base-url", fake.base_url]  # fmt: skip
    result = run(*args)
    assert result.exit_code == 0, result.stderr
    assert len(records(result)) == 10  # kept, not failed
    assert len(fake.requests) == 10  # not asked again
    summary = result.stderr
    assert "10 responses gave no usable token usage: booked at the estimate" in summary
    tokens_out = int(summary.split("tokens in ")[1].split(", out ")[1].split(";")[0])
    assert tokens_out == 10 * 100  # --max-tokens per sample
    cost = float(summary.split("cost $")[1].split(" ")[0])
    assert cost > 0
    again = run(*args)  # stored: nothing paid twice
    assert again.exit_code == 0
    assert len(fake.requests) == 10


# ---------------------------------------------------------------- malformed 200s


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"<html>502 Bad Gateway</html>", "not JSON"),
        (b"", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"id": "x"}', "no choices list"),
        (b'{"choices": {"0": "text"}}', "no choices list"),
        (b'{"choices": ["text"]}', "no choices list"),
        (b'{"choices": [{"index": 0, "text": "completion, not chat"}]}',
         "a choice without message.content"),
        (b'{"choices": [{"message": {"role": "assistant"}}]}', "a choice without message.content"),
        (b'{"choices": [{"message": {"content": 5}}]}', "a choice's text is not a string"),
        (b'{"choices": [{"message": {"content": ["a", "b"]}}]}', "a choice's text is not a string"),
        (b'{"choices": [{"message": "text"}]}', "a choice without message.content"),
        (b'{"error": {"message": "overloaded"}}', "no choices list"),
        # Nested past what is decoded (a decoder's recursion would raise RecursionError).
        (b"[" * 1000 + b"]" * 1000, "JSON nested deeper than 512 levels"),
        (b'{"choices": ' * 600 + b"[]" + b"}" * 600, "JSON nested deeper than 512 levels"),
    ],
    ids=lambda v: v[:40].decode() if isinstance(v, bytes) else None,
)  # fmt: skip
def test_a_malformed_200_is_retried_then_set_aside_never_a_traceback(
    fake: FakeOpenAI, tmp_path: Path, transport: str, body: bytes, why: str
) -> None:
    fake.rule = only_for(question(3), (200, body))
    rejects = tmp_path / "rejects.jsonl"
    result = run(
        "sample", GSM8K, "-m", "r", "-n", "1", "--keep", "all", "--transport", transport,
        "--rejects", str(rejects), *FAST, *endpoint(fake),
    )  # fmt: skip
    assert result.exit_code == 4, result.stderr
    assert len(records(result)) == 9
    (aside,) = load_jsonl(rejects)
    assert aside["reason"] == "request_failed"
    assert aside["record"]["error"] == (
        f"unreadable response from {fake.base_url}: {why} (gave up after 3 attempts)"
    )


def test_odd_but_readable_choices_are_taken(fake: FakeOpenAI) -> None:
    """No index, a null content (a refusal), a finish_reason that is not a string."""
    choices = [{"message": {"content": None}, "finish_reason": 7},
               {"message": {"content": "The answer is 72."}, "finish_reason": "stop"}]  # fmt: skip
    fake.rule = lambda body: (200, {"choices": choices, "usage": {"prompt_tokens": 1}})
    result = run("sample", GSM8K, "-m", "r", "-n", "2", "--keep", "all", *endpoint(fake))
    assert result.exit_code == 0, result.stderr
    rows = records(result)
    assert len(rows) == 10  # the empty response is set aside as no_answer
    assert {r["meta"]["finish_reason"] for r in rows} == {"stop"}


# ---------------------------------------------------------------- redirects


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_not_followed(
    fake: FakeOpenAI,
    other: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
    transport: str,
    status: int,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    target = f"{other.base_url}/chat/completions"
    fake.rule = lambda body: (status, {}, {"Location": target})
    result = run("sample", GSM8K, "-m", "r", "--transport", transport, *FAST, *endpoint(fake))
    assert result.exit_code == 3
    (line,) = result.stderr.strip().splitlines()
    assert line == (
        f"Error: endpoint {fake.base_url}/chat/completions redirects (HTTP {status}) to {target}: "
        "not followed for API calls; give the final URL as --base-url if you trust it"
    )
    assert other.requests == []
    assert len(fake.requests) == 1
