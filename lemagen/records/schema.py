"""Every record lemagen reads or writes, each declared once as a `Shape` (`records.shape`): a
frozen msgspec Struct whose fields are its JSON keys in the order written (docs/records.md).
Reading (`from_dict(data, "file:line")`, a bad field is one `InputError` naming the place),
writing (`to_dict()`) and the one-pass reading of `records.fast` derive from it.
Nothing outside this package indexes a record dict by a field name.

The records written on their own line (samples, corrections, analyses, ART records, retry
texts, rejects) state their `kind` first and `schema_version` last (from version 3; version 2
wrote no `kind`, version 1 no `schema_version`, and both still load: their kind is known from
their keys, `shape.record_kind`). Keys a record holds that lemagen does not know (added by a user
or a later version) are kept in `extra` and written back after the known ones, so a record
passes through every stage intact.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from typing import Any, ClassVar, TypeAlias

import msgspec

from lemagen.errors import InputError
from lemagen.records.common import JSON, PotVerdict, Task, Verdict
from lemagen.records.meta import Provenance, RetryMeta
from lemagen.records.shape import TAG, OrNull, Shape, Version, WhenSet
from lemagen.records.training import TrainingRow
from lemagen.terms import Reason

# ---------------------------------------------------------------- problems


class ProblemFields(Shape, frozen=True, kw_only=True):
    """A problem's fields: every record about a problem starts with them."""

    id: str
    task: Task
    question: str
    gold: str
    reference: WhenSet[str | None] = None  # the gold solution, when the input had one
    # sample --gold vote: how the samples' majority gave `gold` ({"votes", "agreement", ...}).
    gold_vote: WhenSet[dict[str, Any] | None] = None
    # The input's fields lemagen does not use (a dataset's `level`, `type`, `source`, ...),
    # carried unchanged through every stage.
    source: WhenSet[OrNull[dict[str, Any]]] = msgspec.field(default_factory=dict)

    def field(self, name: str) -> Any:
        """A problem field or a carried input field by name (None when it has neither)."""
        if name in ("id", "task", "question", "gold", "reference"):
            return getattr(self, name)
        return self.source.get(name)

    def parts(self) -> dict[str, Any]:
        """The problem's fields, to start another record with (`Sample(**p.parts(), ...)`)."""
        return dict(zip(PROBLEM_FIELDS, _problem_values(self), strict=True))


class Problem(ProblemFields, frozen=True, kw_only=True):
    """A problem as lemagen carries it."""


PROBLEM_FIELDS = tuple(f.name for f in msgspec.structs.fields(ProblemFields) if f.name != "extra")
_problem_values = operator.attrgetter(*PROBLEM_FIELDS)


class ProblemRecord(ProblemFields, frozen=True, kw_only=True, tag_field=TAG):
    """A record about one problem, written on its own line: its kind, the problem's fields,
    its own, its unknown keys, `schema_version`."""

    schema_version: Version = msgspec.UNSET

    @property
    def problem(self) -> Problem:
        return Problem(**self.parts())


# ---------------------------------------------------------------- samples and corrections


class Pot(msgspec.Struct, frozen=True):
    """What `lemagen crosscheck` found: the program a coder wrote from the chain of thought,
    what it printed (None when it failed), whether that agrees with the chain of thought's
    answer, and how it was made and run (`meta`: coder model, prompt, usage, sandbox detail).
    A sample or a correction holds it as its `pot_*` fields, written only when it was checked."""

    program: str | None
    answer: str | None
    verdict: PotVerdict
    meta: dict[str, Any] = {}

    def fields(self) -> dict[str, Any]:
        """The record fields that hold it (`msgspec.structs.replace(record, **pot.fields())`)."""
        return {
            "pot_program": self.program,
            "pot_answer": self.answer,
            "pot_verdict": self.verdict,
            "pot_meta": self.meta,
        }


def _pot(record: Sample | Correction) -> Pot | None:
    verdict = record.pot_verdict
    if verdict is None or isinstance(verdict, msgspec.UnsetType):
        return None
    program, answer, meta = record.pot_program, record.pot_answer, record.pot_meta
    return Pot(
        program if isinstance(program, str) else None,
        answer if isinstance(answer, str) else None,
        verdict,
        meta if isinstance(meta, dict) else {},
    )


_SAMPLE_HINT = " (is this `lemagen sample` output?)"


class Original(Shape, frozen=True, kw_only=True):
    """The sample a correction (or an analysis) is about, inside it (`original`): a sample's
    own fields, without the problem's. An injected mistake's original has no `sample_id`."""

    sample_id: WhenSet[str | None] = None
    response: str | None = None
    thinking: WhenSet[str | None] = None
    steps: tuple[str, ...]
    pred: str | None = None
    extracted_by: str | msgspec.UnsetType | None = msgspec.UNSET
    verdict: Verdict = "wrong"
    meta: OrNull[Provenance] = msgspec.field(default_factory=Provenance)


