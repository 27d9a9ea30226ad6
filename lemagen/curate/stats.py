"""`lemagen stats`: what a run made, from any stage's output.

Reads sample, correction (`correct` or `inject`), analysis (`analyze`), ART (`art ask`/`art
trust`), rejects and training (`filter`/`export`) records, in any mix, and reports the funnel
(problems, samples, wrong, corrections, kept), accuracy per reasoner, the error types per
reasoner (from `analyze`), where the incorrect step falls (absolute step and relative position,
over the kept corrections), the reasons rows were dropped or set aside, and tokens and cost per
kept row. Corrections are judged exactly as `lemagen filter` judges them.

Counted is what was paid for: accuracy over every sample drawn (a kept sample's
`meta.duplicates` adds the identical wrong samples `sample` dropped after counting them), and
tokens and cost from the whole usage of every call seen in any record (kept, passed through
or set aside in rejects), once per call, cached prompt tokens at the cached rate.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec

from lemagen.curate.report import Details
from lemagen.engine import Price, price_for
from lemagen.errors import InputError
from lemagen.lema.filter import Keep
from lemagen.records import (
    Analysis,
    AskerRecord,
    Correction,
    Meta,
    ProblemFields,
    Provenance,
    Record,
    Reject,
    RetryText,
    Sample,
    TrusterRecord,
    fast,
    kind_of,
    read_any,
)
from lemagen.records.rows import Rejects
from lemagen.stage.base import Hooks, Output, Stage

RELATIVE_BINS = 10
AnyRecord = Record | Analysis | AskerRecord | TrusterRecord


# ---------------------------------------------------------------- the report (`stats --json`)


class Funnel(msgspec.Struct, forbid_unknown_fields=True):
    problems: int
    samples: int  # every sample drawn (a kept one's `meta.duplicates` included)
    wrong: int
    corrections: int
    kept: int  # kept corrections, or the training rows read when there were none


class Accuracy(msgspec.Struct, forbid_unknown_fields=True):
    samples: int
    correct: int
    wrong: int
    accuracy: float  # correct / (correct + wrong)


class StepPositions(msgspec.Struct, forbid_unknown_fields=True):
    """Where the incorrect step of the kept corrections falls: by step number, and by its
    position in the solution in tenths (`0-10%` ... `90-100%`)."""

    absolute: dict[str, int]
    relative: dict[str, int]


class TypeShare(msgspec.Struct, forbid_unknown_fields=True):
    count: int
    share: float


class ErrorTypes(msgspec.Struct, forbid_unknown_fields=True):
    """One reasoner's analysed mistakes (`lemagen analyze`), by error type, most first."""

    analysed: int
    types: dict[str, TypeShare]


class ArtRecords(msgspec.Struct, forbid_unknown_fields=True):
    asker: int
    truster: int


class Tokens(msgspec.Struct, forbid_unknown_fields=True):
    prompt: int
    completion: int


class Group(msgspec.Struct, forbid_unknown_fields=True):
    """The funnel of the problems whose `--by` field has one value."""

    problems: int
    samples: int
    wrong: int
    accuracy: float
    corrections: int
    kept: int


class ByField(msgspec.Struct, forbid_unknown_fields=True):
    field: str
    groups: dict[str, Group]


class StatsReport(msgspec.Struct, forbid_unknown_fields=True):
    """The report, as `stats --json` writes it (keys in this order) and the table shows it."""

    funnel: Funnel
    verdicts: dict[str, int]
    accuracy_by_reasoner: dict[str, Accuracy]
    accuracy_note: str | None
    incorrect_step: StepPositions
    error_types_by_reasoner: dict[str, ErrorTypes]
    art_records: ArtRecords
    reasons: dict[str, int]  # why rows were dropped or set aside, most first
    tokens: Tokens
    tokens_per_kept_row: float | None
    cost_usd: float | None  # None when no call had a price: not $0
    cost_per_kept_row_usd: float | None
    cost_note: str | None
    unpriced_models: list[str]
    training_rows: int
    by: ByField | msgspec.UnsetType = msgspec.UNSET  # `stats --by FIELD` only

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = msgspec.to_builtins(self)
        return out


