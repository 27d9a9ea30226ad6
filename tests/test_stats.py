"""`lemagen stats`: the numbers against a run whose truth the test knows, the JSON and table
outputs, and the HTML page rendered in headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXAMPLES, load_jsonl, run
from tests.fake_openai import FakeOpenAI

GSM8K = str(EXAMPLES / "gsm8k.jsonl")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def pipeline(fake: FakeOpenAI, tmp_path: Path) -> list[Path]:
    """10 problems x 4 distinct samples (2 right, 2 wrong) from gpt-4o-mini, corrected by
    gpt-4o (the tutor fixes the last step), plus a rejects file."""
    fake.tag_samples = True
    base = ["--base-url", fake.base_url, "-q"]
    samples = tmp_path / "samples.jsonl"
    rejects = tmp_path / "rejects.jsonl"
    sampled = run("sample", GSM8K, "-m", "gpt-4o-mini", "-n", "4", "--keep", "all", *base)
    samples.write_text(sampled.stdout)
    corrected = run("correct", str(samples), "-m", "gpt-4o", "--rejects", str(rejects), *base)
    corrections = tmp_path / "corrections.jsonl"
    corrections.write_text(corrected.stdout)
    rejects.write_text(json.dumps({"reason": "truncated", "record": {}}) + "\n")
    return [samples, corrections, rejects]


def report_of(*paths: Path) -> dict[str, Any]:
    result = run("stats", *map(str, paths), "--json", "-q")
    assert result.exit_code == 0, result.stderr
    (line,) = result.stdout.splitlines()
    report: dict[str, Any] = json.loads(line)
    return report


def test_numbers_match_the_run(pipeline: list[Path], fake: FakeOpenAI) -> None:
    report = report_of(*pipeline)
    assert report["funnel"] == {
        "problems": 10, "samples": 40, "wrong": 20, "corrections": 20, "kept": 20,
    }  # fmt: skip
    assert report["accuracy_by_reasoner"] == {
        "gpt-4o-mini": {"samples": 40, "correct": 20, "wrong": 20, "accuracy": 0.5}
    }
    corrections = [r for r in load_jsonl(pipeline[1]) if "correction_id" in r]
    lengths = Counter(len(r["original"]["steps"]) for r in corrections)
    assert report["incorrect_step"]["absolute"] == {str(k): v for k, v in sorted(lengths.items())}
    assert report["incorrect_step"]["relative"]["90-100%"] == 20  # the tutor fixes the last step
    assert report["reasons"] == {"truncated": 1}
    # Prompt tokens: what the server counted, over every request made.
    served_in = sum(len(r["body"]["messages"][0]["content"].split()) for r in fake.requests)
    assert report["tokens"]["prompt"] == served_in
    total = report["tokens"]["prompt"] + report["tokens"]["completion"]
    assert report["tokens_per_kept_row"] == pytest.approx(total / 20, abs=0.1)
    assert report["cost_usd"] > 0
    assert report["cost_per_kept_row_usd"] == pytest.approx(report["cost_usd"] / 20, abs=1e-6)
    assert report["unpriced_models"] == []


def test_table_goes_to_stderr_and_stdout_stays_empty(pipeline: list[Path]) -> None:
    result = run("stats", *map(str, pipeline))
    assert result.exit_code == 0
    assert result.stdout == ""
    table = result.stderr
    assert re.search(r"^  corrections\s+20$", table, re.M)
    assert re.search(r"^  gpt-4o-mini\s+50\.0%  \(20 of 40\)$", table, re.M)
    assert "per kept row $" in table


def test_bad_record_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"hello": 1}\n')
    result = run("stats", str(path))
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"Error: {path}:1: not a lemagen record (sample, correction, reject or training row)"
    )


def _chromium() -> str | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and os.environ.get("LEMAGEN_REQUIRE_BROWSER"):
        pytest.fail("chromium is not installed (CI installs Debian's chromium and chromium-driver)")
    return found


def test_html_report_draws_its_charts_in_headless_chromium(
    pipeline: list[Path], tmp_path: Path
) -> None:
    chromium = _chromium()
    if chromium is None:
        pytest.skip("chromium not installed; .ci/run installs it and sets LEMAGEN_REQUIRE_BROWSER")
    page = tmp_path / "report.html"
    assert run("stats", *map(str, pipeline), "--html", str(page), "-q").exit_code == 0
    source = page.read_text()
    # Self-contained: no external script, style, image or font.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", source)
    assert "@import" not in source
    profile = tmp_path / "profile"
    dom = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip
    assert 'data-charts="4"' in dom  # every chart's script ran to the end
    report = report_of(*pipeline)
    expected = {
        "funnel": list(report["funnel"].values()),
        "accuracy": [m["accuracy"] for m in report["accuracy_by_reasoner"].values()],
        "step-absolute": list(report["incorrect_step"]["absolute"].values()),
        "step-relative": list(report["incorrect_step"]["relative"].values()),
    }
    for chart, values in expected.items():
        block = dom.split(f'id="{chart}"', 1)[1].split("</svg>", 1)[0]
        bars = re.findall(r'<rect[^>]*width="([\d.]+)"[^>]*data-value="([\d.]+)"', block)
        assert [float(v) for _, v in bars] == [float(v) for v in values], chart
        for width, value in bars:
            assert (float(width) > 0) == (float(value) > 0), chart


def _dom(chromium: str, page: Path, tmp_path: Path) -> str:
    profile = tmp_path / "profile-examples"
    return subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip


PWN = 'document.body.setAttribute("data-pwned", "{}")'


def _hostile(corrections: Path, tmp_path: Path) -> Path:
    """A wrong correction whose question, steps, explanation and model name hold markup and
    scripts, as a model's text may."""
    row = next(r for r in load_jsonl(corrections) if "correction_id" in r)
    original = dict(row["original"], meta=dict(row["original"]["meta"]))
    original["steps"] = [
        f"We add <img src=x onerror='{PWN.format(1)}'>.",
        f"<script>{PWN.format(2)}</script> The answer is 7.",
    ]
    original["meta"]["model"] = f"evil</script><script>{PWN.format(3)}</script>"
    row = dict(row, original=original, correction_id="hostile", sample_id="hostile-s")
    row["question"] = f"What is <b>2+2</b>?<script>{PWN.format(4)}</script>"
    row["explanation"] = f"</details><script>{PWN.format(5)}</script>"
    row["corrected_steps"] = [f"<script>{PWN.format(6)}</script>"]
    row["incorrect_step"], row["corrected_from"] = 2, 2
    row["pred"], row["verdict"] = "4", "wrong"
    path = tmp_path / "hostile.jsonl"
    path.write_text(json.dumps(row) + "\n")
    return path


