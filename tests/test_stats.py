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

import msgspec
import pytest

from lemagen.curate.stats import StatsReport
from lemagen.records.jsonl import _dumps
from tests.conftest import DATA, EXAMPLES, load_jsonl, run
from tests.fake_openai import FakeOpenAI, MathTutor
from tests.mistake_models import (
    ANALYSER_STYLES,
    ASKER_STYLES,
    TEACHER_STYLES,
    MistakeModels,
    true_type,
)

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


@pytest.fixture
def analysed(pipeline: list[Path], fake: FakeOpenAI, tmp_path: Path) -> list[Path]:
    """The pipeline plus `lemagen analyze` of its wrong samples (the fake analyser answers
    with a type drawn from each question's CRC) by gpt-4o, and a second reasoner's analysed
    samples."""
    fake.tag_samples = False
    assert isinstance(fake.responder, MathTutor)
    fake.responder = MistakeModels(fake.responder)
    base = ["--base-url", fake.base_url, "-q"]
    analysis = tmp_path / "analysis.jsonl"
    result = run("analyze", str(pipeline[0]), "-m", "gpt-4o", *base)
    assert result.exit_code == 0, result.stderr
    other = run("sample", GSM8K, "-m", "other-reasoner", "-n", "2", *base)
    second = run("analyze", "-", "-m", "gpt-4o", *base, input=other.stdout)
    analysis.write_text(result.stdout + second.stdout)
    return [*pipeline, analysis]


def test_error_types_per_reasoner(analysed: list[Path]) -> None:
    report = report_of(*analysed)
    rows = [r for r in load_jsonl(analysed[-1]) if "error_type" in r]
    assert len(rows) == 30  # 20 wrong samples of gpt-4o-mini, 10 of other-reasoner
    expected: dict[str, Counter[str]] = {}
    for r in rows:
        expected.setdefault(r["original"]["meta"]["model"], Counter())[
            true_type(r["question"])
        ] += 1
    assert set(expected) == {"gpt-4o-mini", "other-reasoner"}
    got = report["error_types_by_reasoner"]
    assert set(got) == set(expected)
    for model, counts in expected.items():
        total = sum(counts.values())
        assert got[model]["analysed"] == total
        assert {t: v["count"] for t, v in got[model]["types"].items()} == dict(counts)
        assert {t: v["share"] for t, v in got[model]["types"].items()} == {
            t: round(n / total, 4) for t, n in counts.items()
        }
        shares = [v["count"] for v in got[model]["types"].values()]
        assert shares == sorted(shares, reverse=True)  # most common first
    # The analysed samples are the pipeline's wrong samples: counted once in the funnel.
    assert report["funnel"]["samples"] == 40 + 10
    table = run("stats", *map(str, analysed)).stderr
    assert "error types by reasoner (lemagen analyze)" in table
    assert "  other-reasoner (10 analysed)" in table
    name, count = expected["gpt-4o-mini"].most_common(1)[0]
    assert re.search(rf"^    {name}\s+{count}\s+{100 * count / 20:.1f}%$", table, re.M)


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


@pytest.mark.slow
def test_html_report_draws_its_charts_in_headless_chromium(
    analysed: list[Path], tmp_path: Path
) -> None:
    pipeline = analysed
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
    assert 'data-charts="5"' in dom  # every chart's script ran to the end
    report = report_of(*pipeline)
    expected = {
        "funnel": list(report["funnel"].values()),
        "accuracy": [m["accuracy"] for m in report["accuracy_by_reasoner"].values()],
        "step-absolute": list(report["incorrect_step"]["absolute"].values()),
        "step-relative": list(report["incorrect_step"]["relative"].values()),
        "error-types": [
            t["share"]
            for m in report["error_types_by_reasoner"].values()
            for t in m["types"].values()
        ],
    }
    assert len(expected["error-types"]) >= 4
    for chart, values in expected.items():
        block = dom.split(f'id="{chart}"', 1)[1].split("</svg>", 1)[0]
        bars = re.findall(r'<rect[^>]*width="([\d.]+)"[^>]*data-value="([\d.]+)"', block)
        assert [float(v) for _, v in bars] == [float(v) for v in values], chart
        for width, value in bars:
            assert (float(width) > 0) == (float(value) > 0), chart