# ---------------------------------------------------------------- counting


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
    priced: int = 0  # calls priced (their cost is in `cost`)
    unpriced: set[str] = field(default_factory=set)
    price: Callable[[str], Price] = price_for  # stats --price-*: the flags, else the table
    error_types: dict[str, Counter[str]] = field(default_factory=dict)  # by reasoner
    art: Counter[str] = field(default_factory=Counter)  # ART records by kind
    by: str | None = None  # the problem field the funnel is also broken down by
    groups: dict[str, Counter[str]] = field(default_factory=dict)
    _group_problems: dict[str, set[str]] = field(default_factory=dict)
    _samples_seen: set[str] = field(default_factory=set)
    _calls_seen: set[tuple[Any, ...]] = field(default_factory=set)
    _keep: Keep = field(default_factory=Keep)
    # What the HTML page shows beyond the report (examples, per-model tables, breakdowns):
    # collected only for --html (a tenth of a stats run's time otherwise spent for nothing).
    details: Details | None = None

    def __post_init__(self) -> None:
        if self.details is not None:
            self.details.price = self.price

    def _group(self, problem: ProblemFields, counter: str, count: int = 1) -> None:
        if self.by is None:
            return
        value = problem.field(self.by)
        key = "(none)" if value is None else str(value)
        self.groups.setdefault(key, Counter())[counter] += count
        self._group_problems.setdefault(key, set()).add(problem.id)

    def add(self, record: AnyRecord) -> None:
        if isinstance(record, Analysis):
            self._analysis(record)
        elif isinstance(record, AskerRecord):
            self.art["asker"] += 1
            self._usage(record.meta, record.question)
        elif isinstance(record, TrusterRecord):
            self.art["truster"] += 1
        elif isinstance(record, Correction):
            self._correction(record)
        elif isinstance(record, Sample):
            drawn = self._sample(
                record.id, record.question, record.sample_id, record.meta, record.verdict
            )
            if drawn:
                self._group(record, record.verdict, drawn)
                if self.details is not None:
                    self.details.sample(record.problem, record.meta, record.verdict, drawn)
        elif isinstance(record, Reject):
            self.reasons[record.reason] += 1
            self._set_aside(record)
        elif isinstance(record, RetryText):
            self.problems.add(record.id)
        else:
            self.training_rows += 1

    def _sample(
        self, problem_id: str, question: str, sample_id: str | None, meta: Meta, verdict: str
    ) -> int:
        """Count a sample once: how many samples drawn it stands for (0 when it was counted
        already)."""
        if str(sample_id) in self._samples_seen:
            return 0
        self._samples_seen.add(str(sample_id))
        # A kept wrong sample also stands for the identical ones `sample` dropped after it
        # counted them: accuracy is over every sample drawn.
        drawn = 1 + ((meta.duplicates or 0) if isinstance(meta, Provenance) else 0)
        self.samples += drawn
        self.verdicts[verdict] += drawn
        self.problems.add(problem_id)
        model = meta.model or "unknown"
        self.by_model.setdefault(model, Counter())[verdict] += drawn
        self._usage(meta, question)
        return drawn

    def _correction(self, record: Correction) -> None:
        self.corrections += 1
        self.problems.add(record.id)
        # An injected solution (`inject`, offline or by a teacher) is no reasoner's sample: it
        # counts for no accuracy, and a teacher's call is the correction's own `meta`, whose
        # usage is counted once below.
        if not injected(record):
            drawn = self._sample(
                record.id, record.question, record.sample_id, record.original.meta, "wrong"
            )
            if drawn:
                self._group(record, "wrong", drawn)
                if self.details is not None:
                    self.details.sample(record.problem, record.original.meta, "wrong", drawn)
        self._group(record, "corrections")
        self._usage(record.meta, record.question, record.original.steps)
        out, reason = self._keep(record)
        if self.details is not None:
            self.details.correction(record, None if out is not None else reason or "dropped")
        if out is None:
            self.reasons[reason or "dropped"] += 1
            return
        self.kept += 1
        self._group(record, "kept")
        k = record.incorrect_step or 1
        n = len(record.original.steps)
        self.step_abs[k] += 1
        position = (k - 1) / max(1, n - 1)  # 0 = first step, 1 = last step
        self.step_rel[min(RELATIVE_BINS - 1, int(position * RELATIVE_BINS))] += 1

    def _analysis(self, record: Analysis) -> None:
        """A wrong sample with its error type: counted for its reasoner (and as a sample)."""
        drawn = self._sample(
            record.id, record.question, record.sample_id, record.original.meta,
            "wrong",
        )  # fmt: skip
        if drawn:
            self._group(record, "wrong", drawn)
        self.error_types.setdefault(record.reasoner, Counter())[record.error_type] += 1
        self._usage(record.meta, record.question, record.original.steps)

    def _error_types(self) -> dict[str, ErrorTypes]:
        out: dict[str, ErrorTypes] = {}
        for model, counts in sorted(self.error_types.items()):
            total = sum(counts.values())
            out[model] = ErrorTypes(
                analysed=total,
                types={
                    t: TypeShare(count=n, share=round(n / total, 4))
                    for t, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
                },
            )
        return out

    def _set_aside(self, reject: Reject) -> None:
        """A sample set aside (truncated, no answer, ...) was paid for too: its call's usage
        counts, once; so do the calls of the analyser, teacher or asker replies set aside
        with it."""
        for reply in reject.replies("(reject)"):
            self._usage(reply.meta, reply.question, reply.steps)
        data = reject.record
        if data is None or kind_of(data) != "sample":
            return
        try:
            sample = Sample.from_dict(data, "(reject)")
        except InputError:
            return
        if sample.problem is not None:
            self._usage(sample.meta, sample.question)

    def _usage(self, meta: Meta, question: str, steps: tuple[str, ...] = ()) -> None:
        """The whole usage of the request(s) that produced this record, counted once: the
        records of one call, and of identical calls the engine sent once (two reasoners'
        identical wrong samples get one correction request), share what the request was
        made of (the question, the steps corrected, the prompt file, model and parameters)
        and its usage. So samples dropped as duplicates, correct samples not written and
        samples set aside are paid for in the figures, and nothing twice."""
        usage = meta.usage
        if not usage or not isinstance(meta, Provenance):
            return
        call = (
            question,
            steps,
            meta.stage,
            meta.model,
            meta.api,
            meta.prompt_sha256,
            meta.n,
            meta.seed,
            meta.temperature,
            meta.top_p,
            meta.max_tokens,
            meta.system_sha256,
            tuple(meta.stop or ()),
            json.dumps(meta.extra_body, sort_keys=True) if meta.extra_body else None,
            meta.requests,
            tuple(sorted(usage.items())),
            # what else the call asked (`inject --model`: the error type and step)
            json.dumps(meta.extra, sort_keys=True, default=str) if meta.extra else None,
        )
        if call in self._calls_seen:
            return
        self._calls_seen.add(call)
        tokens_in = float(usage.get("prompt_tokens") or 0)
        tokens_out = float(usage.get("completion_tokens") or 0)
        self.tokens_in += tokens_in
        self.tokens_out += tokens_out
        model = meta.model or "unknown"
        price = self.price(model)
        if price.known:
            self.cost += price.cost(tokens_in, tokens_out, usage.get("cached_tokens") or 0)
            self.priced += 1
        else:
            self.unpriced.add(meta.model or "unknown")

    def _cost_note(self) -> str | None:
        """What the cost leaves out: the calls of models without a price."""
        if not self.unpriced:
            return None
        what = "priced models only" if self.priced else "unknown"
        return (
            f"{what}: no price for {', '.join(sorted(self.unpriced))} (give stats --price-in "
            "and --price-out, as the run had)"
        )

    def report(self) -> StatsReport:
        kept = self.kept or self.training_rows
        cost = round(self.cost, 6) if self.priced or not self.unpriced else None
        accuracy = {
            model: Accuracy(
                samples=sum(c.values()),
                correct=c["correct"],
                wrong=c["wrong"],
                accuracy=round(c["correct"] / max(1, c["correct"] + c["wrong"]), 4),
            )
            for model, c in sorted(self.by_model.items())
        }
        note = "no correct samples in the input (sample --keep wrong): accuracy reads as 0"
        return StatsReport(
            funnel=Funnel(
                problems=len(self.problems),
                samples=self.samples,
                wrong=self.verdicts["wrong"],
                corrections=self.corrections,
                kept=kept,
            ),
            verdicts=dict(self.verdicts),
            accuracy_by_reasoner=accuracy,
            accuracy_note=None if self.verdicts["correct"] or not self.verdicts["wrong"] else note,
            incorrect_step=StepPositions(
                absolute={str(k): v for k, v in sorted(self.step_abs.items())},
                relative={
                    f"{10 * b}-{10 * (b + 1)}%": self.step_rel[b] for b in range(RELATIVE_BINS)
                },
            ),
            error_types_by_reasoner=self._error_types(),
            art_records=ArtRecords(asker=self.art["asker"], truster=self.art["truster"]),
            reasons=dict(self.reasons.most_common()),
            tokens=Tokens(prompt=round(self.tokens_in), completion=round(self.tokens_out)),
            tokens_per_kept_row=round((self.tokens_in + self.tokens_out) / kept, 1)
            if kept
            else None,
            cost_usd=cost,
            cost_per_kept_row_usd=round(self.cost / kept, 6) if kept and cost is not None else None,
            cost_note=self._cost_note(),
            unpriced_models=sorted(self.unpriced),
            training_rows=self.training_rows,
            by=msgspec.UNSET if self.by is None else ByField(self.by, self._groups()),
        )

    def _groups(self) -> dict[str, Group]:
        out = {}
        for key in sorted(self.groups):
            c = self.groups[key]
            samples = c["correct"] + c["wrong"] + c["no_answer"] + c["timeout"]
            out[key] = Group(
                problems=len(self._group_problems[key]),
                samples=samples,
                wrong=c["wrong"],
                accuracy=round(c["correct"] / max(1, c["correct"] + c["wrong"]), 4),
                corrections=c["corrections"],
                kept=c["kept"],
            )
        return out


