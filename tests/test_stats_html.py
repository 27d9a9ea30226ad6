"""`stats --html` charts drawn in headless Chromium: shares (accuracy, error types) scale to
100%, counts to their largest value, and a chart with nothing to draw says "none"."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import run
from tests.fake_openai import FakeOpenAI
from tests.test_stats import (  # noqa: F401 (fixtures)
    GSM8K,
    _chromium,
    _dom,
    analysed,
    pipeline,
    report_of,
)

pytestmark = pytest.mark.slow  # every test draws the page in Chromium

WIDTH, ACCURACY_LABEL, TYPES_LABEL, VALUE_ROOM = 700, 200, 330, 90  # the page's bars()


def _bars(dom: str, chart: str) -> list[tuple[float, float]]:
    block = dom.split(f'id="{chart}"', 1)[1].split("</div>", 1)[0]
    found = re.findall(r'<rect[^>]*width="([\d.]+)"[^>]*data-value="([\d.]+)"', block)
    return [(float(w), float(v)) for w, v in found]


def _page(tmp_path: Path, *inputs: Path) -> str:
    chromium = _chromium()
    if chromium is None:
        pytest.skip("chromium not installed; .ci/run installs it and sets LEMAGEN_REQUIRE_BROWSER")
    page = tmp_path / "report.html"
    result = run("stats", *map(str, inputs), "--html", str(page), "-q")
    assert result.exit_code == 0, result.stderr
    dom = _dom(chromium, page, tmp_path)
    assert 'data-charts="5"' in dom  # the page's script ran to the end
    return dom


def test_one_reasoner_at_half_accuracy_draws_a_half_bar(fake: FakeOpenAI, tmp_path: Path) -> None:
    """The only reasoner, right 2 times in 4: its bar is half the chart, not all of it; with
    no corrections and no analysis the step and error-type charts say "none"."""
    fake.tag_samples = True
    samples = tmp_path / "samples.jsonl"
    sampled = run("sample", GSM8K, "-m", "gpt-4o-mini", "-n", "4", "--keep", "all",
                  "--base-url", fake.base_url, "-q")  # fmt: skip
    samples.write_text(sampled.stdout)
    dom = _page(tmp_path, samples)
    ((width, value),) = _bars(dom, "accuracy")
    assert value == 0.5
    assert width == pytest.approx((WIDTH - ACCURACY_LABEL - VALUE_ROOM) * 0.5, abs=0.1)
    funnel = _bars(dom, "funnel")
    assert len(funnel) >= 4
    full = WIDTH - ACCURACY_LABEL - VALUE_ROOM
    assert max(w for w, _ in funnel) == pytest.approx(full, abs=0.1)  # counts: largest is full
    for chart in ("step-absolute", "step-relative", "error-types"):
        block = dom.split(f'id="{chart}"', 1)[1].split("</div>", 1)[0]
        assert '<p class="none">none</p>' in block, chart
        assert "<svg" not in block, chart
    for chart in ("funnel", "accuracy"):
        assert '<p class="none">' not in dom.split(f'id="{chart}"', 1)[1].split("</div>", 1)[0]


def test_error_type_shares_scale_to_a_hundred_percent(
    analysed: list[Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    dom = _page(tmp_path, *analysed)
    shares = [
        t["share"]
        for m in report_of(*analysed)["error_types_by_reasoner"].values()
        for t in m["types"].values()
    ]
    bars = _bars(dom, "error-types")
    assert len(bars) == len(shares) >= 4
    assert max(shares) < 1  # so a bar scaled to the largest share would be too long
    for (width, value), share in zip(bars, shares, strict=True):
        assert value == share
        assert width == pytest.approx((WIDTH - TYPES_LABEL - VALUE_ROOM) * share, abs=0.1)
