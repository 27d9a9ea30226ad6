"""The Python API (`import lemagen`): the notebook example of docs/api.md run as written against the
loopback server, from plain code and from inside a running event loop; the same records as the
commands; set-aside rows and bad rows; the public names and their documentation."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

import lemagen
from lemagen.api import lema
from lemagen.errors import InputError, UsageError
from lemagen.records import Correction, PromptCompletion, Reject, Sample
from tests.conftest import DATA, EXAMPLES, ROOT, load_jsonl, records, run, write_jsonl
from tests.fake_openai import FakeOpenAI
from tests.test_smooth import Smoother


def docs_example() -> str:
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    block = re.search(
        r"<!-- api-example:start -->\n```python\n(.*?)```\n<!-- api-example:end -->", text, re.S
    )
    assert block is not None, "docs/api.md lost its API example"
    return block.group(1)


def run_example(fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, Any], str]:
    """Execute the docs/api.md example as written (endpoint from OPENAI_BASE_URL, examples/ read
    from the checkout); its namespace and what it printed."""
    monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
    monkeypatch.chdir(ROOT)
    namespace: dict[str, Any] = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(docs_example(), "docs/api.md", "exec"), namespace)
    return namespace, out.getvalue()


def canonical(rows: list[dict[str, Any]]) -> list[str]:
    """Output lines in a fixed order (engine stages write rows as they finish)."""
    return sorted(json.dumps(row, sort_keys=True) for row in rows)


def test_docs_example_makes_the_same_records_as_the_commands(
    fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ns, printed = run_example(fake, monkeypatch)
    samples, corrections, train = ns["samples"], ns["corrections"], ns["train"]
    problems = load_jsonl(EXAMPLES / "gsm8k.jsonl")
    assert len(problems) == 10
    # The tutor answers half of the 4 samples wrongly, with one wrong text per question: one
    # wrong sample per problem, corrected once, each correction kept.
    assert [len(samples), len(corrections), len(train)] == [10, 10, 10]
    assert all(isinstance(s, Sample) and s.verdict == "wrong" for s in samples)
    assert all(isinstance(c, Correction) for c in corrections)
    assert all(isinstance(t, PromptCompletion) for t in train)
    assert train.summary.startswith("filter: in 10 (10 corrections, 0 samples); kept 10")
    assert train.dicts()[0]["completion"].startswith(" Step ")
    assert printed.startswith(train.summary + "\n")
    # Each kept wrong sample stands for the identical wrong one `sample` dropped after counting
    # it (meta.duplicates): stats counts every sample drawn.
    funnel = {"problems": 10, "samples": 20, "wrong": 20, "corrections": 10, "kept": 10}
    assert printed.splitlines()[-1] == str(funnel)
    assert samples.rejects == corrections.rejects == train.rejects == []  # nothing set aside
    sent = len(fake.requests)
    assert sent == 20  # 10 sampling requests (n=4 in one), 10 corrections

    # The commands with the same options: the same records, from the same request store.
    src = str(EXAMPLES / "gsm8k.jsonl")
    cli_samples = run("sample", src, "-m", "gpt-4o-mini", "-n", "4", "-q")
    assert cli_samples.exit_code == 0, cli_samples.stderr
    cli_corrections = run("correct", "-m", "gpt-4o", "-q", input=cli_samples.stdout)
    cli_train = run("filter", "-q", input=cli_corrections.stdout)
    assert len(fake.requests) == sent  # nothing paid for twice
    assert canonical(records(cli_samples)) == canonical(samples.dicts())
    assert canonical(records(cli_corrections)) == canonical(corrections.dicts())
    assert canonical(records(cli_train)) == canonical(train.dicts())
    # stats prices every model read by the given rates, as `lemagen stats --price-in ...`.
    both = cli_samples.stdout + cli_corrections.stdout
    prices: dict[str, Any] = {"price_in": 3.0, "price_out": 7.0, "price_cached": 1.0}
    cli_stats = run("stats", "--json", "-q", *[f"--{k.replace('_', '-')}={v}" for k, v in
                    prices.items()], input=both)  # fmt: skip
    priced = lemagen.stats([*samples, *corrections], **prices)
    assert priced == json.loads(cli_stats.stdout)
    assert priced != lemagen.stats([*samples, *corrections])  # the table's gpt-4o prices


def test_docs_example_runs_inside_a_running_event_loop(
    fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As in a Jupyter cell: the example called from a coroutine while its loop runs, and a
    stage awaited through asyncio.to_thread."""

    async def cell() -> tuple[dict[str, Any], lemagen.Result]:
        assert asyncio.get_running_loop().is_running()
        ns, _ = run_example(fake, monkeypatch)
        again = await asyncio.to_thread(lemagen.filter, ns["corrections"])
        return ns, again

    ns, again = asyncio.run(cell())
    assert len(ns["train"]) == 10
    assert again.dicts() == ns["train"].dicts()


