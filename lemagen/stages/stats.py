"""`lemagen stats`: what a run made, from any stage's output.

Reads sample, correction (`correct` or `inject`), rejects and training (`filter`/`export`)
records, in any mix, and reports the funnel (problems, samples, wrong, corrections, kept),
accuracy per reasoner, where the incorrect step falls (absolute step and relative position,
over the kept corrections), the reasons rows were dropped or set aside, and tokens and cost per
kept row. Corrections are judged exactly as `lemagen filter` judges them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from lemagen.records import (
    Correction,
    Meta,
    Problem,
    Record,
    Reject,
    RetryText,
    Sample,
    read_any,
)
from lemagen.records.rows import Rejects
from lemagen.stages.base import Hooks, Output, Stage
from lemagen.stages.filter import Keep
from lemagen.stages.report import Details, usage_cost

RELATIVE_BINS = 10


@dataclass
class RunStats:
    problems: set[str] = field(default_factory=set)
    samples: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)
    corrections: int = 0
    kept: int = 0
    training_rows: int = 0
    by_model: dict[str, Counter[str]] = field(default_factory=dict)
    step_abs: Counter[int] = field(default_factory=Counter)
    step_rel: Counter[int] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    tokens_in: float = 0.0
    tokens_out: float = 0.0
    cost: float = 0.0
    unpriced: set[str] = field(default_factory=set)
    by: str | None = None  # the problem field the funnel is also broken down by
    groups: dict[str, Counter[str]] = field(default_factory=dict)
    _group_problems: dict[str, set[str]] = field(default_factory=dict)
    _samples_seen: set[str] = field(default_factory=set)
    _keep: Keep = field(default_factory=Keep)
    details: Details = field(default_factory=Details)  # what the HTML page shows beyond this

    def _group(self, problem: Problem, counter: str) -> None:
        if self.by is None:
            return
        value = problem.field(self.by)
        key = "(none)" if value is None else str(value)
        self.groups.setdefault(key, Counter())[counter] += 1
        self._group_problems.setdefault(key, set()).add(problem.id)

    def add(self, record: Record) -> None:
        if isinstance(record, Correction):
            self._correction(record)
        elif isinstance(record, Sample):
            if self._sample(record.id, record.sample_id, record.meta, record.verdict):
                self._group(record.the_problem, record.verdict)
                self.details.sample(record.the_problem, record.meta, record.verdict)
        elif isinstance(record, Reject):
            self.reasons[record.reason] += 1
        elif isinstance(record, RetryText):
            self.problems.add(record.problem.id)
        else:
            self.training_rows += 1

    def _sample(self, problem_id: str, sample_id: str | None, meta: Meta, verdict: str) -> bool:
        """Count a sample once (False when it was counted already)."""
        if str(sample_id) in self._samples_seen:
            return False
        self._samples_seen.add(str(sample_id))
        self.samples += 1
        self.verdicts[verdict] += 1
        self.problems.add(problem_id)
        model = meta.model or "unknown"
        self.by_model.setdefault(model, Counter())[verdict] += 1
        self._usage(meta)
        return True

    def _correction(self, record: Correction) -> None:
        self.corrections += 1
        self.problems.add(record.id)
        if self._sample(record.id, record.sample_id, record.original.meta, "wrong"):
            self._group(record.problem, "wrong")
            self.details.sample(record.problem, record.original.meta, "wrong")
        self._group(record.problem, "corrections")
        self._usage(record.meta)
        out, reason = self._keep(record)
        self.details.correction(record, None if out is not None else reason or "dropped")
        if out is None:
            self.reasons[reason or "dropped"] += 1
            return
        self.kept += 1
        self._group(record.problem, "kept")
        k = record.incorrect_step or 1
        n = len(record.original.steps)
        self.step_abs[k] += 1
        position = (k - 1) / max(1, n - 1)  # 0 = first step, 1 = last step
        self.step_rel[min(RELATIVE_BINS - 1, int(position * RELATIVE_BINS))] += 1

    def _usage(self, meta: Meta) -> None:
        """This record's share of its request's tokens (usage / choices)."""
        tokens_in, tokens_out, cost = usage_cost(meta)
        if not meta.usage:
            return
        self.tokens_in += tokens_in
        self.tokens_out += tokens_out
        if cost is not None:
            self.cost += cost
        else:
            self.unpriced.add(meta.model or "unknown")

    def report(self) -> dict[str, Any]:
        kept = self.kept or self.training_rows
        accuracy = {
            model: {
                "samples": sum(c.values()),
                "correct": c["correct"],
                "wrong": c["wrong"],
                "accuracy": round(c["correct"] / max(1, c["correct"] + c["wrong"]), 4),
            }
            for model, c in sorted(self.by_model.items())
        }
        return {
            "funnel": {
                "problems": len(self.problems),
                "samples": self.samples,
                "wrong": self.verdicts["wrong"],
                "corrections": self.corrections,
                "kept": kept,
            },
            "verdicts": dict(self.verdicts),
            "accuracy_by_reasoner": accuracy,
            "accuracy_note": None
            if self.verdicts["correct"]
            else "no correct samples in the input (sample --keep wrong): accuracy reads as 0",
            "incorrect_step": {
                "absolute": {str(k): v for k, v in sorted(self.step_abs.items())},
                "relative": {
                    f"{10 * b}-{10 * (b + 1)}%": self.step_rel[b] for b in range(RELATIVE_BINS)
                },
            },
            "reasons": dict(self.reasons.most_common()),
            "tokens": {"prompt": round(self.tokens_in), "completion": round(self.tokens_out)},
            "tokens_per_kept_row": round((self.tokens_in + self.tokens_out) / kept, 1)
            if kept
            else None,
            "cost_usd": round(self.cost, 6),
            "cost_per_kept_row_usd": round(self.cost / kept, 6) if kept else None,
            "unpriced_models": sorted(self.unpriced),
            "training_rows": self.training_rows,
        } | ({} if self.by is None else {"by": {"field": self.by, "groups": self._groups()}})

    def _groups(self) -> dict[str, dict[str, Any]]:
        out = {}
        for key in sorted(self.groups):
            c = self.groups[key]
            samples = c["correct"] + c["wrong"] + c["no_answer"] + c["timeout"]
            out[key] = {
                "problems": len(self._group_problems[key]),
                "samples": samples,
                "wrong": c["wrong"],
                "accuracy": round(c["correct"] / max(1, c["correct"] + c["wrong"]), 4),
                "corrections": c["corrections"],
                "kept": c["kept"],
            }
        return out


def _or_na(value: object) -> str:
    return "n/a" if value is None else str(value)


def render_table(report: dict[str, Any]) -> str:
    lines = ["funnel"]
    for name, value in report["funnel"].items():
        lines.append(f"  {name:<14}{value:>10}")
    lines.append("accuracy by reasoner")
    for model, row in report["accuracy_by_reasoner"].items():
        lines.append(
            f"  {model:<30}{row['accuracy']:>8.1%}  ({row['correct']} of "
            f"{row['correct'] + row['wrong']})"
        )
    if report["accuracy_note"]:
        lines.append(f"  note: {report['accuracy_note']}")
    lines.append("incorrect step (kept corrections)")
    for step, count in report["incorrect_step"]["absolute"].items():
        lines.append(f"  step {step:<9}{count:>10}")
    lines.append("  relative position in the solution")
    for band, count in report["incorrect_step"]["relative"].items():
        lines.append(f"    {band:<12}{count:>10}")
    lines.append("dropped or set aside")
    for reason, count in report["reasons"].items() or [("none", 0)]:
        lines.append(f"  {reason:<22}{count:>8}")
    if report.get("by"):
        by = report["by"]
        lines.append(f"by {by['field']}: problems, samples, wrong, accuracy, corrections, kept")
        for key, g in by["groups"].items():
            lines.append(
                f"  {key:<16}{g['problems']:>7}{g['samples']:>8}{g['wrong']:>7}"
                f"{g['accuracy']:>8.1%}{g['corrections']:>7}{g['kept']:>7}"
            )
    tokens = report["tokens"]
    lines.append(f"tokens: prompt {tokens['prompt']}, completion {tokens['completion']}; "
                 f"per kept row {_or_na(report['tokens_per_kept_row'])}")  # fmt: skip
    cost = f"cost: ${report['cost_usd']:.4f}; per kept row "
    cost += (
        "n/a"
        if report["cost_per_kept_row_usd"] is None
        else f"${report['cost_per_kept_row_usd']:.6f}"
    )
    if report["unpriced_models"]:
        cost += f" (no price for {', '.join(report['unpriced_models'])})"
    lines.append(cost)
    return "\n".join(lines)


@dataclass(frozen=True)
class Report:
    """The report, as the one line `stats --json` writes."""

    data: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return self.data


class StatsStage(Stage[Record]):
    """Reads any records and writes nothing per row: its output is the report (one JSON line
    with `as_json`) and its summary the table."""

    name = "stats"

    def __init__(self, *, as_json: bool = False, by: str | None = None) -> None:
        super().__init__()
        self.stats = RunStats(by=by)
        self.as_json = as_json

    def read(self, data: dict[str, Any], where: str) -> Record:
        return read_any(data, where)

    def run(self, rows: Iterable[Record], hooks: Hooks) -> Iterator[Output]:
        for record in rows:
            self.stats.add(record)
        return iter(())

    def finish(self) -> Iterator[Output]:
        if self.as_json:
            yield Report(self.report())

    def report(self) -> dict[str, Any]:
        return self.stats.report()

    def summary(self, rejects: Rejects) -> str:
        return render_table(self.report())
