"""`lemagen smooth`: LEMMA's smoothing pass (methods.md §2.3 step 10), with our own prompt.

Each correction `filter` keeps becomes the trajectory `export -f lemma` writes (same seed, same
restart rate, so the same Fix & Continue or Fresh & Restart); a model rewrites it as one fluent
line of thought. A rewrite is kept only if it still reaches the gold answer
(`smooth_wrong_answer`) and still holds every number of the trajectory (its steps, the wrong
one included, and the explanation), at least as often as the trajectory has it
(`smooth_changed_values`): the smoothing may change the wording, never the work.
The output is the alpaca row `export -f lemma` writes, with the smoothed text. Requests go
through the request engine like `correct` (stored, so a re-run pays nothing twice).

Export stays offline; this is the one model-calling way to trajectories, and it reads the same
input as export (corrections), since the checks need the gold answer and the steps.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from lemagen.engine import Call, EngineConfig, RequestFailed, RequestShape, Sampling
from lemagen.lema.filter import Keep, check, unparseable_detail
from lemagen.lemma.trajectories import Trajectory, trajectory
from lemagen.math.answers import decimal_text
from lemagen.math.thinking import split_thinking
from lemagen.records import Alpaca, Correction, Sample, read_sample_or_correction
from lemagen.records.rows import Rejects, SetAside
from lemagen.stage.base import EngineStage, Hooks, Output, by_reason, fmt_counts
from lemagen.stage.templates import Template
from lemagen.terms import Reason

SMOOTH_VARIABLES = {"question", "trajectory"}
SUMMARY_KEYS = [
    "corrections",
    "written",
    "fix",
    "restart",
    "request_failed",
    "budget_exhausted",
    "bad_rows",
]
_NUMBER = re.compile(r"\d+(?:(?:,|\{,\})\d{3})*(?:\.\d+)?")
_LABEL = re.compile(r"^\s*(?:\*\*)?(?:Rewritten|Smoothed) solution:?(?:\*\*)?\s*", re.IGNORECASE)
_FENCE = re.compile(r"^```[a-z]*\n(.*)\n```$", re.DOTALL)


def numbers(text: str) -> Counter[str]:
    """The numbers written in `text`, as values (`1,000` and `1000`, `2.50` and `2.5` are
    one), with how often each occurs. Compared as canonical text: a number of any length is
    read without converting it."""
    return Counter(decimal_text(m.replace("{,}", "")) for m in _NUMBER.findall(text))


def smoothed_text(reply: str) -> str:
    """The rewrite in a reply: after any thinking, without an echoed label or a code fence."""
    text = split_thinking(reply).answer.strip()
    text = _LABEL.sub("", text)
    fenced = _FENCE.match(text)
    return (fenced.group(1) if fenced else text).strip()


class SmoothStage(EngineStage[Sample | Correction]):
    name = "smooth"

    def __init__(
        self,
        config: EngineConfig,
        *,
        model: str,
        template: Template,
        seed: int,
        restart_rate: float,
        sampling: Sampling,
        check_timeout: float,
        max_pending: int,
        request: RequestShape | None = None,
    ) -> None:
        super().__init__(config, check_timeout=check_timeout, max_pending=max_pending)
        self.model = model
        self.template = template
        self.seed = seed
        self.restart_rate = restart_rate
        self.sampling = sampling
        self.request = request or RequestShape()
        self._keep = Keep()
        self.dropped: Counter[str] = Counter()
        self._pending: list[SetAside] = []  # rows that send nothing, set aside

    def read(self, data: dict[str, Any], where: str) -> Sample | Correction:
        return read_sample_or_correction(data, where)

    def _trajectory(self, record: Correction) -> Trajectory:
        return trajectory(record, self.seed, self.restart_rate)

    def calls(self, row: Sample | Correction) -> list[Call]:
        if not isinstance(row, Correction) or check(row) is not None:
            return []
        made = self._trajectory(row)
        prompt = self.template.render(question=row.question, trajectory=made.text)
        return [self.request.call(self.model, prompt, 1, self.sampling)]

    def run(self, rows: Iterable[Sample | Correction], hooks: Hooks) -> Iterator[Output]:
        for record, results in self.sent(self._kept(rows, hooks), hooks):
            yield from self._flush()
            assert isinstance(record, Correction)
            yield self._judge(record, results[0])
        yield from self._flush()

    def _flush(self) -> Iterator[SetAside]:
        yield from self._pending
        self._pending.clear()

    def _kept(
        self, rows: Iterable[Sample | Correction], hooks: Hooks
    ) -> Iterator[Sample | Correction]:
        """The corrections `filter` keeps; everything else is set aside with filter's reason
        (collected for the output, since these rows send nothing)."""
        for record in rows:
            hooks.on_row(1)
            if isinstance(record, Correction):
                self.counts["corrections"] += 1
            _, reason = self._keep(record)
            if reason is None and isinstance(record, Correction):
                yield record
            else:
                self._drop(reason or "correct_sample", record)

    def _drop(self, reason: Reason, record: Sample | Correction) -> None:
        self.dropped[reason] += 1
        self._pending.append(SetAside(reason, record, unparseable_detail(record, reason)))

    def _judge(self, record: Correction, result: Any) -> Output:
        assert self.grader is not None
        if isinstance(result, RequestFailed):
            self.counts[result.reason] += 1
            return SetAside(result.reason, record, str(result))
        choice = result.choices[0]
        if choice.finish_reason == "length":
            return self._aside("truncated", record, "the rewrite ran past --max-tokens")
        text = smoothed_text(choice.text)
        graded = self.grader.grade(record.task, record.problem.gold, text)
        if graded.verdict != "correct":
            detail = f"the rewrite's answer is {graded.pred!r} ({graded.verdict})"
            return self._aside("smooth_wrong_answer", record, detail)
        made = self._trajectory(record)
        lost = numbers(made.text) - numbers(text)
        if lost:  # a number of the work is missing, or written fewer times than the work has it
            shown = ", ".join(sorted(lost, key=lambda v: (len(v.split(".")[0]), v)))
            return self._aside("smooth_changed_values", record, f"lost {shown}")
        self.counts["written"] += 1
        self.counts[made.kind] += 1
        return Alpaca(instruction=record.question, output=text)

    def _aside(self, reason: Reason, record: Correction, detail: str) -> SetAside:
        self.dropped[reason] += 1
        return SetAside(reason, record, detail)

    def summary(self, rejects: Rejects) -> str:
        self.counts["bad_rows"] = rejects.bad_rows
        return (
            f"smooth: {fmt_counts(self.counts, SUMMARY_KEYS)}; set aside "
            f"{by_reason(self.dropped)}; {self.requests_summary()}"
        )
