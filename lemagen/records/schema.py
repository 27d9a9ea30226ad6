"""Every record lemagen reads or writes, defined once.

Each type is a frozen dataclass with `from_dict(data, where)`, which checks every field and
raises a one-line `InputError` naming `where` (`file:line`), and `to_dict()`, which writes the
JSON shape documented in the README (keys in a fixed order). Nothing outside this package
indexes a record dict by a field name.

The intermediate records (samples, corrections, retry texts, rejects) carry `schema_version`
from version 2 on; a record without it is version 1 and loads the same way. Keys a record
holds that lemagen does not know (added by a user or a later version) are kept in `extra` and
written back after the known ones, so a record passes through every stage intact.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeAlias

from lemagen.errors import InputError
from lemagen.records.fields import (
    JSON,
    SCHEMA_VERSION,
    TASKS,
    VERDICTS,
    Fields,
    Task,
    Verdict,
    versioned,
    with_extra,
)
from lemagen.records.meta import InjectMeta, Meta, Provenance, RetryMeta, read_meta
from lemagen.records.training import (
    TRAINING_FIELDS,
    Alpaca,
    Conversation,
    Preference,
    PromptCompletion,
    TrainingRow,
    read_training,
)

__all__ = [
    "JSON",
    "SCHEMA_VERSION",
    "TASKS",
    "VERDICTS",
    "Alpaca",
    "Conversation",
    "Correction",
    "FailedCall",
    "Fields",
    "InjectMeta",
    "Meta",
    "Preference",
    "Problem",
    "PromptCompletion",
    "Provenance",
    "Record",
    "Reject",
    "RetryMeta",
    "RetryText",
    "Sample",
    "Task",
    "TrainingRow",
    "Verdict",
    "kind_of",
    "read_any",
    "read_sample_or_correction",
]

# ---------------------------------------------------------------- problems


@dataclass(frozen=True, slots=True)
class Problem:
    """A problem as lemagen carries it: every later record starts with these fields."""

    id: str
    task: Task
    question: str
    gold: str
    reference: str | None = None  # the gold solution, when the input had one

    _KEYS: ClassVar[frozenset[str]] = frozenset({"id", "task", "question", "gold", "reference"})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str, hint: str = "") -> Problem:
        f = Fields(data, where)
        return cls._read(f, hint)

    @classmethod
    def _read(cls, f: Fields, hint: str = "") -> Problem:
        return cls(
            id=f.text("id", hint),
            task=f.task("task", hint),
            question=f.text("question", hint),
            gold=f.text("gold", hint),
            reference=f.opt_text("reference"),
        )

    def to_dict(self) -> JSON:
        out: JSON = {"id": self.id, "task": self.task, "question": self.question, "gold": self.gold}
        if self.reference is not None:
            out["reference"] = self.reference
        return out


# ---------------------------------------------------------------- samples and corrections

_SAMPLE_HINT = " (is this `lemagen sample` output?)"


@dataclass(frozen=True, slots=True)
class Sample:
    """One graded chain of thought. Inside a correction (`original`) it has no problem fields,
    and an injected mistake's original has no `sample_id`."""

    problem: Problem | None
    sample_id: str | None
    response: str | None
    steps: tuple[str, ...]
    pred: str | None
    verdict: Verdict
    meta: Meta = field(default_factory=Provenance)
    extra: dict[str, Any] = field(default_factory=dict)

    _KEYS: ClassVar[frozenset[str]] = frozenset(
        {"sample_id", "response", "steps", "pred", "verdict", "meta"}
    )
    _ALL_KEYS: ClassVar[frozenset[str]] = _KEYS | Problem._KEYS | {"schema_version"}

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
        f = Fields(data, where)
        hint = _SAMPLE_HINT if strict else ""
        sample_id = f.text("sample_id", hint)
        problem = Problem._read(f, hint)
        steps = f.steps("steps", hint, nonempty=strict)
        return cls(
            problem=problem,
            sample_id=sample_id,
            response=f.opt_text("response"),
            steps=steps,
            pred=f.opt_text("pred"),
            verdict=f.verdict("verdict", hint),
            meta=read_meta(f.opt_object("meta")),
            extra=f.extra(cls._ALL_KEYS),
        )

    @classmethod
    def embedded(cls, f: Fields) -> Sample:
        """The `original` inside a correction."""
        return cls(
            problem=None,
            sample_id=f.opt_text("sample_id"),
            response=f.opt_text("response"),
            steps=f.steps("steps"),
            pred=f.opt_text("pred"),
            verdict=f.verdict() if f.has("verdict") else "wrong",
            meta=read_meta(f.opt_object("meta")),
            extra=f.extra(cls._KEYS),
        )

    def to_dict(self, *, version: bool = True) -> JSON:
        out: JSON = self.problem.to_dict() if self.problem is not None else {}
        if self.sample_id is not None:
            out["sample_id"] = self.sample_id
        out["response"] = self.response
        out["steps"] = list(self.steps)
        out["pred"] = self.pred
        out["verdict"] = self.verdict
        out["meta"] = self.meta.to_dict()
        with_extra(out, self.extra)
        if version and self.problem is not None:
            versioned(out)
        return out

    def as_original(self) -> Sample:
        """This sample as the `original` of a correction."""
        return Sample(
            None, self.sample_id, self.response, self.steps, self.pred, self.verdict, self.meta,
            self.extra,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Correction:
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
    meta: Meta = field(default_factory=Provenance)
    extra: dict[str, Any] = field(default_factory=dict)

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
        f = Fields(data, where)
        return cls(
            problem=Problem._read(f),
            sample_id=f.text("sample_id"),
            correction_id=f.text("correction_id"),
            original=Sample.embedded(f.object("original")),
            response=f.opt_text("response") or "",
            incorrect_step=f.opt_int("incorrect_step"),
            explanation=f.opt_text("explanation"),
            corrected_from=f.opt_int("corrected_from"),
            elided=f.flag("elided"),
            corrected_steps=f.steps("corrected_steps"),
            pred=f.opt_text("pred"),
            verdict=f.verdict(),
            reject_reason=f.opt_text("reject_reason"),
            meta=read_meta(f.opt_object("meta")),
            extra=f.extra(cls._KEYS),
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
        with_extra(out, self.extra)
        versioned(out)
        return out

    def full_solution(self) -> list[str]:
        """The whole corrected chain of thought: the original steps the `...` stands for, then
        the corrected steps."""
        if not self.elided or self.corrected_from is None:
            return list(self.corrected_steps)
        return list(self.original.steps[: self.corrected_from - 1]) + list(self.corrected_steps)


@dataclass(frozen=True, slots=True)
class FailedCall:
    """The record set aside when a model call failed for good: the problem, the model and
    the error."""

    problem: Problem
    model: str
    error: str

    def to_dict(self) -> JSON:
        return {**self.problem.to_dict(), "model": self.model, "error": self.error}


# ---------------------------------------------------------------- retry data


@dataclass(frozen=True, slots=True)
class RetryText:
    """A solution with mistakes retracted by a marker (Physics of LMs 2.2), as training text."""

    problem: Problem
    solution: str
    mistakes: tuple[str, ...]
    meta: RetryMeta

    @property
    def text(self) -> str:
        return f"Question: {self.problem.question}\nAnswer: {self.solution}"

    def to_dict(self) -> JSON:
        p = self.problem
        out: JSON = {
            "id": p.id,
            "task": p.task,
            "question": p.question,
            "gold": p.gold,
            "text": self.text,
            "solution": self.solution,
            "retries": len(self.mistakes),
            "mistakes": list(self.mistakes),
            "meta": self.meta.to_dict(),
        }
        return versioned(out)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> RetryText:
        f = Fields(data, where)
        meta = f.object("meta")
        return cls(
            problem=Problem(f.text("id"), f.task(), f.text("question"), f.text("gold")),
            solution=f.text("solution"),
            mistakes=f.steps("mistakes"),
            meta=RetryMeta(
                retry_rate=float(meta.opt_number("retry_rate") or 0.0),
                fake=meta.flag("fake"),
                marker=meta.text("marker"),
                seed=meta.opt_int("seed") or 0,
            ),
        )


# ---------------------------------------------------------------- rows set aside


@dataclass(frozen=True, slots=True)
class Reject:
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
        f = Fields(data, where)
        record = data.get("record")
        if record is not None and not isinstance(record, dict):
            raise f.fail("field 'record' must be an object or null")
        return cls(f.text("reason"), record, f.opt_text("detail"), f.opt_text("where"))


# ---------------------------------------------------------------- any record


Record: TypeAlias = Sample | Correction | RetryText | Reject | TrainingRow


def kind_of(data: Mapping[str, Any]) -> str | None:
    """`correction`, `sample`, `reject`, `retry`, `training`, or None: what a record is, from
    the fields only that kind has."""
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


def read_any(data: Mapping[str, Any], where: str) -> Record:
    """Any record lemagen writes."""
    kind = kind_of(data)
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
