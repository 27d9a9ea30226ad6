"""Prices that match the bill: cached prompt tokens at the cached rate, reasoning tokens as
output exactly once, the table's checked dates, and `--price-*` overriding it, checked against
the loopback server's own count of what it billed."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from lemagen.engine.prices import PRICES, Price, listed, price_for
from lemagen.engine.store import STORE_FILE, RequestStore, StoredSample
from tests.conftest import EXAMPLES, records, run
from tests.fake_openai import FakeOpenAI

GSM8K = str(EXAMPLES / "gsm8k.jsonl")


def summary(stderr: str, stage: str = "sample") -> str:
    (line,) = [line for line in stderr.splitlines() if line.startswith(f"{stage}: ")]
    return line


def test_every_entry_has_a_date_and_half_price_batch() -> None:
    assert len(PRICES) >= 10
    for model, entry in PRICES.items():
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", entry.checked), model
        assert entry.batch_input == pytest.approx(entry.input / 2), model  # OpenAI: 50%
        assert entry.batch_output == pytest.approx(entry.output / 2), model
        assert entry.cached is None or entry.cached < entry.input, model


def test_a_cached_prompt_token_costs_the_cached_rate() -> None:
    price = price_for("gpt-4o-2024-08-06")  # a dated name takes its base model's price
    assert listed("gpt-4o-2024-08-06") is PRICES["gpt-4o"]
    # 1000 prompt tokens of which 600 cached, 200 completion: $2.50, $1.25 and $10 per M.
    assert price.cost(1000, 200, 600) == pytest.approx((400 * 2.50 + 600 * 1.25 + 200 * 10) / 1e6)
    assert price.cost(1000, 200) == pytest.approx((1000 * 2.50 + 200 * 10) / 1e6)
    # A model without a cached rate prices cached tokens as input.
    assert price_for("gpt-4").cost(1000, 0, 600) == pytest.approx(1000 * 30 / 1e6)
    assert price.batch().cost(1000, 200, 600) == pytest.approx((1000 * 1.25 + 200 * 5) / 1e6)
    assert price.describe("gpt-4o") == (
        f"gpt-4o $2.5 in, $1.25 cached, $10 out per M (checked {PRICES['gpt-4o'].checked})"
    )


# (model name, the table entry it must take, or None: unknown). A prefix of another product
# never prices it: o1-pro costs ten times o1, o3-pro and o3-deep-research are not o3.
LOOKUPS = [
    ("gpt-4o", "gpt-4o"),
    ("gpt-4o-2024-08-06", "gpt-4o"),
    ("gpt-4o-2024-11-20", "gpt-4o"),
    ("gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),  # the first gpt-4o: $5/$15, not $2.5/$10
    ("gpt-4o-mini", "gpt-4o-mini"),
    ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
    ("gpt-4o-audio-preview", None),
    ("gpt-4o-realtime-preview-2024-12-17", None),
    ("gpt-4", "gpt-4"),
    ("gpt-4-0613", "gpt-4"),
    ("gpt-4-32k", "gpt-4-32k"),
    ("gpt-4-32k-0613", "gpt-4-32k"),
    ("gpt-4-turbo-2024-04-09", "gpt-4-turbo"),
    ("gpt-4-1106-preview", None),
    ("gpt-3.5-turbo-0125", "gpt-3.5-turbo"),
    ("gpt-3.5-turbo-0613", "gpt-3.5-turbo-0613"),
    ("gpt-3.5-turbo-1106", "gpt-3.5-turbo-1106"),
    ("gpt-3.5-turbo-16k", None),
    ("gpt-3.5-turbo-instruct", None),
    ("o1", "o1"),
    ("o1-2024-12-17", "o1"),
    ("o1-pro", "o1-pro"),
    ("o1-pro-2025-03-19", "o1-pro"),
    ("o1-preview", None),
    ("o1-mini-2024-09-12", "o1-mini"),
    ("o3", "o3"),
    ("o3-2025-04-16", "o3"),
    ("o3-pro", "o3-pro"),
    ("o3-pro-2025-06-10", "o3-pro"),
    ("o3-deep-research", None),
    ("o3-deep-research-2025-06-26", None),
    ("o3-mini-2025-01-31", "o3-mini"),
    ("o4-mini-deep-research", None),
    ("gpt-4.1-nano-2025-04-14", "gpt-4.1-nano"),
    ("gpt-4.5-preview", None),
    ("Qwen/Qwen2.5-Math-7B-Instruct", None),
    ("gpt-4o-", None),
    ("o1-", None),
]


@pytest.mark.parametrize(("model", "entry"), LOOKUPS)
def test_a_name_takes_only_its_own_or_its_snapshots_price(model: str, entry: str | None) -> None:
    assert listed(model) is (None if entry is None else PRICES[entry])
    assert price_for(model).known is (entry is not None)


def test_the_expensive_models_are_priced_as_published() -> None:
    """Prices checked 2026-11-28 (OpenAI's pricing page as quoted by OpenRouter and others)."""
    for model, per_in, per_out in [
        ("o1-pro", 150, 600),
        ("o3-pro", 20, 80),
        ("gpt-4-32k", 60, 120),
        ("gpt-4o-2024-05-13", 5, 15),
    ]:
        price = price_for(model)
        assert (price.per_m_in, price.per_m_out) == (per_in, per_out), model


def test_an_unknown_model_is_unknown_in_the_dry_run(fake: FakeOpenAI) -> None:
    result = run("sample", GSM8K, "-m", "o3-deep-research", "-n", "1",
                 "--dry-run", "--base-url", fake.base_url)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    (line,) = [line for line in result.stderr.splitlines() if "--dry-run:" in line]
    assert "no price for o3-deep-research: give --price-in/--price-out" in line
    assert "o3 $2" not in line
    assert fake.served == []
    ran = run("sample", GSM8K, "-m", "o3-deep-research", "-n", "1", "--base-url", fake.base_url)
    assert ran.exit_code == 0, ran.stderr
    assert "+ unknown (no price for o3-deep-research: give --price-in/--price-out)" in summary(
        ran.stderr
    )


def test_flags_override_each_rate_of_the_table() -> None:
    price = price_for("gpt-4o", price_in=3.0, price_cached=0.3)
    assert (price.per_m_in, price.per_m_cached, price.per_m_out) == (3.0, 0.3, 10.0)
    assert (price.batch_in, price.batch_out) == (1.5, 5.0)
    assert price.source == (
        f"--price-in/--price-cached, else the table checked {PRICES['gpt-4o'].checked}"
    )
    local = price_for("my-model", price_in=1.0, price_out=2.0)
    assert local.known
    assert local.source == "--price-in/--price-out"
    assert not price_for("my-model").known
    assert Price(None, None).cost(10, 10) == 0.0


def test_the_summary_prices_cached_and_reasoning_tokens_as_billed(fake: FakeOpenAI) -> None:
    """The server reports 5 cached prompt tokens per request and 7 hidden reasoning tokens
    per choice inside completion_tokens (as OpenAI does): cached ones at the cached rate,
    reasoning ones once, as output."""
    fake.cached_tokens = 5
    fake.reasoning_tokens = 7
    prices = ["--price-in", "1000", "--price-cached", "100", "--price-out", "3000"]
    result = run("sample", GSM8K, "-m", "r", "-n", "2", "--keep", "all", *prices,
                 "--base-url", fake.base_url)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    line = summary(result.stderr)
    requests = len(fake.served)
    assert requests == 10
    assert fake.billed_cached_tokens == 5 * requests
    prompt, completion = fake.billed_prompt_tokens, fake.billed_completion_tokens
    visible = sum(len(r["response"].split()) for r in records(result))
    assert completion == visible + 7 * 2 * requests  # reasoning once, inside completion_tokens
    assert f"tokens in {prompt} ({5 * requests} cached), out {completion} " in line
    assert f"({7 * 2 * requests} reasoning)" in line
    cost = ((prompt - 5 * requests) * 1000 + 5 * requests * 100 + completion * 3000) / 1e6
    assert f"cost ${cost:.4f}" in line
    assert "prices: r $1000 in, $100 cached, $3000 out per M (--price-in/--price-out/" in line
    # The records carry the parts, and a re-run reads them back from the request store.
    usage = records(result)[0]["meta"]["usage"]
    assert usage["cached_tokens"] == 5
    assert usage["reasoning_tokens"] == 14
    again = run("sample", GSM8K, "-m", "r", "-n", "2", "--keep", "all", "-q",
                "--base-url", fake.base_url)  # fmt: skip
    assert len(fake.served) == requests
    assert records(again)[0]["meta"]["usage"] == usage


def test_the_table_price_and_its_date_are_in_the_summary(fake: FakeOpenAI) -> None:
    fake.cached_tokens = 10
    result = run("sample", GSM8K, "-m", "gpt-4o-mini", "--base-url", fake.base_url)
    line = summary(result.stderr)
    checked = PRICES["gpt-4o-mini"].checked
    assert f"prices: gpt-4o-mini $0.15 in, $0.075 cached, $0.6 out per M (checked {checked})" in (
        line
    )
    prompt, completion = fake.billed_prompt_tokens, fake.billed_completion_tokens
    cached = fake.billed_cached_tokens
    cost = ((prompt - cached) * 0.15 + cached * 0.075 + completion * 0.60) / 1e6
    assert f"cost ${cost:.4f}" in line


def test_price_flags_apply_to_correct_too(fake: FakeOpenAI) -> None:
    sampled = run("sample", GSM8K, "-m", "r", "-q", "--base-url", fake.base_url)
    result = run("correct", "-m", "c", "--price-in", "2", "--price-out", "4",
                 "--base-url", fake.base_url, input=sampled.stdout)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "prices: c $2 in, $4 out per M (--price-in/--price-out)" in result.stderr


def test_a_store_made_before_the_token_parts_works_both_ways(tmp_path: Path) -> None:
    """A request store written before the cached/reasoning parts existed opens with every
    sample (counting 0 of each), and a lemagen that predates them can still write into a
    store this version has used: the parts live in a table of their own."""
    directory = tmp_path / "store"
    directory.mkdir()
    old_schema = (
        "CREATE TABLE samples (key BLOB PRIMARY KEY, text TEXT NOT NULL, finish_reason TEXT, "
        "request TEXT NOT NULL, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER "
        "NOT NULL, created REAL NOT NULL) WITHOUT ROWID;"
    )
    with sqlite3.connect(directory / STORE_FILE) as conn:
        conn.executescript(
            old_schema + "INSERT INTO samples VALUES (x'01', 'old', 'stop', 'r1', 3, 4, 0);"
        )
    store = RequestStore(directory)
    try:
        assert store.get_many([b"\x01"]) == {b"\x01": StoredSample("old", "stop", "r1", 3, 4)}
        new = StoredSample("new", "stop", "r2", 9, 8, 5, 2)
        store.put([(b"\x02", new)])
    finally:
        store.close()
    with sqlite3.connect(directory / STORE_FILE) as conn:  # what an older lemagen writes
        conn.execute("INSERT INTO samples VALUES (x'03', 'older', 'stop', 'r3', 1, 1, 0)")
    store = RequestStore(directory)
    try:
        found = store.get_many([b"\x01", b"\x02", b"\x03"])
        assert found[b"\x02"] == new
        assert found[b"\x03"] == StoredSample("older", "stop", "r3", 1, 1)
    finally:
        store.close()