def test_offline_stages_take_dicts_and_typed_records() -> None:
    problems = load_jsonl(EXAMPLES / "gsm8k.jsonl")
    made = lemagen.inject(problems, per_question=2, seed=0)
    assert len(made) == 20
    assert all(isinstance(c, Correction) for c in made)
    cli = run("inject", str(EXAMPLES / "gsm8k.jsonl"), "--per-question", "2", "-q")
    assert made.dicts() == records(cli)  # the same records, in the same order
    # Typed records and their dicts are read alike.
    pairs = lemagen.export(made, format="sharegpt")
    assert len(pairs) == 20
    assert lemagen.export(made.dicts(), format="sharegpt").dicts() == pairs.dicts()
    report = lemagen.stats(made)
    assert report["funnel"]["corrections"] == 20


def test_grade_outputs_made_elsewhere() -> None:
    rows = [
        {"question": "q1", "answer": "#### 72", "completion": "48 + 24 = 72.\nThe answer is 72."},
        {"question": "q2", "answer": "#### 10", "completion": "The answer is **$12**."},
        {"question": "q3", "answer": "#### 5", "completion": "I am not sure how to go on."},
    ]
    graded = lemagen.grade(rows, response_field="completion")
    assert [(g.pred, g.verdict) for g in graded] == [
        ("72", "correct"),
        ("12", "wrong"),
        (None, "no_answer"),
    ]


def test_bad_rows_raise_or_are_set_aside() -> None:
    rows = [{"question": "Two and two?", "answer": "#### 4"}, {"question": "No answer here"}]
    with pytest.raises(InputError, match=r"^<rows>:2: missing field 'answer'"):
        lemagen.inject(rows)
    result = lemagen.inject(rows, skip_bad_rows=True)
    assert [r.reason for r in result.rejects] == ["no_gold_solution", "missing_field"]
    assert result.rejects[1].record == {"question": "No answer here"}
    assert result.counts["missing_field"] == 1


def test_failed_requests_are_rejects_not_exceptions(fake: FakeOpenAI) -> None:
    fake.rule = lambda body: (400, {"error": {"message": "prompt too long"}})
    problems = load_jsonl(EXAMPLES / "gsm8k.jsonl")[:2]
    result = lemagen.sample(problems, model="m", base_url=fake.base_url, n=1)
    assert len(result) == 0
    assert [r.reason for r in result.rejects] == ["request_failed", "request_failed"]
    assert result.exit_code == 4
    assert result.error is not None
    assert "2 requests failed" in str(result.error.message)


def test_public_names_are_documented() -> None:
    names = [n for n in lemagen.__all__ if n != "__version__"]
    assert {"sample", "correct", "filter", "grade", "inject", "export", "stats"} <= set(names)
    for name in names:
        obj = getattr(lemagen, name)
        assert inspect.getdoc(obj), f"lemagen.{name} has no docstring"
    # A notebook's completion and help() show each command's own options.
    assert {"problems", "model", "n", "keep", "base_url", "max_cost"} <= set(
        inspect.signature(lemagen.sample).parameters
    )
    assert "format" in inspect.signature(lemagen.export).parameters
    with pytest.raises(AttributeError):
        _ = lemagen.not_a_stage


