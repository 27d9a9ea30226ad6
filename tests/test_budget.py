"""`--max-cost` against the loopback server: only requests really in flight count (never
those waiting for a slot), sending goes on while the worst case fits and stops only when one
more request could pass the budget; a request sent and never answered is booked as possibly
billed, apart from what the server billed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import endpoint, records, run, write_jsonl
from tests.fake_openai import FakeOpenAI, RandomFaults


def problems(tmp_path: Path, count: int) -> Path:
    """`count` distinct problems (distinct prompts, so nothing is deduplicated)."""
    rows = [
        {"id": f"q{i}", "question": f"Sam has {i} apples and buys {i} more. How many?",
         "answer": f"He has {i} + {i} = {2 * i}.\n#### {2 * i}"}
        for i in range(count)
    ]  # fmt: skip
    return write_jsonl(tmp_path / "p.jsonl", rows)


def summary(stderr: str) -> str:
    """The summary line (an error line may follow it)."""
    (line,) = [line for line in stderr.splitlines() if line.startswith("sample: ")]
    return line


def cost(stderr: str) -> float:
    found = re.search(r"cost \$(\d+\.\d+)", summary(stderr))
    assert found, stderr
    return float(found.group(1))


def test_requests_waiting_for_a_slot_do_not_count(fake: FakeOpenAI, tmp_path: Path) -> None:
    """The reported bug: `--max-cost 1` on 60 problems (-n 4, each request's worst case
    4 x 1024 tokens of gpt-4o output, about $0.04) stopped after spending a few cents, since
    every row read ahead was booked at its worst case while it waited for a slot. Only the
    requests really in flight count: about 24 of them fit in $1 at a time, and the whole run
    costs far less than $1."""
    fake.delay = 0.05  # so that requests are in flight together
    path = problems(tmp_path, 60)
    result = run(
        "sample", str(path), "-m", "gpt-4o", "-n", "4", "--keep", "all", "--max-cost", "1",
        "--base-url", fake.base_url,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "sample: 60 problems, 240 samples," in summary(result.stderr)
    assert len(fake.served) == 60
    assert fake.max_in_flight > 1  # sent side by side, not one at a time
    billed = (fake.billed_prompt_tokens * 2.50 + fake.billed_completion_tokens * 10.00) / 1e6
    assert cost(result.stderr) == round(billed, 4)
    assert cost(result.stderr) < 1


def test_sending_goes_on_while_the_worst_case_fits(fake: FakeOpenAI, tmp_path: Path) -> None:
    """One request at a time, each with a worst case of 40 tokens at $0.001 ($0.04) and a
    real cost of about a third of it: a budget of $0.14 holds three worst cases but pays for
    more requests; sending stops only when spent plus one more worst case would pass it."""
    path = problems(tmp_path, 30)
    rejects = tmp_path / "rejects.jsonl"
    result = run(
        "sample", str(path), "-m", "r", "-n", "1", "--keep", "all", "--max-tokens", "40",
        "--price-in", "0", "--price-out", "1000", "--concurrency", "1", "--max-cost", "0.14",
        "--rejects", str(rejects), "--base-url", fake.base_url,
    )  # fmt: skip
    assert result.exit_code == 5
    spent = fake.billed_completion_tokens * 0.001
    assert spent <= 0.14
    assert spent + 0.040 > 0.14  # the next request's worst case did not fit
    assert len(fake.served) > 3  # more than three worst cases' worth of requests were paid for
    assert len(records(result)) == len(fake.served)  # everything paid for was written
    assert cost(result.stderr) == round(spent, 4)
    reasons = [json.loads(line)["reason"] for line in rejects.read_text().splitlines()]
    assert len(reasons) >= 1  # the calls read before the stop; later rows are not read
    assert set(reasons) == {"budget_exhausted"}
    assert len(fake.served) + len(reasons) < 30
    not_sent = f"{len(reasons)} request{'s' * (len(reasons) != 1)} not sent"
    unread = 30 - len(fake.served) - len(reasons)  # every input row is accounted for
    rows = "row" if unread == 1 else "rows"
    assert f"--max-cost reached: {not_sent} and {unread} input {rows} not read;" in result.stderr
    read = len(fake.served) + len(reasons)
    assert f"input rows: 30 = {read} read + {unread} not read" in result.stderr


def test_the_stop_message_counts_requests_and_says_rows_were_unread_only_when_so(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    """Every row read before the budget ran out (10 rows, all in flight at once): the message
    says how many requests were not sent, and nothing of input rows not read."""
    fake.delay = 0.05
    path = problems(tmp_path, 10)
    rejects = tmp_path / "rejects.jsonl"
    result = run(
        "sample", str(path), "-m", "r", "-n", "1", "--max-tokens", "40", "--price-in", "0",
        "--price-out", "1000", "--max-cost", "0.14", "--rejects", str(rejects),
        "--base-url", fake.base_url,
    )  # fmt: skip
    assert result.exit_code == 5, result.stderr
    unsent = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert {r["reason"] for r in unsent} == {"budget_exhausted"}
    assert len(unsent) + len(fake.served) == 10
    assert f"--max-cost reached: {len(unsent)} request" in result.stderr
    assert "not read" not in result.stderr


def test_the_stop_message_counts_a_shared_request_once(fake: FakeOpenAI, tmp_path: Path) -> None:
    """`art ask` sends one request per problem for all of its predictions: the message counts
    requests not sent, not the predictions that waited for them."""
    path = problems(tmp_path, 10)
    sampled = run("sample", str(path), "-m", "r", "-n", "3", "--keep", "all", "-q",
                  "--base-url", fake.base_url)  # fmt: skip
    predictions = write_jsonl(tmp_path / "predictions.jsonl", records(sampled))
    fake.served.clear()
    rejects = tmp_path / "rejects.jsonl"
    result = run(
        "art", "ask", str(predictions), "-m", "a", "--max-tokens", "40", "--price-in", "0",
        "--price-out", "1000", "--concurrency", "1", "--max-cost", "0.14",
        "--rejects", str(rejects), "--base-url", fake.base_url,
    )  # fmt: skip
    assert result.exit_code == 5, result.stderr
    unsent = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert {r["reason"] for r in unsent} == {"budget_exhausted"}
    requests = {r["record"]["question"] for r in unsent}
    assert len(unsent) > len(requests) > 0  # requests not sent held several predictions
    assert f"--max-cost reached: {len(requests)} request" in result.stderr
    assert f" {len(unsent)} request" not in result.stderr


def test_a_budget_of_twice_the_dry_run_estimate_completes(fake: FakeOpenAI, tmp_path: Path) -> None:
    path = problems(tmp_path, 150)
    args = ["sample", str(path), "-m", "gpt-4o-mini", "-n", "4", "--keep", "all",
            "--base-url", fake.base_url]  # fmt: skip
    dry = run(*args, "--dry-run")
    assert dry.exit_code == 0
    found = re.search(r"at most \$(\d+\.\d+)", dry.stderr)
    assert found, dry.stderr
    estimate = float(found.group(1))
    assert estimate > 0
    fake.delay = 0.02
    result = run(*args, "--max-cost", f"{2 * estimate:.6f}")
    assert result.exit_code == 0, result.stderr
    assert "sample: 150 problems, 600 samples," in summary(result.stderr)
    assert len(fake.served) == 150
    assert fake.max_in_flight > 1


@pytest.mark.parametrize(("rate", "completes"), [(0.6, True), (0.7, False)])
def test_twice_the_estimate_and_heavy_drops(
    fake: FakeOpenAI, tmp_path: Path, rate: float, completes: bool
) -> None:
    """docs/cost.md's qualification (Budget): each dropped attempt is possibly billed at its
    worst case and retried, about p/(1-p) worst cases per request; against twice the estimate,
    60% of connections dropped still completes, 70% stops (exit 5) before the budget is passed."""
    path = problems(tmp_path, 150)
    args = ["sample", str(path), "-m", "gpt-4o-mini", "-n", "4", "--keep", "all",
            "--retry-delay", "0", "--max-retries", "100", "--base-url", fake.base_url]  # fmt: skip
    found = re.search(r"at most \$(\d+\.\d+)", run(*args, "--dry-run").stderr)
    assert found
    budget = 2 * float(found.group(1))
    fake.faults = RandomFaults(rate_drop=rate, seed=1)
    result = run(*args, "--max-cost", f"{budget:.6f}")
    line = summary(result.stderr)
    possible = re.search(r"possibly billed \$(\d+\.\d+) \((\d+) requests", line)
    assert possible, line
    drops = fake.injected.count("drop")
    assert int(possible.group(2)) == drops > 150 * rate / (1 - rate) / 2
    assert cost(result.stderr) + float(possible.group(1)) <= budget
    if completes:
        assert result.exit_code == 0, result.stderr
        assert len(fake.served) == 150
        assert float(possible.group(1)) > budget / 2  # more than the estimate, and it fits
    else:
        assert result.exit_code == 5, result.stderr
        assert len(fake.served) < 150
        assert "budget exhausted" in line


def test_a_dropped_call_is_possibly_billed_apart(fake: FakeOpenAI, tmp_path: Path) -> None:
    """The reported bug: a flaky run booked every dropped request at its whole --max-tokens
    as if billed (112,800 output tokens reported against about 13,000 real). The tokens and
    cost reported are what the server billed; the dropped requests are possibly billed, at
    their prompt plus every token they could have produced, shown apart."""
    fake.faults = RandomFaults(rate_drop=0.3, seed=3)
    path = problems(tmp_path, 20)
    result = run(
        "sample", str(path), "-m", "r", "-n", "2", "--keep", "all", "--max-tokens", "500",
        "--price-in", "1000", "--price-out", "2000", "--retry-delay", "0.01",
        "--max-retries", "30", "--base-url", fake.base_url,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "sample: 20 problems, 40 samples," in summary(result.stderr)
    drops = fake.injected.count("drop")
    assert drops > 0
    line = summary(result.stderr)
    assert f"tokens in {fake.billed_prompt_tokens}, out {fake.billed_completion_tokens};" in line
    billed = fake.billed_prompt_tokens * 0.001 + fake.billed_completion_tokens * 0.002
    assert cost(result.stderr) == round(billed, 4)
    # Each dropped request: its prompt estimate (characters / 4 + 8) and 2 x 500 tokens.
    dropped = [r["body"] for r in fake.requests if r.get("fault") == "drop"]
    assert len(dropped) == drops
    prompt = sum(len(b["messages"][0]["content"]) // 4 + 8 for b in dropped)
    possible = prompt * 0.001 + drops * 1000 * 0.002
    assert (
        f"possibly billed ${possible:.4f} ({drops} requests sent and never answered: "
        f"in {prompt}, out at most {drops * 1000})"
    ) in line


def test_possibly_billed_counts_against_the_budget(fake: FakeOpenAI, tmp_path: Path) -> None:
    """Every request dropped: nothing is billed, but each may have been, so the budget runs
    out after as many worst cases as fit in it, and the run stops instead of retrying on."""
    fake.faults = RandomFaults(rate_drop=1.0)
    path = problems(tmp_path, 5)
    result = run(
        "sample", str(path), "-m", "r", "-n", "1", "--max-tokens", "100", "--price-in", "0",
        "--price-out", "1000", "--max-cost", "0.35", "--retry-delay", "0.01",
        "--concurrency", "1", *endpoint(fake),
    )  # fmt: skip
    assert result.exit_code == 5
    assert fake.injected.count("drop") == 3  # $0.10 each possibly billed; a fourth could pass
