"""Every record lemagen reads or writes, defined once.

Each type is a frozen `msgspec.Struct` (chosen over frozen dataclasses by measurement: ten times
cheaper to build, benchmarks/bench_stages.py) with `from_dict(data, where)`, which checks every
field against its JSON shape (`shapes`) and raises a one-line `InputError` naming `where`
(`file:line`), and `to_dict()`, which writes the shape documented in the README (keys in a
fixed order). Nothing outside this package indexes a record dict by a field name.

The intermediate records (samples, corrections, retry texts, rejects) carry `schema_version`
from version 2 on; a record without it is version 1 and loads the same way. Keys a record
holds that lemagen does not know (added by a user or a later version) are kept in `extra` and
written back after the known ones, so a record passes through every stage intact.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, TypeAlias

import msgspec

from lemagen.errors import InputError
from lemagen.records.common import (
    JSON,
    PotVerdict,
    Task,
    Verdict,
    check,
    unknown_keys,
    versioned,
    with_extra,
)
from lemagen.records.meta import Meta, Provenance, RetryMeta, read_meta
from lemagen.records.shapes import (
    CorrectionShape,
    OriginalShape,
    ProblemShape,
    RejectShape,
    RetryTextShape,
    SampleShape,
)
from lemagen.records.training import (
    TRAINING_FIELDS,
    TrainingRow,
    read_training,
)

if TYPE_CHECKING:
    from lemagen.records.analysis import Analysis
    from lemagen.records.art import AskerRecord, TrusterRecord

# ---------------------------------------------------------------- problems


class Problem(msgspec.Struct, frozen=True):
    """A problem as lemagen carries it: every later record starts with these fields."""

    id: str
    task: Task
    question: str
    gold: str
    reference: str | None = None  # the gold solution, when the input had one
    # The input's fields lemagen does not use (a dataset's `level`, `type`, `source`, ...),
    # carried unchanged through every stage.
    source: dict[str, Any] = {}
    # sample --gold vote: how the samples' majority gave `gold` ({"votes", "agreement", ...}).
    gold_vote: dict[str, Any] | None = None

    _KEYS: ClassVar[frozenset[str]] = frozenset(
        {"id", "task", "question", "gold", "reference", "source", "gold_vote"}
    )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> Problem:
        return cls.of(check(data, ProblemShape, where))

    @classmethod
    def of(cls, p: ProblemShape) -> Problem:
        return cls(p.id, p.task, p.question, p.gold, p.reference, p.source or {}, p.gold_vote)

    def field(self, name: str) -> Any:
        """A problem field or a carried input field by name (None when it has neither)."""
        if name in ("id", "task", "question", "gold", "reference"):
            return getattr(self, name)
        return self.source.get(name)

    def to_dict(self) -> JSON:
        out: JSON = {"id": self.id, "task": self.task, "question": self.question, "gold": self.gold}
        if self.reference is not None:
            out["reference"] = self.reference
        if self.gold_vote is not None:
            out["gold_vote"] = self.gold_vote
        if self.source:
            out["source"] = self.source
        return out


# ---------------------------------------------------------------- samples and corrections


class Pot(msgspec.Struct, frozen=True):
    """What `lemagen crosscheck` found: the program a coder wrote from the chain of thought,
    what it printed (None when it failed), whether that agrees with the chain of thought's
    answer, and how it was made and run (`meta`: coder model, prompt, usage, sandbox detail)."""

    program: str | None
    answer: str | None
    verdict: PotVerdict
    meta: dict[str, Any] = {}

    KEYS: ClassVar[frozenset[str]] = frozenset(
        {"pot_program", "pot_answer", "pot_verdict", "pot_meta"}
    )

    @classmethod
    def read(cls, s: SampleShape | CorrectionShape) -> Pot | None:
        if s.pot_verdict is None:
            return None
        return cls(s.pot_program, s.pot_answer, s.pot_verdict, s.pot_meta or {})

    def write(self, out: JSON) -> None:
        out["pot_program"] = self.program
        out["pot_answer"] = self.answer
        out["pot_verdict"] = self.verdict
        out["pot_meta"] = self.meta


_SAMPLE_HINT = " (is this `lemagen sample` output?)"


class Sample(msgspec.Struct, frozen=True):
    """One graded chain of thought. Inside a correction (`original`) it has no problem fields,
    and an injected mistake's original has no `sample_id`."""

    problem: Problem | None
    sample_id: str | None
    response: str | None
    steps: tuple[str, ...]
    pred: str | None
    verdict: Verdict
    meta: Meta = msgspec.field(default_factory=Provenance)
    extra: dict[str, Any] = msgspec.field(default_factory=dict)
    thinking: str | None = None  # a reasoning model's thinking, apart from its answer
    pot: Pot | None = None  # written only when set (`lemagen crosscheck`)
    # How `pred` was found (answers.Method), None when nothing was; UNSET (not written) for a
    # sample made before the field existed or without extraction (an injected mistake).
    extracted_by: str | msgspec.UnsetType | None = msgspec.UNSET

    _KEYS: ClassVar[frozenset[str]] = frozenset(
        {"sample_id", "response", "thinking", "steps", "pred", "extracted_by", "verdict", "meta"}
    )
    _ALL_KEYS: ClassVar[frozenset[str]] = _KEYS | Problem._KEYS | Pot.KEYS | {"schema_version"}

    @property
    def id(self) -> str:
        return self.the_problem.id

    @property
    def task(self) -> Task:
        return self.the_problem.task

    @property
    def question(self) -> str:
        return self.the_problem.question

    @property
    def the_problem(self) -> Problem:
        assert self.problem is not None, "an embedded sample has no problem"
        return self.problem

    @property
    def model(self) -> str | None:
        return self.meta.model

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str, *, strict: bool = False) -> Sample:
        """A sample record (`lemagen sample` output). `strict`: every field `correct` needs."""
        hint = _SAMPLE_HINT if strict else ""
        if strict and "sample_id" not in data:
            raise InputError(f"{where}: missing field 'sample_id'{hint}", reason="missing_field")
        s = check(data, SampleShape, where, hint=hint)
        if strict and not s.steps:
            raise InputError(f"{where}: field 'steps' must be a non-empty list", reason="bad_row")
        return cls.of(s, read_meta(s.meta, where), unknown_keys(data, cls._ALL_KEYS))

    @classmethod
    def of(cls, s: SampleShape, meta: Meta, extra: dict[str, Any]) -> Sample:
        """A sample from its checked shape (`from_dict`, and `records.fast`'s one-pass reader)."""
        return cls(
            problem=Problem.of(s),
            sample_id=s.sample_id,
            response=s.response,
            steps=s.steps,
            pred=s.pred,
            verdict=s.verdict,
            meta=meta,
            extra=extra,
            thinking=s.thinking,
            pot=Pot.read(s),
            extracted_by=s.extracted_by,
        )

    @classmethod
    def embedded(cls, data: Mapping[str, Any], where: str) -> Sample:
        """The `original` inside a correction."""
        o = check(data, OriginalShape, where, "original.")
        meta = read_meta(o.meta, where, "original.meta.")
        return cls.original_of(o, meta, unknown_keys(data, cls._KEYS))

    @classmethod
    def original_of(cls, o: OriginalShape, meta: Meta, extra: dict[str, Any]) -> Sample:
        """A correction's `original` from its checked shape."""
        return cls(
            problem=None,
            sample_id=o.sample_id,
            response=o.response,
            steps=o.steps,
            pred=o.pred,
            verdict=o.verdict,
            meta=meta,
            extra=extra,
            thinking=o.thinking,
            extracted_by=o.extracted_by,
        )

    def to_dict(self, *, version: bool = True) -> JSON:
        out: JSON = self.problem.to_dict() if self.problem is not None else {}
        if self.sample_id is not None:
            out["sample_id"] = self.sample_id
        out["response"] = self.response
        if self.thinking is not None:
            out["thinking"] = self.thinking
        out["steps"] = list(self.steps)
        out["pred"] = self.pred
        if self.extracted_by is not msgspec.UNSET:
            out["extracted_by"] = self.extracted_by
        out["verdict"] = self.verdict
        out["meta"] = self.meta.to_dict()
        if self.pot is not None:
            self.pot.write(out)
        with_extra(out, self.extra)
        if version and self.problem is not None:
            versioned(out)
        return out

    def as_original(self) -> Sample:
        """This sample as the `original` of a correction."""
        return msgspec.structs.replace(self, problem=None, pot=None)