def injected(record: Correction) -> bool:
    """Whether the correction's original is a mistake `inject` made (offline or by a teacher
    model), not a reasoner's sample."""
    return record.original.meta.stage == "inject"


def cost_text(report: StatsReport) -> str:
    """`$0.0123; per kept row $0.000123`, with what it leaves out when some models have no
    price (`$0.0123 + unknown ...`, `unknown ...` when none has)."""
    total, per = report.cost_usd, report.cost_per_kept_row_usd
    text = "unknown" if total is None else f"${total:.4f}"
    if total is not None and report.unpriced_models:
        text += " + unknown"
    text += "; per kept row " + ("n/a" if per is None else f"${per:.6f}")
    if report.unpriced_models:
        text += (
            f" (no price for {', '.join(report.unpriced_models)}: give stats --price-in "
            "and --price-out, as the run had)"
        )
    return text


def _or_na(value: object) -> str:
    return "n/a" if value is None else str(value)


def render_table(report: StatsReport) -> str:
    lines = ["funnel"]
    for name, value in msgspec.structs.asdict(report.funnel).items():
        lines.append(f"  {name:<14}{value:>10}")
    lines.append("accuracy by reasoner")
    for model, row in report.accuracy_by_reasoner.items():
        lines.append(
            f"  {model:<30}{row.accuracy:>8.1%}  ({row.correct} of {row.correct + row.wrong})"
        )
    if report.accuracy_note:
        lines.append(f"  note: {report.accuracy_note}")
    lines.append("incorrect step (kept corrections)")
    for step, count in report.incorrect_step.absolute.items():
        lines.append(f"  step {step:<9}{count:>10}")
    lines.append("  relative position in the solution")
    for band, count in report.incorrect_step.relative.items():
        lines.append(f"    {band:<12}{count:>10}")
    if report.error_types_by_reasoner:
        lines.append("error types by reasoner (lemagen analyze)")
        for model, types in report.error_types_by_reasoner.items():
            lines.append(f"  {model} ({types.analysed} analysed)")
            for name, t in types.types.items():
                lines.append(f"    {name:<28}{t.count:>6}{t.share:>8.1%}")
    art = report.art_records
    if art.asker or art.truster:
        lines.append(f"ART records: asker {art.asker}, truster {art.truster}")
    lines.append("dropped or set aside")
    for reason, count in report.reasons.items() or [("none", 0)]:
        lines.append(f"  {reason:<22}{count:>8}")
    if report.by:
        lines.append(f"by {report.by.field}: problems, samples, wrong, accuracy, corrections, kept")
        for key, g in report.by.groups.items():
            lines.append(
                f"  {key:<16}{g.problems:>7}{g.samples:>8}{g.wrong:>7}"
                f"{g.accuracy:>8.1%}{g.corrections:>7}{g.kept:>7}"
            )
    tokens = report.tokens
    lines.append(f"tokens: prompt {tokens.prompt}, completion {tokens.completion}; "
                 f"per kept row {_or_na(report.tokens_per_kept_row)}")  # fmt: skip
    lines.append(f"cost: {cost_text(report)}")
    return "\n".join(lines)