def test_accuracy_counts_every_sample_drawn(fake: FakeOpenAI, tmp_path: Path) -> None:
    """Two reasoners of known accuracy: the server answers right on the first of every two
    choices for one and the first of every four for the other, and the same wrong path for
    all the others, which `sample` keeps once per model. Accuracy is over every sample
    drawn (deduplication after counting), and tokens and cost are the server's whole bill,
    cached prompt tokens at the cached rate."""
    tutor = fake.responder
    assert isinstance(tutor, MathTutor)
    fake.responders = {
        "gpt-4o-mini": MathTutor(tutor.answers, right_every=2),
        "gpt-4o-mini-2024-07-18": MathTutor(tutor.answers, right_every=4),
    }
    fake.cached_tokens = 4
    models = ["-m", "gpt-4o-mini", "-m", "gpt-4o-mini-2024-07-18"]
    sampled = run("sample", GSM8K, *models, "-n", "4", "--keep", "all", "--base-url",
                  fake.base_url)  # fmt: skip
    assert sampled.exit_code == 0, sampled.stderr
    assert "sample: 10 problems, 80 samples, 30 correct, 20 wrong, 30 duplicate;" in (
        sampled.stderr
    )
    written = tmp_path / "samples.jsonl"
    written.write_text(sampled.stdout)
    kept = load_jsonl(written)
    assert len(kept) == 50
    assert sorted(r["meta"].get("duplicates", 0) for r in kept if r["verdict"] == "wrong") == (
        [1] * 10 + [2] * 10
    )
    report = report_of(written)
    assert report["accuracy_by_reasoner"] == {
        "gpt-4o-mini": {"samples": 40, "correct": 20, "wrong": 20, "accuracy": 0.5},
        "gpt-4o-mini-2024-07-18": {"samples": 40, "correct": 10, "wrong": 30, "accuracy": 0.25},
    }
    assert report["funnel"]["samples"] == 80
    assert report["tokens"] == {
        "prompt": fake.billed_prompt_tokens,
        "completion": fake.billed_completion_tokens,
    }
    cached = fake.billed_cached_tokens
    assert cached == 4 * 20
    bill = (
        (fake.billed_prompt_tokens - cached) * 0.15
        + cached * 0.075
        + fake.billed_completion_tokens * 0.60
    ) / 1e6
    assert report["cost_usd"] == round(bill, 6)
    table = run("stats", str(written)).stderr
    assert "gpt-4o-mini                      50.0%  (20 of 40)" in table
    assert "gpt-4o-mini-2024-07-18           25.0%  (10 of 40)" in table

    # Without --keep all the correct samples are not written, and a duplicate-free view of
    # the wrong ones would undercount the bill: every call still has a kept record, so
    # the tokens are the whole bill all the same.
    wrong_only = tmp_path / "wrong.jsonl"
    wrong_only.write_text(
        run("sample", GSM8K, *models, "-n", "4", "-q", "--base-url", fake.base_url).stdout
    )
    again = report_of(wrong_only)
    assert again["tokens"] == report["tokens"]
    assert again["verdicts"] == {"wrong": 50}