class Correction(msgspec.Struct, frozen=True):
    """A corrector's (or `inject`'s) answer for one wrong sample: the incorrect step, why, and
    the corrected steps from `corrected_from` (earlier ones elided with `...` when `elided`)."""

    problem: Problem
    sample_id: str
    correction_id: str
    original: Sample
    response: str
    incorrect_step: int | None
    explanation: str | None
    corrected_from: int | None
    elided: bool
    corrected_steps: tuple[str, ...]
    pred: str | None
    verdict: Verdict
    reject_reason: str | None
    meta: Meta = msgspec.field(default_factory=Provenance)
    extra: dict[str, Any] = msgspec.field(default_factory=dict)
    pot: Pot | None = None  # written only when set (`lemagen crosscheck`)

    _KEYS: ClassVar[frozenset[str]] = (
        frozenset(
            [
                "sample_id",
                "correction_id",
                "original",
                "response",
                "incorrect_step",
                "explanation",
                "corrected_from",
                "elided",
                "corrected_steps",
                "pred",
                "verdict",
                "reject_reason",
                "meta",
                "schema_version",
            ]
        )
        | Problem._KEYS
        | Pot.KEYS
    )

    @property
    def id(self) -> str:
        return self.problem.id

    @property
    def task(self) -> Task:
        return self.problem.task

    @property
    def question(self) -> str:
        return self.problem.question

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> Correction:
        c = check(data, CorrectionShape, where)
        original = Sample.embedded(c.original, where)
        return cls.of(c, original, read_meta(c.meta, where), unknown_keys(data, cls._KEYS))

    @classmethod
    def of(
        cls, c: CorrectionShape, original: Sample, meta: Meta, extra: dict[str, Any]
    ) -> Correction:
        """A correction from its checked shape (`from_dict`, and `records.fast`)."""
        return cls(
            problem=Problem.of(c),
            sample_id=c.sample_id,
            correction_id=c.correction_id,
            original=original,
            response=c.response or "",
            incorrect_step=c.incorrect_step,
            explanation=c.explanation,
            corrected_from=c.corrected_from,
            elided=bool(c.elided),
            corrected_steps=c.corrected_steps,
            pred=c.pred,
            verdict=c.verdict,
            reject_reason=c.reject_reason,
            meta=meta,
            extra=extra,
            pot=Pot.read(c),
        )

    def to_dict(self) -> JSON:
        out = self.problem.to_dict()
        out["sample_id"] = self.sample_id
        out["correction_id"] = self.correction_id
        out["original"] = self.original.to_dict()
        out["response"] = self.response
        out["incorrect_step"] = self.incorrect_step
        out["explanation"] = self.explanation
        out["corrected_from"] = self.corrected_from
        out["elided"] = self.elided
        out["corrected_steps"] = list(self.corrected_steps)
        out["pred"] = self.pred
        out["verdict"] = self.verdict
        out["reject_reason"] = self.reject_reason
        out["meta"] = self.meta.to_dict()
        if self.pot is not None:
            self.pot.write(out)
        with_extra(out, self.extra)
        versioned(out)
        return out

    def full_solution(self) -> list[str]:
        """The whole corrected chain of thought: the original steps before `corrected_from`
        (what the `...` stands for), then the corrected steps. A record whose corrected steps
        start at Step k > 1 without `elided` (written before replies numbered from Step k were
        read as elided) gets its steps 1..k-1 too, never a solution that is only its tail."""
        start = self.corrected_from or 1
        return list(self.original.steps[: start - 1]) + list(self.corrected_steps)


