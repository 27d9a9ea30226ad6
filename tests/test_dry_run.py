"""`--dry-run` writes the requests a run would send as JSONL on stdout (and their counts and
cost on stderr): the same bodies the server then receives, under the keys the request store
then holds, without the ones already stored, and without the API key."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from lemagen.engine.prices import PRICES
from lemagen.engine.store import STORE_FILE
from tests.conftest import EXAMPLES, records, run, write_jsonl
from tests.fake_openai import FakeOpenAI

GSM8K = EXAMPLES / "gsm8k.jsonl"


def test_the_requests_listed_are_the_requests_sent(fake: FakeOpenAI, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    args = ["sample", str(GSM8K), "-m", "gpt-4o-mini", "-n", "3", "--seed", "5", "--system",
            "Be brief.", "--cache-dir", str(cache), "--base-url", fake.base_url]  # fmt: skip
    dry = run(*args, "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    assert fake.requests == []
    listed = records(dry)
    assert len(listed) == 10
    assert all(line["endpoint"] == "/chat/completions" for line in listed)
    assert all(line["sample_indices"] == [0, 1, 2] for line in listed)
    first = listed[0]["body"]
    assert first["model"] == "gpt-4o-mini"
    assert first["messages"][0] == {"role": "system", "content": "Be brief."}
    assert (first["n"], first["seed"], first["max_tokens"]) == (3, 5, 1024)

    assert run(*args, "-q").exit_code == 0
    sent = [r["body"] for r in fake.requests]
    assert sorted(map(json.dumps, sent)) == sorted(json.dumps(line["body"]) for line in listed)
    with sqlite3.connect(cache / STORE_FILE) as conn:
        stored = {row[0].hex() for row in conn.execute("SELECT key FROM samples")}
    keys = [key for line in listed for key in line["keys"]]
    assert len(keys) == 30
    assert set(keys) == stored


def test_requests_already_stored_are_not_listed(fake: FakeOpenAI, tmp_path: Path) -> None:
    rows = [json.loads(line) for line in GSM8K.read_text().splitlines()]
    half = write_jsonl(tmp_path / "half.jsonl", rows[:4])
    args = ["-m", "gpt-4o-mini", "-n", "4", "--base-url", fake.base_url]
    assert run("sample", str(half), *args, "-q").exit_code == 0
    fake.requests.clear()
    # -n 6 now: samples 4-5 of the first four problems, 0-5 of the other six.
    dry = run("sample", str(GSM8K), *args[:2], "-n", "6", *args[4:], "--dry-run")
    listed = records(dry)
    assert [line["sample_indices"] for line in listed].count([4, 5]) == 4
    assert [line["sample_indices"] for line in listed].count([0, 1, 2, 3, 4, 5]) == 6
    assert len(listed) == 10
    assert "would send 10 requests for 44 samples (16 already in the request store)" in dry.stderr
    assert fake.requests == []


def test_a_request_asked_for_twice_is_listed_once(fake: FakeOpenAI, tmp_path: Path) -> None:
    row = json.loads(GSM8K.read_text().splitlines()[0])
    path = write_jsonl(tmp_path / "twice.jsonl", [row, {**row, "id": "again"}])
    dry = run("sample", str(path), "-m", "r", "--base-url", fake.base_url, "--dry-run")
    assert len(records(dry)) == 1
    assert (
        "would send 1 requests for 4 samples (0 already in the request store, 4 asked for twice)"
        in dry.stderr
    )


def test_the_estimate_gives_synchronous_and_batch_prices(fake: FakeOpenAI) -> None:
    dry = run("sample", str(GSM8K), "-m", "gpt-4o", "-n", "2", "--max-tokens", "100",
              "--base-url", fake.base_url, "--dry-run")  # fmt: skip
    listed = records(dry)
    prompt = sum(len(line["body"]["messages"][-1]["content"]) // 4 + 8 for line in listed)
    out = 100 * 2 * len(listed)
    entry = PRICES["gpt-4o"]
    sync_in, sync_all = (
        prompt * entry.input / 1e6,
        (prompt * entry.input + out * entry.output) / 1e6,
    )
    batch_in = prompt * entry.batch_input / 1e6
    batch_all = (prompt * entry.batch_input + out * entry.batch_output) / 1e6
    assert (
        f"~{prompt} prompt tokens, at most {out} completion tokens; estimated cost synchronous "
        f"${sync_in:.4f} for prompts, at most ${sync_all:.4f} with completions; batch "
        f"${batch_in:.4f}, at most ${batch_all:.4f}; prices: gpt-4o $2.5 in, $1.25 cached, "
        f"$10 out per M (checked {entry.checked}). Nothing was sent."
    ) in dry.stderr


@pytest.mark.parametrize("where", ["env", "extra-body"])
def test_the_api_key_is_in_no_line(
    where: str, fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "sk-dryrun-0123456789abcdefSECRET"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    extra = ["--extra-body", json.dumps({"user": key})] if where == "extra-body" else []
    dry = run("sample", str(GSM8K), "-m", "r", *extra, "--base-url", fake.base_url, "--dry-run")
    assert dry.exit_code == 0
    assert len(records(dry)) == 10
    assert key not in dry.stdout
    assert key not in dry.stderr
    if extra:
        assert records(dry)[0]["body"]["user"] == "[redacted]"


def test_correct_lists_its_requests_too(fake: FakeOpenAI) -> None:
    sampled = run("sample", str(GSM8K), "-m", "r", "-q", "--base-url", fake.base_url)
    count = len(records(sampled))
    dry = run("correct", "-m", "c", "--base-url", fake.base_url, "--dry-run", input=sampled.stdout)
    listed = records(dry)
    assert len(listed) == count > 0
    assert all("Original Solution:" in line["body"]["messages"][-1]["content"] for line in listed)


def test_the_requests_go_to_stdout_never_to_the_output_file(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    out = tmp_path / "samples.jsonl"
    out.write_text('{"kept": "from an earlier run"}\n')
    dry = run("sample", str(GSM8K), "-m", "r", "-o", str(out), "--base-url", fake.base_url,
              "--dry-run")  # fmt: skip
    assert dry.exit_code == 0
    assert len(records(dry)) == 10
    assert out.read_text() == '{"kept": "from an earlier run"}\n'


@pytest.mark.parametrize("command", ["sample", "analyze"])
def test_a_dry_run_leaves_the_output_and_rejects_files_alone(
    fake: FakeOpenAI, tmp_path: Path, command: str
) -> None:
    out, rejects = tmp_path / "out.jsonl", tmp_path / "prev.rej"
    out.write_text('{"kept": "from an earlier run"}\n')
    rejects.write_text('{"reason": "truncated", "record": null}\n')
    source = GSM8K
    if command == "analyze":
        sampled = run("sample", str(GSM8K), "-m", "r", "-q", "--base-url", fake.base_url)
        source = write_jsonl(tmp_path / "samples.jsonl", records(sampled))
    dry = run(command, str(source), "-m", "r", "-o", str(out), "--rejects", str(rejects),
              "--base-url", fake.base_url, "--dry-run")  # fmt: skip
    assert dry.exit_code == 0, dry.stderr
    assert len(records(dry)) > 0
    assert out.read_text() == '{"kept": "from an earlier run"}\n'
    assert rejects.read_text() == '{"reason": "truncated", "record": null}\n'