def test_html_report_browses_examples_and_runs_no_model_text(
    pipeline: list[Path], tmp_path: Path
) -> None:
    chromium = _chromium()
    if chromium is None:
        pytest.skip("chromium not installed; .ci/run installs it and sets LEMAGEN_REQUIRE_BROWSER")
    samples, corrections, _ = pipeline
    hostile = _hostile(corrections, tmp_path)
    page = tmp_path / "report.html"
    result = run("stats", str(samples), str(corrections), str(hostile), "--html", str(page), "-q")
    assert result.exit_code == 0, result.stderr
    dom = _dom(chromium, page, tmp_path)
    assert 'data-charts="4"' in dom  # the page's own script ran
    assert "data-pwned" not in dom.split("<body", 1)[1].split(">", 1)[0]  # no model script did
    assert "<b>2+2</b>" not in dom
    assert "What is &lt;b&gt;2+2&lt;/b&gt;?&lt;script&gt;" in dom
    assert "<img" not in dom

    # 20 kept of 20 in the pipeline (12 shown), the hostile one and only it rejected.
    assert "Kept corrections: 12 of 20, drawn at random" in dom
    assert "Rejected corrections: 1 of 1, drawn at random" in dom
    kept = re.findall(r'<details class="example kept"', dom)
    rejected = dom.split('<details class="example rejected"', 1)[1]
    assert len(kept) == 12
    # The original's incorrect step is flagged, the corrected step beside it, changes marked.
    row = rejected.split('<tr class="incorrect">', 1)[1].split("</tr>", 1)[0]
    assert '<span class="flag">incorrect step</span>' in row
    assert '<del class="chg num">2</del>' in row  # the value that changed, struck out
    assert '<mark class="chg num">6</mark>' in row  # and its replacement
    assert re.search(r'<del class="chg num">[^<]*The answer is 7\.</del>', row)
    assert "&lt;script&gt;" in row
    assert "Explanation.</b> &lt;/details&gt;&lt;script&gt;" in rejected
    assert "reasoner evil&lt;/script&gt;&lt;script&gt;" in rejected

    # Every kept example: the tutor corrects the last step to the gold answer.
    gold = {r["correction_id"]: r["gold"] for r in load_jsonl(corrections) if "correction_id" in r}
    blocks = dom.split('<details class="example kept"')[1:]
    for block in blocks:
        last = block.split('<tr class="incorrect">', 1)[1].split("</tr>", 1)[0]
        new = last.split('class="new', 1)[1]
        marked = re.findall(r'<mark class="chg num">([^<]+)</mark>', new)
        assert marked, new
        assert marked[-1] in set(gold.values())

    # Yield and cost: 40 samples from gpt-4o-mini, 21 corrections by gpt-4o, 20 kept.
    reasoners = dom.split('id="reasoners"', 1)[1].split("</table>", 1)[0]
    assert re.search(
        r"<td>gpt-4o-mini</td><td class=\"n\">40</td><td class=\"n\">20</td>"
        r"<td class=\"n\">20</td><td class=\"n\">20</td><td class=\"n\">50\.0%</td>",
        reasoners,
    ), reasoners
    correctors = dom.split('id="correctors"', 1)[1].split("</table>", 1)[0]
    assert re.search(
        r"<td>gpt-4o</td><td class=\"n\">21</td><td class=\"n\">20</td>"
        r"<td class=\"n\">95\.2%</td>",
        correctors,
    ), correctors
    report = report_of(samples, corrections, hostile)
    cost = re.findall(r"\$([\d.]+)", correctors.split("<td>gpt-4o</td>", 1)[1])[0]
    assert float(cost) > 0
    assert float(cost) < report["cost_usd"]  # the reasoner's share is the rest