def test_options_and_stages_merged_from_main_match_their_commands(tmp_path: Path) -> None:
    """export's restart_rate, art_trust and smooth (through the loopback server) make the
    commands' records; the price overrides reach the engine."""
    injected = run("inject", str(DATA / "gsm8k_train_slice.jsonl"), "-q")
    rows = records(injected)
    assert len(rows) >= 5
    cli_restart = run(
        "export", "-f", "lemma", "--restart-rate", "1", "--seed", "3", "-q", input=injected.stdout
    )
    restart = lemagen.export(rows, format="lemma", restart_rate=1.0, seed=3)
    assert len(restart) == len(records(cli_restart)) > 0
    assert restart.dicts() == records(cli_restart)
    assert lemagen.export(rows, format="lemma", seed=3).dicts() != restart.dicts()  # 0.5
    # The library names its keywords, the command its flags (one error, shown two ways).
    with pytest.raises(UsageError, match=r"^restart_rate applies to format lemma only$"):
        lemagen.export(rows, format="alpaca", restart_rate=0.2)
    flags = run("export", "-f", "alpaca", "--restart-rate", "0.2", input=injected.stdout)
    assert flags.exit_code == 2
    assert flags.stderr == "Error: --restart-rate applies to --format lemma only\n"

    trust = lemagen.art_trust(rows)
    cli_trust = run("art", "trust", "-q", input=injected.stdout)
    assert len(trust) == len(records(cli_trust)) > 0
    assert trust.dicts() == records(cli_trust)

    smoother = FakeOpenAI(Smoother()).start()
    try:
        smoothed = lemagen.smooth(
            rows, model="smoother", base_url=smoother.base_url, restart_rate=1.0, seed=3
        )
        sent = len(smoother.requests)
        assert len(smoothed) > 0
        assert sent >= len(smoothed)
        path = write_jsonl(tmp_path / "injected.jsonl", rows)
        cli_smooth = run(
            "smooth", str(path), "-m", "smoother", "--base-url", smoother.base_url,
            "--restart-rate", "1", "--seed", "3", "-q",
        )  # fmt: skip
        assert len(smoother.requests) == sent  # the API's requests, read back from the store
        assert canonical(smoothed.dicts()) == canonical(records(cli_smooth))
    finally:
        smoother.stop()

    priced = lema.sample_stage(
        model="nobody-prices-this", max_cost=1.0, price_in=1.0, price_out=2.0, price_cached=0.25
    )
    assert (priced.config.price_in, priced.config.price_out) == (1.0, 2.0)
    assert priced.config.price_cached == 0.25
    with pytest.raises(UsageError, match=r"^max_cost needs a price for nobody-prices-this: give"):
        lemagen.sample(rows, model="nobody-prices-this", max_cost=1.0)


def test_a_result_shows_a_few_lines_not_its_records() -> None:
    """A notebook cell ending in a Result prints its counts, the commonest reasons rows were
    set aside and the summary, clipped: a few hundred characters whatever it holds."""
    from lemagen.api.run import Result

    kept = [{"prompt": "Question: " + "x" * 5000, "completion": "y" * 5000}] * 400
    reasons = ["wrong_answer"] * 30 + ["duplicate"] * 3 + ["truncated", "no_answer"]
    reasons += ["unparseable", "step_unchanged", "prefix_changed"]
    rejects = [Reject(reason=r, record={"text": "z" * 5000}) for r in reasons]  # type: ignore[arg-type]
    result = Result(kept=kept, rejects=rejects, summary="filter: in 438; " + "kept ... " * 500)
    text = repr(result)
    assert len(text) < 800
    lines = text.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith(
        "<lemagen.Result: 400 kept, 38 set aside (wrong_answer 30, duplicate 3,"
    )
    assert lines[0].endswith(", ...); exit code 0")
    assert lines[1].startswith("  summary: filter: in 438; kept ...")
    assert lines[1].endswith("...")
    assert "x" * 100 not in text
    assert repr(Result()).splitlines() == [
        "<lemagen.Result: 0 kept, 0 set aside; exit code 0",
        "  (.kept, .rejects, .dicts(), .counts, .report)>",
    ]
    failed = Result(error=UsageError("keep='wrongg': not one of all, wrong"), unread=[{}] * 3)
    assert ", 3 input rows not read; exit code 2" in repr(failed)
    assert "  error: keep='wrongg'" in repr(failed)


def test_the_package_is_typed() -> None:
    """py.typed (PEP 561): type checkers read lemagen's annotations instead of Any."""
    assert (Path(lemagen.__file__).parent / "py.typed").is_file()