class Sample(ProblemRecord, frozen=True, kw_only=True, tag="sample"):
    """One graded chain of thought."""

    sample_id: str
    response: str | None = None  # the model's text (a reasoning model's answer part)
    thinking: WhenSet[str | None] = None  # a reasoning model's thinking, apart from its answer
    steps: tuple[str, ...]
    pred: str | None = None
    # How `pred` was found (answers.Method), None when nothing was; UNSET (not written) for a
    # sample made before the field existed.
    extracted_by: str | msgspec.UnsetType | None = msgspec.UNSET
    verdict: Verdict
    meta: OrNull[Provenance] = msgspec.field(default_factory=Provenance)
    # Written by `lemagen crosscheck` (`pot`), all four or none:
    pot_program: str | msgspec.UnsetType | None = msgspec.UNSET
    pot_answer: str | msgspec.UnsetType | None = msgspec.UNSET
    pot_verdict: PotVerdict | msgspec.UnsetType | None = msgspec.UNSET
    pot_meta: dict[str, Any] | msgspec.UnsetType | None = msgspec.UNSET

    @property
    def model(self) -> str | None:
        return self.meta.model

    @property
    def pot(self) -> Pot | None:
        return _pot(self)

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        where: str,
        *,
        prefix: str = "",
        hint: str = "",
        strict: bool = False,
    ) -> Sample:
        """A sample record (`lemagen sample` output). `strict`: every field `correct` needs."""
        hint = _SAMPLE_HINT if strict else hint
        if strict and "sample_id" not in data:
            raise InputError(f"{where}: missing field 'sample_id'{hint}", reason="missing_field")
        s = super().from_dict(data, where, prefix=prefix, hint=hint)
        if strict and not s.steps:
            raise InputError(f"{where}: field 'steps' must be a non-empty list", reason="bad_row")
        return s

    def as_original(self) -> Original:
        """This sample as the `original` of a correction (its unknown keys travel with it)."""
        return Original(**{name: getattr(self, name) for name in ORIGINAL_FIELDS})


ORIGINAL_FIELDS = tuple(f.name for f in msgspec.structs.fields(Original))


class Correction(ProblemRecord, frozen=True, kw_only=True, tag="correction"):
    """A corrector's (or `inject`'s) answer for one wrong sample: the incorrect step, why, and
    the corrected steps from `corrected_from` (earlier ones elided with `...` when `elided`)."""

    sample_id: str
    correction_id: str
    original: Original
    response: OrNull[str] = ""
    # Required (null only in a correction whose reply could not be read, with its
    # reject_reason): a record without it would be read as "no step" and dropped downstream.
    incorrect_step: int | None
    explanation: str | None = None
    corrected_from: int | None = None
    elided: OrNull[bool] = False
    corrected_steps: tuple[str, ...]
    pred: str | None = None
    verdict: Verdict
    reject_reason: str | None = None
    meta: OrNull[Provenance] = msgspec.field(default_factory=Provenance)
    # Written by `lemagen crosscheck` (`pot`), all four or none:
    pot_program: str | msgspec.UnsetType | None = msgspec.UNSET
    pot_answer: str | msgspec.UnsetType | None = msgspec.UNSET
    pot_verdict: PotVerdict | msgspec.UnsetType | None = msgspec.UNSET
    pot_meta: dict[str, Any] | msgspec.UnsetType | None = msgspec.UNSET

    @property
    def pot(self) -> Pot | None:
        return _pot(self)

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


class RetryText(ProblemRecord, frozen=True, kw_only=True, tag="retry"):
    """A solution with mistakes retracted by a marker (Physics of LMs 2.2), as training text:
    `text` is the question and the solution (`RetryText.of` makes it)."""

    text: str
    solution: str
    retries: int
    mistakes: tuple[str, ...]
    meta: RetryMeta

    @classmethod
    def of(
        cls, problem: Problem, solution: str, mistakes: tuple[str, ...], meta: RetryMeta
    ) -> RetryText:
        return cls(
            **problem.parts(),
            text=f"Question: {problem.question}\nAnswer: {solution}",
            solution=solution,
            retries=len(mistakes),
            mistakes=mistakes,
            meta=meta,
        )


# ---------------------------------------------------------------- rows set aside


class Reject(Shape, frozen=True, kw_only=True, tag_field=TAG, tag="reject"):
    """A row set aside, as written to `--rejects`: a machine-readable reason, the message,
    where it was read (for bad input rows), and the record itself (None when unreadable)."""

    reason: Reason
    detail: WhenSet[str | None] = None
    where: WhenSet[str | None] = None
    record: JSON | None = None
    schema_version: Version = msgspec.UNSET

    # Where a set-aside row keeps a model's reply's call meta, as `KEY.meta`: `analyze` and
    # `inject --model` beside the reply (`analysis.reply`, `injection.reply`), `art ask`
    # beside its `asker_reply`.
    REPLY_KEYS: ClassVar[tuple[str, ...]] = ("analysis", "injection", "asker")

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
        for key in self.REPLY_KEYS:
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


class SetAsideReply(msgspec.Struct, frozen=True):
    """A model reply set aside: the question (and the steps) it was about, and its call's
    meta."""

    question: str
    steps: tuple[str, ...]
    meta: Provenance


# ---------------------------------------------------------------- any record


Record: TypeAlias = Sample | Correction | RetryText | Reject | TrainingRow
