"""--batch: provider Batch APIs through the loopback server's Files and Batches endpoints."""

from __future__ import annotations

from pathlib import Path

import pytest

from lemagen.errors import EXIT_BATCH_PENDING
from tests.conftest import EXAMPLES, run
from tests.fake_batches import FakeBatches
from tests.fake_openai import FakeOpenAI

PROBLEMS = EXAMPLES / "gsm8k.jsonl"


@pytest.fixture
def batches(fake: FakeOpenAI) -> FakeBatches:
    return FakeBatches.on(fake)


def sample(fake: FakeOpenAI, cache: Path, *extra: str, path: Path = PROBLEMS) -> list[str]:
    return [
        "sample", str(path), "-m", "m", "-n", "2", "--seed", "1", "--keep", "all",
        "--base-url", fake.base_url, "--cache-dir", str(cache), "-q", *extra,
    ]  # fmt: skip


def test_submit_exit_then_collect_matches_a_synchronous_run(
    fake: FakeOpenAI, batches: FakeBatches, tmp_path: Path
) -> None:
    sync = run(*sample(fake, tmp_path / "sync", "--concurrency", "1"))
    assert sync.exit_code == 0, sync.stderr
    sent = len(fake.requests)
    assert sent > 0

    first = run(*sample(fake, tmp_path / "b", "--batch"))
    assert first.exit_code == EXIT_BATCH_PENDING, first.stderr
    assert first.stdout == ""
    assert "re-run the same command" in first.stderr
    assert (batches.uploads, batches.creates) == (1, 1)
    assert len(fake.requests) == sent  # nothing went synchronously
    assert batches.batches[batches.latest()]["request_counts"]["total"] == sent

    batches.finish()
    second = run(*sample(fake, tmp_path / "b", "--batch"))
    assert second.exit_code == 0, second.stderr
    assert second.stdout == sync.stdout
    assert second.stdout.count("\n") > 0
    assert (batches.uploads, batches.creates) == (1, 1)
    assert len(fake.requests) == sent