class FailedCall(msgspec.Struct, frozen=True):
    """The record set aside when a model call failed for good: the problem, the model and
    the error."""

    problem: Problem
    model: str
    error: str

    def to_dict(self) -> JSON:
        return {**self.problem.to_dict(), "model": self.model, "error": self.error}


class Evolved(msgspec.Struct, frozen=True):
    """A question `lemagen evolve` wrote from a seed question, with its pseudo-gold answer: a
    problems line `lemagen sample` reads (seed_id, evolved_by and gold_vote travel in
    `source`)."""

    problem: Problem  # its gold_vote says how the votes gave the gold
    seed_id: str
    model: str

    def to_dict(self) -> JSON:
        p = self.problem
        return {
            "id": p.id,
            "task": p.task,
            "question": p.question,
            "gold": p.gold,
            "seed_id": self.seed_id,
            "evolved_by": self.model,
            "gold_vote": p.gold_vote,
        }


# ---------------------------------------------------------------- retry data


class RetryText(msgspec.Struct, frozen=True):
    """A solution with mistakes retracted by a marker (Physics of LMs 2.2), as training text."""

    problem: Problem
    solution: str
    mistakes: tuple[str, ...]
    meta: RetryMeta

    @property
    def text(self) -> str:
        return f"Question: {self.problem.question}\nAnswer: {self.solution}"

    def to_dict(self) -> JSON:
        out = self.problem.to_dict()
        out["text"] = self.text
        out["solution"] = self.solution
        out["retries"] = len(self.mistakes)
        out["mistakes"] = list(self.mistakes)
        out["meta"] = self.meta.to_dict()
        return versioned(out)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> RetryText:
        r = check(data, RetryTextShape, where)
        return cls(Problem.of(r), r.solution, r.mistakes, r.meta)


