"""`--help` says what the documentation says: what each command reads and writes, what it
checks, and that every option is explained."""

from __future__ import annotations

import json

import click

from lemagen.cli import cli
from tests.conftest import EXAMPLES, run
from tests.fake_openai import FakeOpenAI


def _help(*command: str) -> str:
    result = run(*command, "--help")
    assert result.exit_code == 0, result.stderr
    return " ".join(result.stdout.split())  # wrapped lines joined


def test_the_summaries_name_error_types_and_art_records() -> None:
    top = _help()
    assert "LEMMA's error types (analyze" in top
    assert "ART asker and truster records (art)" in top
    stats = _help("stats")
    assert "error types per reasoner, ART records" in stats
    assert "(sample, correct, inject, analyze, art, a --rejects file" in stats


def test_smooth_help_says_what_the_check_compares() -> None:
    text = _help("smooth")
    assert "every number of the trajectory (its steps, the wrong one included, and the " in text
    assert "explanation) is still in it at least as often" in text
    assert "kept steps" not in text


def test_grade_and_art_trust_help_match_their_output() -> None:
    assert "add 'pred', 'extracted_by' and 'verdict'" in _help("grade")
    assert "(step_out_of_range, as filter drops them)" in _help("art", "trust")
    text = _help("filter")
    assert "was not truncated" in text
    assert "not a duplicate" in text


def test_every_option_is_explained() -> None:
    missing = []
    seen = 0

    def walk(command: click.Command, path: list[str]) -> None:
        nonlocal seen
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                walk(sub, [*path, name])
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden:
                seen += 1
                if not (param.help or "").strip():
                    missing.append(f"{' '.join(path)} {param.opts[-1]}")

    cli.load_all()
    walk(cli, ["lemagen"])
    assert seen > 100
    assert missing == []


def test_quiet_dry_run_still_writes_its_estimate(fake: FakeOpenAI) -> None:
    """-q silences progress and summaries; a dry run's estimate is its result, so it stays
    (docs/cost.md, "Dry run"), and the requests still go to stdout."""
    args = ["sample", str(EXAMPLES / "gsm8k.jsonl"), "-m", "gpt-4o-mini", "-n", "2",
            "--dry-run", "-q", "--base-url", fake.base_url]  # fmt: skip
    result = run(*args)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) >= 5
    assert all(json.loads(line)["endpoint"] == "/chat/completions" for line in lines)
    (estimate,) = [line for line in result.stderr.splitlines() if line.strip()]
    assert estimate.startswith("sample --dry-run: ")
    assert "Nothing was sent." in estimate
    assert fake.served == []
    assert "--dry-run still writes its estimate" in _help("sample")