def test_the_usage_of_set_aside_samples_and_of_each_call_counts_once(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    """A request's usage counts once however many of its samples are written (three of four
    here, the fourth truncated), and a request whose samples were all set aside (every one
    truncated, for the first problem) is paid for too: its usage is read from the rejects."""
    tutor = fake.responder
    assert isinstance(tutor, MathTutor)
    cut = ("We start with the first part and then", "length")

    def replies(prompt: str, n: int) -> list[tuple[str, str]]:
        if "Natalia" in prompt:
            return [cut] * n
        return [*tutor(prompt, n)[:-1], cut]

    fake.tag_samples = True
    fake.responder = replies
    rejects = tmp_path / "rejects.jsonl"
    sampled = run("sample", GSM8K, "-m", "gpt-4o", "-n", "4", "--keep", "all", "--rejects",
                  str(rejects), "--base-url", fake.base_url, "-q")  # fmt: skip
    written = tmp_path / "samples.jsonl"
    written.write_text(sampled.stdout)
    assert len(load_jsonl(written)) == 27
    assert len(load_jsonl(rejects)) == 13
    report = report_of(written, rejects)
    assert report["tokens"] == {
        "prompt": fake.billed_prompt_tokens,
        "completion": fake.billed_completion_tokens,
    }
    natalia = [r["body"] for r in fake.requests if "Natalia" in r["body"]["messages"][0]["content"]]
    assert len(natalia) == 1
    alone = report_of(written)["tokens"]["prompt"]
    assert alone == fake.billed_prompt_tokens - len(natalia[0]["messages"][0]["content"].split())


def test_the_golden_runs_tokens_are_what_its_stages_were_billed() -> None:
    """Over the golden pipeline's samples, corrections and rejects (two reasoners whose
    identical wrong samples share one correction request, samples read back from the request
    store, samples set aside), stats' tokens are exactly what the sample and correct
    summaries say the server billed."""
    golden = Path(__file__).resolve().parent / "data" / "golden"
    billed = [0, 0]
    for name in ("gsm8k.sample", "gsm8k.correct", "math.sample", "math.correct"):
        text = (golden / f"{name}.stderr.txt").read_text(encoding="utf-8")
        found = re.search(r"tokens in (\d+), out (\d+);", text)
        assert found, name
        billed[0] += int(found.group(1))
        billed[1] += int(found.group(2))
    inputs = sorted(
        p for p in golden.glob("*.jsonl") if p.name.split(".")[1] in ("sample", "correct")
    )
    assert len(inputs) == 8
    report = report_of(*inputs)
    assert report["tokens"] == {"prompt": billed[0], "completion": billed[1]}


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
    assert 'data-charts="5"' in dom  # the page's own script ran
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


def _billed(summary: str) -> dict[str, int]:
    found = re.search(r"tokens in (\d+), out (\d+);", summary)
    assert found, summary
    return {"prompt": int(found.group(1)), "completion": int(found.group(2))}


def _styled(fake: FakeOpenAI, styles: dict[str, str | None]) -> MistakeModels:
    """The loopback server as analyser, teacher and asker, each example question given the
    next of `styles` (so some replies are set aside)."""
    tutor = fake.responder
    if isinstance(tutor, MistakeModels):
        tutor = tutor.tutor
    assert isinstance(tutor, MathTutor)
    models = MistakeModels(tutor)
    names = list(styles)
    for i, row in enumerate(load_jsonl(Path(GSM8K))):
        models.styles[row["question"]] = names[i % len(names)]
    fake.responder = models
    return models


def test_a_teachers_calls_count_once_and_its_mistakes_are_no_reasoners_samples(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    """`inject --model`: a kept mistake's `meta` and `original.meta` are the same teacher call,
    counted once; set-aside replies are paid for too; the injected solutions count for no
    reasoner's accuracy. stats gives exactly the tokens inject's summary says were billed."""
    teacher = _styled(fake, TEACHER_STYLES)
    out, rejects = tmp_path / "inject.jsonl", tmp_path / "inject.rej"
    made = run("inject", GSM8K, "-m", "gpt-4o", "--types", "calculation_error",
               "--per-question", "2", "-o", str(out), "--rejects", str(rejects),
               "--base-url", fake.base_url)  # fmt: skip
    assert made.exit_code == 0, made.stderr
    kept, set_aside = load_jsonl(out), load_jsonl(rejects)
    assert len(kept) > 0
    assert len(set_aside) > 0
    assert len(kept) + len(set_aside) == teacher.asked["teacher"] == 20
    billed = _billed(made.stderr)
    assert billed == {
        "prompt": fake.billed_prompt_tokens,
        "completion": fake.billed_completion_tokens,
    }
    report = report_of(out, rejects)
    assert report["tokens"] == billed
    usage = [r["meta"]["usage"] for r in kept]
    assert report_of(out)["tokens"] == {
        "prompt": sum(u["prompt_tokens"] for u in usage),
        "completion": sum(u["completion_tokens"] for u in usage),
    }
    assert report["accuracy_by_reasoner"] == {}
    assert report["accuracy_note"] is None
    assert report["funnel"]["samples"] == report["funnel"]["wrong"] == 0
    assert report["funnel"]["corrections"] == len(kept)
    assert report["funnel"]["kept"] == len(kept)  # the gold steps from the mistake on


def test_mistakes_injected_offline_are_no_reasoners_samples(tmp_path: Path) -> None:
    out = tmp_path / "inject.jsonl"
    assert run("inject", GSM8K, "-o", str(out), "-q").exit_code == 0
    made = load_jsonl(out)
    assert len(made) > 0
    report = report_of(out)
    assert report["accuracy_by_reasoner"] == {}
    assert report["accuracy_note"] is None
    assert report["funnel"]["samples"] == 0
    assert report["funnel"]["corrections"] == len(made)
    table = run("stats", str(out)).stderr
    assert "unknown" not in table
    assert "0.0%" not in table


def test_set_aside_analyses_and_asker_replies_are_paid_for(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    """The analyser's and the asker's calls whose replies were set aside count in stats'
    tokens: over the outputs and rejects, exactly what the server billed."""
    fake.tag_samples = True  # 2 right and 2 wrong samples per problem
    samples = tmp_path / "samples.jsonl"
    sampled = run("sample", GSM8K, "-m", "gpt-4o-mini", "-n", "4", "--keep", "all", "-o",
                  str(samples), "--base-url", fake.base_url)  # fmt: skip
    assert sampled.exit_code == 0, sampled.stderr
    fake.tag_samples = False
    _styled(fake, ANALYSER_STYLES)
    analysis, rejects = tmp_path / "an.jsonl", tmp_path / "an.rej"
    analysed = run("analyze", str(samples), "-m", "gpt-4o", "-o", str(analysis), "--rejects",
                   str(rejects), "--base-url", fake.base_url)  # fmt: skip
    assert analysed.exit_code == 0, analysed.stderr
    set_aside = load_jsonl(rejects)
    assert len(set_aside) == 6  # three problems given bad styles, two wrong samples each
    assert all(r["record"]["analysis"]["meta"]["usage"] for r in set_aside)
    billed = {
        k: _billed(sampled.stderr)[k] + _billed(analysed.stderr)[k]
        for k in ("prompt", "completion")
    }
    assert billed == {
        "prompt": fake.billed_prompt_tokens,
        "completion": fake.billed_completion_tokens,
    }
    assert report_of(analysis, rejects)["tokens"] == billed

    _styled(fake, ASKER_STYLES)
    asked, asker_rejects = tmp_path / "ask.jsonl", tmp_path / "ask.rej"
    result = run("art", "ask", str(samples), "-m", "gpt-4o", "-o", str(asked), "--rejects",
                 str(asker_rejects), "--base-url", fake.base_url)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    unparsed = [r for r in load_jsonl(asker_rejects) if r["reason"] == "unparseable"]
    assert len(unparsed) == 4  # one problem given the bad style: four predictions, one call
    assert all(r["record"]["asker"]["meta"]["usage"] for r in unparsed)
    paid = report_of(samples, asked, asker_rejects)["tokens"]
    assert paid == {
        k: _billed(sampled.stderr)[k] + _billed(result.stderr)[k] for k in ("prompt", "completion")
    }


def test_stats_prices_a_run_that_used_price_flags(fake: FakeOpenAI, tmp_path: Path) -> None:
    """A model the table does not list is priced by --price-in/--price-out: stats takes the
    same flags and gives the run's cost; without them the cost is unknown, and the table,
    --json and the HTML header say so (never $0)."""
    samples = tmp_path / "samples.jsonl"
    flags = ["--price-in", "3", "--price-out", "15"]
    sampled = run("sample", GSM8K, "-m", "local-q", "-n", "2", "--keep", "all", *flags,
                  "-o", str(samples), "--base-url", fake.base_url)  # fmt: skip
    assert sampled.exit_code == 0, sampled.stderr
    found = re.search(r"cost \$(\d+\.\d+)", sampled.stderr)
    assert found, sampled.stderr
    billed = (fake.billed_prompt_tokens * 3 + fake.billed_completion_tokens * 15) / 1e6
    assert float(found.group(1)) == round(billed, 4) > 0

    priced = run("stats", str(samples), *flags, "--json", "-q")
    assert priced.exit_code == 0, priced.stderr
    report = json.loads(priced.stdout)
    assert report["cost_usd"] == round(billed, 6)
    assert report["unpriced_models"] == []
    assert report["cost_note"] is None

    unpriced = report_of(samples)
    assert unpriced["cost_usd"] is None
    assert unpriced["cost_per_kept_row_usd"] is None
    assert unpriced["unpriced_models"] == ["local-q"]
    assert unpriced["cost_note"].startswith("unknown: no price for local-q (give stats --price-in")
    page = tmp_path / "report.html"
    table = run("stats", str(samples), "--html", str(page)).stderr
    assert "cost: unknown; per kept row n/a (no price for local-q: give stats --price-in" in table
    header = re.search(r"<p[^>]*>[^<]*problems, [^<]*</p>", page.read_text())
    assert header, page.read_text()[:2000]
    assert "cost unknown" in header.group(0)
    assert "no price for local-q" in header.group(0)
    assert "$0.0000" not in header.group(0)


def test_one_price_flag_for_an_unlisted_model_is_named_in_the_summary(
    fake: FakeOpenAI,
) -> None:
    result = run("sample", GSM8K, "-m", "local-q", "--price-in", "3", "--base-url",
                 fake.base_url)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "cost $0.0000 + unknown (no price for local-q" in result.stderr
    assert (
        "prices: local-q no price (--price-in alone: a model not in the table needs both "
        "--price-in and --price-out)" in result.stderr
    )


def test_the_json_report_is_the_declared_one() -> None:
    """`stats --json` writes a `StatsReport` (every key declared there, in its order): the
    golden pipeline's report decodes into it, with no key it does not declare, and encodes back
    to the same line; a key it does not declare is refused."""
    line = (DATA / "golden" / "stats.jsonl").read_text(encoding="utf-8").strip()
    report = msgspec.json.decode(line, type=StatsReport)
    assert report.funnel.samples == 284
    assert _dumps(report.to_dict()) == line
    assert list(report.to_dict()) == [
        f.name for f in msgspec.structs.fields(StatsReport) if f.name != "by"
    ]
    with pytest.raises(msgspec.ValidationError, match="unknown field `extra`"):
        msgspec.json.decode(line[:-1] + ',"extra":1}', type=StatsReport)