@dataclass(frozen=True)
class Report:
    """The report, as the one line `stats --json` writes."""

    data: StatsReport

    def to_dict(self) -> dict[str, Any]:
        return self.data.to_dict()


class StatsStage(Stage[AnyRecord]):
    """Reads any records and writes nothing per row: its output is the report (one JSON line
    with `as_json`) and its summary the table."""

    name = "stats"

    def __init__(
        self,
        *,
        as_json: bool = False,
        by: str | None = None,
        price: Callable[[str], Price] = price_for,
        details: bool = False,
    ) -> None:
        super().__init__()
        self.stats = RunStats(by=by, price=price, details=Details() if details else None)
        self.as_json = as_json

    def read(self, data: dict[str, Any], where: str) -> AnyRecord:
        return read_any(data, where)

    def read_fast(self, raw: bytes) -> AnyRecord:
        return fast.sample_or_correction(raw)

    def run(self, rows: Iterable[AnyRecord], hooks: Hooks) -> Iterator[Output]:
        for record in rows:
            self.stats.add(record)
        return iter(())

    def finish(self) -> Iterator[Output]:
        if self.as_json:
            yield Report(self.report())

    def report(self) -> StatsReport:
        return self.stats.report()

    def summary(self, rejects: Rejects) -> str:
        return render_table(self.report())