def test_html_report_breaks_down_every_carried_field(tmp_path: Path) -> None:
    rows = load_jsonl(EXAMPLES / "gsm8k.jsonl")
    for i, row in enumerate(rows):
        row["level"] = f"L{i % 3}"
        row["note"] = f"unique {i}"  # text of its own per row: not a category
    problems = tmp_path / "p.jsonl"
    problems.write_text("".join(json.dumps(r) + "\n" for r in rows))
    injected = run("inject", str(problems), "--per-question", "2", "-q")
    corrections = tmp_path / "c.jsonl"
    corrections.write_text(injected.stdout)
    page = tmp_path / "report.html"
    assert run("stats", str(corrections), "--html", str(page), "-q").exit_code == 0
    source = page.read_text()
    by_level = Counter(r["source"]["level"] for r in load_jsonl(corrections))
    assert sum(by_level.values()) >= 10
    table = source.split('data-field="level"', 1)[1].split("</table>", 1)[0]
    found = re.findall(
        r"<tr><td>(L\d)</td>(?:<td class=n>[^<]*</td>){3}<td class=n>(\d+)</td>", table
    )
    assert {level: int(n) for level, n in found} == dict(by_level)
    assert 'data-field="task"' in source
    assert len(rows) >= 10
    assert 'data-field="note"' in source  # 10 values: still a category