# ---------------------------------------------------------------- rows set aside


class Reject(msgspec.Struct, frozen=True):
    """A row set aside, as written to `--rejects`: a machine-readable reason, the message,
    where it was read (for bad input rows), and the record itself (None when unreadable)."""

    reason: str
    record: JSON | None
    detail: str | None = None
    where: str | None = None

    def to_dict(self) -> JSON:
        out: JSON = {"reason": self.reason}
        if self.detail:
            out["detail"] = self.detail
        if self.where:
            out["where"] = self.where
        out["record"] = self.record
        versioned(out)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> Reject:
        r = check(data, RejectShape, where)
        return cls(r.reason, r.record, r.detail, r.where)

    def replies(self, where: str) -> list[SetAsideReply]:
        """The model replies set aside with this row (an analyser's, a teacher's or an
        asker's: `REPLY_KEYS`), each with the call's meta, so their usage can be counted.
        Rejects written before replies carried their meta give none."""
        record = self.record
        if not record:
            return []
        question = record.get("question")
        steps = record.get("steps")
        out = []
        for key in REPLY_KEYS:
            holder = record.get(key)
            meta = holder.get("meta") if isinstance(holder, Mapping) else None
            if not isinstance(meta, dict) or not isinstance(question, str):
                continue
            try:
                provenance = Provenance.read(meta, where, f"record.{key}.meta.")
            except InputError:
                continue
            # The analyser was asked about the sample's steps; the teacher and the asker
            # about the problem alone (one asker call serves all its predictions).
            about = steps if key == "analysis" and isinstance(steps, list) else []
            out.append(SetAsideReply(question, tuple(map(str, about)), provenance))
        return out


# Where a set-aside row keeps a model's reply's call meta, as `KEY.meta`: `analyze` and
# `inject --model` beside the reply (`analysis.reply`, `injection.reply`), `art ask` beside
# its `asker_reply`.
REPLY_KEYS = ("analysis", "injection", "asker")


class SetAsideReply(msgspec.Struct, frozen=True):
    """A model reply set aside: the question (and the steps) it was about, and its call's
    meta."""

    question: str
    steps: tuple[str, ...]
    meta: Provenance


# ---------------------------------------------------------------- any record


Record: TypeAlias = Sample | Correction | RetryText | Reject | TrainingRow


def kind_of(data: Mapping[str, Any]) -> str | None:
    """`correction`, `sample`, `reject`, `retry`, `training`, `analysis`, `asker`, `truster`, or
    None: what a record is, from the fields only that kind has."""
    if "first_error_step" in data and "error_type" in data and "original" in data:
        return "analysis"
    if "sub_questions" in data and "answers_all" in data:
        return "asker"
    if "preferred" in data and "initial" in data and "refined" in data:
        return "truster"
    if "correction_id" in data:
        return "correction"
    if "sample_id" in data and "steps" in data:
        return "sample"
    if "reason" in data and "record" in data:
        return "reject"
    if "mistakes" in data and "solution" in data:
        return "retry"
    if any(name in data for name in TRAINING_FIELDS):
        return "training"
    return None


def read_sample_or_correction(data: Mapping[str, Any], where: str) -> Sample | Correction:
    """A sample or a correction record (what filter and export read)."""
    kind = kind_of(data)
    if kind == "correction":
        return Correction.from_dict(data, where)
    if kind == "sample":
        return Sample.from_dict(data, where)
    raise InputError(
        f"{where}: not a sample or correction record (no 'sample_id')", reason="bad_record"
    )


def read_any(
    data: Mapping[str, Any], where: str
) -> Record | Analysis | AskerRecord | TrusterRecord:
    """Any record lemagen writes."""
    kind = kind_of(data)
    # These record types are built on this module's types: imported here, not at the top.
    if kind == "analysis":
        from lemagen.records.analysis import Analysis

        return Analysis.from_dict(data, where)
    if kind == "asker":
        from lemagen.records.art import AskerRecord

        return AskerRecord.from_dict(data, where)
    if kind == "truster":
        from lemagen.records.art import TrusterRecord

        return TrusterRecord.from_dict(data, where)
    if kind in ("correction", "sample"):
        return read_sample_or_correction(data, where)
    if kind == "reject":
        return Reject.from_dict(data, where)
    if kind == "retry":
        return RetryText.from_dict(data, where)
    if kind == "training":
        return read_training(data, where)
    raise InputError(
        f"{where}: not a lemagen record (sample, correction, reject or training row)",
        reason="bad_record",
    )
