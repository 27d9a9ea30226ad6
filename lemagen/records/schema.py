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
from typing import Any, ClassVar, Literal, TypeAlias

from lemagen.errors import InputError

SCHEMA_VERSION = 2
TASKS = ("gsm8k", "math")
VERDICTS = ("correct", "wrong", "no_answer", "timeout")
Task = Literal["gsm8k", "math"]
Verdict = Literal["correct", "wrong", "no_answer", "timeout"]
JSON: TypeAlias = dict[str, Any]


class Fields:
    """Typed access to the fields of one JSON object, with `file:line` errors."""

    __slots__ = ("data", "prefix", "where")

    def __init__(self, data: Mapping[str, Any], where: str, prefix: str = "") -> None:
        self.data = data
        self.where = where
        self.prefix = prefix  # `original.` inside a correction, for the messages

    def fail(self, message: str, reason: str = "bad_row") -> InputError:
        return InputError(f"{self.where}: {message}", reason=reason)

    def missing(self, name: str, hint: str = "") -> InputError:
        return self.fail(f"missing field {self.name(name)}{hint}", "missing_field")

    def name(self, name: str) -> str:
        return repr(self.prefix + name)

    def has(self, name: str) -> bool:
        return name in self.data

    def text(self, name: str, hint: str = "") -> str:
        value = self.data.get(name)
        if isinstance(value, str):
            return value
        if value is None:
            raise self.missing(name, hint)
        raise self.fail(f"field {self.name(name)} must be text, not {_kind(value)}")

    def opt_text(self, name: str) -> str | None:
        value = self.data.get(name)
        if value is None or isinstance(value, str):
            return value
        raise self.fail(f"field {self.name(name)} must be text or null, not {_kind(value)}")

    def opt_int(self, name: str) -> int | None:
        value = self.data.get(name)
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        raise self.fail(
            f"field {self.name(name)} must be a whole number or null, not {_kind(value)}"
        )

    def opt_number(self, name: str) -> float | int | None:
        value = self.data.get(name)
        if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
            return value
        raise self.fail(f"field {self.name(name)} must be a number or null, not {_kind(value)}")

    def flag(self, name: str) -> bool:
        value = self.data.get(name, False)
        if isinstance(value, bool):
            return value
        if value is None:
            return False
        raise self.fail(f"field {self.name(name)} must be true or false, not {_kind(value)}")

    def task(self, name: str = "task", hint: str = "") -> Task:
        value = self.data.get(name)
        if value is None:
            raise self.missing(name, hint)
        if value not in TASKS:
            raise self.fail(f"unknown task {value!r}", "unknown_task")
        return value  # type: ignore[no-any-return]

    def verdict(self, name: str = "verdict", hint: str = "") -> Verdict:
        value = self.data.get(name)
        if value is None:
            raise self.missing(name, hint)
        if value not in VERDICTS:
            raise self.fail(
                f"field {self.name(name)} must be one of {', '.join(VERDICTS)}, not {value!r}"
            )
        return value  # type: ignore[no-any-return]

    def steps(self, name: str, hint: str = "", *, nonempty: bool = False) -> tuple[str, ...]:
        value = self.data.get(name)
        if value is None:
            raise self.missing(name, hint)
        if not isinstance(value, list) or (nonempty and not value):
            kind = "a non-empty list" if nonempty else "a list"
            raise self.fail(f"field {self.name(name)} must be {kind} of texts")
        if not all(isinstance(step, str) for step in value):
            raise self.fail(f"field {self.name(name)} must be a list of texts")
        return tuple(value)

    def object(self, name: str, hint: str = "") -> Fields:
        value = self.data.get(name)
        if value is None:
            raise self.missing(name, hint)
        if not isinstance(value, dict):
            raise self.fail(f"field {self.name(name)} must be an object, not {_kind(value)}")
        return Fields(value, self.where)

    def opt_object(self, name: str) -> Fields | None:
        value = self.data.get(name)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.fail(f"field {self.name(name)} must be an object, not {_kind(value)}")
        return Fields(value, self.where)

    def counts(self, name: str) -> dict[str, int]:
        """An object of non-negative whole numbers (token usage)."""
        value = self.data.get(name)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(f"field {self.name(name)} must be an object, not {_kind(value)}")
        for key, count in value.items():
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise self.fail(
                    f"field {self.prefix}{name}.{key} must be a whole number >= 0, not {count!r}"
                )
        return dict(value)

    def texts(self, name: str) -> dict[str, str]:
        value = self.data.get(name)
        if value is None:
            return {}
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise self.fail(f"field {self.name(name)} must be an object of texts")
        return dict(value)

    def extra(self, known: frozenset[str]) -> dict[str, Any]:
        return {k: v for k, v in self.data.items() if k not in known}


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", bool: "true/false", str: "text"}.get(
        type(value), type(value).__name__
    )


WRITE_VERSION = False


def _versioned(out: JSON) -> JSON:
    if WRITE_VERSION:
        out["schema_version"] = SCHEMA_VERSION
    return out


def _with_extra(out: JSON, extra: Mapping[str, Any]) -> JSON:
    for key, value in extra.items():
        out.setdefault(key, value)
    return out


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


# ---------------------------------------------------------------- provenance (`meta`)


@dataclass(frozen=True, slots=True)
class Provenance:
    """`meta` of a sample or a correction: what produced it, to reproduce and audit it.
    `usage` is that of the request(s) that produced all `choices_in_usage` choices together."""

    stage: str | None = None
    model: str | None = None
    api: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    n: int | None = None
    sample_index: int | None = None
    prompt: str | None = None
    prompt_sha256: str | None = None
    finish_reason: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    requests: int | None = None
    choices_in_usage: int | None = None
    checker: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    _KEYS: ClassVar[frozenset[str]] = frozenset(
        [
            "stage",
            "model",
            "api",
            "temperature",
            "top_p",
            "max_tokens",
            "seed",
            "n",
            "sample_index",
            "prompt",
            "prompt_sha256",
            "finish_reason",
            "usage",
            "requests",
            "choices_in_usage",
            "checker",
        ]
    )

    @classmethod
    def read(cls, f: Fields) -> Provenance:
        return cls(
            stage=f.opt_text("stage"),
            model=f.opt_text("model"),
            api=f.opt_text("api"),
            temperature=f.opt_number("temperature"),
            top_p=f.opt_number("top_p"),
            max_tokens=f.opt_int("max_tokens"),
            seed=f.opt_int("seed"),
            n=f.opt_int("n"),
            sample_index=f.opt_int("sample_index"),
            prompt=f.opt_text("prompt"),
            prompt_sha256=f.opt_text("prompt_sha256"),
            finish_reason=f.opt_text("finish_reason"),
            usage=f.counts("usage"),
            requests=f.opt_int("requests"),
            choices_in_usage=f.opt_int("choices_in_usage"),
            checker=f.texts("checker"),
            extra=f.extra(cls._KEYS),
        )

    def to_dict(self) -> JSON:
        out: JSON = {
            "stage": self.stage,
            "model": self.model,
            "api": self.api,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
            "n": self.n,
            "sample_index": self.sample_index,
            "prompt": self.prompt,
            "prompt_sha256": self.prompt_sha256,
            "finish_reason": self.finish_reason,
            "usage": dict(self.usage),
            "requests": self.requests,
            "choices_in_usage": self.choices_in_usage,
            "checker": dict(self.checker),
        }
        return _with_extra(out, self.extra)


@dataclass(frozen=True, slots=True)
class InjectMeta:
    """`meta` of a mistake made by `lemagen inject` (no model, so no usage)."""

    error_type: str
    seed: int
    checker: dict[str, str]
    stage: str = "inject"
    extra: dict[str, Any] = field(default_factory=dict)

    # What a model's provenance has and a made mistake has not.
    finish_reason: ClassVar[None] = None
    model: ClassVar[None] = None
    usage: ClassVar[Mapping[str, int]] = {}
    choices_in_usage: ClassVar[None] = None

    _KEYS: ClassVar[frozenset[str]] = frozenset({"stage", "error_type", "seed", "checker"})

    @classmethod
    def read(cls, f: Fields) -> InjectMeta:
        seed = f.opt_int("seed")
        return cls(
            error_type=f.text("error_type"),
            seed=0 if seed is None else seed,
            checker=f.texts("checker"),
            extra=f.extra(cls._KEYS),
        )

    def to_dict(self) -> JSON:
        out: JSON = {
            "stage": self.stage,
            "error_type": self.error_type,
            "seed": self.seed,
            "checker": dict(self.checker),
        }
        return _with_extra(out, self.extra)


Meta: TypeAlias = Provenance | InjectMeta


def read_meta(f: Fields | None) -> Meta:
    if f is None:
        return Provenance()
    if f.data.get("stage") == "inject" and "error_type" in f.data:
        return InjectMeta.read(f)
    return Provenance.read(f)


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
        _with_extra(out, self.extra)
        if version and self.problem is not None:
            _versioned(out)
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
        _with_extra(out, self.extra)
        _versioned(out)
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
class RetryMeta:
    retry_rate: float
    fake: bool
    marker: str
    seed: int

    def to_dict(self) -> JSON:
        return {
            "stage": "inject",
            "format": "retry",
            "retry_rate": self.retry_rate,
            "fake": self.fake,
            "marker": self.marker,
            "seed": self.seed,
        }


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
        return _versioned(out)

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
        _versioned(out)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> Reject:
        f = Fields(data, where)
        record = data.get("record")
        if record is not None and not isinstance(record, dict):
            raise f.fail("field 'record' must be an object or null")
        return cls(f.text("reason"), record, f.opt_text("detail"), f.opt_text("where"))


# ---------------------------------------------------------------- training rows


@dataclass(frozen=True, slots=True)
class PromptCompletion:
    """LEMA's (and TRL's standard) `{"prompt", "completion"}` row; `filter --with-meta` adds
    the problem id and the kind (correction or cot)."""

    prompt: str
    completion: str
    id: str | None = None
    kind: str | None = None

    def to_dict(self) -> JSON:
        out: JSON = {"prompt": self.prompt, "completion": self.completion}
        if self.id is not None:
            out["id"] = self.id
            out["kind"] = self.kind
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> PromptCompletion:
        f = Fields(data, where)
        return cls(f.text("prompt"), f.text("completion"), f.opt_text("id"), f.opt_text("kind"))


@dataclass(frozen=True, slots=True)
class Alpaca:
    """LLaMA-Factory's alpaca row."""

    instruction: str
    output: str
    input: str = ""

    def to_dict(self) -> JSON:
        return {"instruction": self.instruction, "input": self.input, "output": self.output}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> Alpaca:
        f = Fields(data, where)
        return cls(f.text("instruction"), f.text("output"), f.opt_text("input") or "")


@dataclass(frozen=True, slots=True)
class Conversation:
    """One user turn and one assistant turn, as ShareGPT (`conversations` of from/value) or as
    chat `messages` (OpenAI fine-tuning, TRL conversational)."""

    user: str
    assistant: str
    sharegpt: bool = False

    def to_dict(self) -> JSON:
        if self.sharegpt:
            return {
                "conversations": [
                    {"from": "human", "value": self.user},
                    {"from": "gpt", "value": self.assistant},
                ]
            }
        return {
            "messages": [
                {"role": "user", "content": self.user},
                {"role": "assistant", "content": self.assistant},
            ]
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> Conversation:
        f = Fields(data, where)
        sharegpt = "conversations" in data
        turns = data.get("conversations" if sharegpt else "messages")
        text = "value" if sharegpt else "content"
        if (
            not isinstance(turns, list)
            or len(turns) != 2
            or not all(isinstance(t, dict) and isinstance(t.get(text), str) for t in turns)
        ):
            raise f.fail("expected two turns, each an object with text")
        return cls(turns[0][text], turns[1][text], sharegpt)


@dataclass(frozen=True, slots=True)
class Preference:
    """A preference pair: TRL's `{"prompt", "chosen", "rejected"}` (DPO, CPO/SimPO), or with
    `openai` OpenAI's DPO shape."""

    prompt: str
    chosen: str
    rejected: str
    openai: bool = False

    def to_dict(self) -> JSON:
        if not self.openai:
            return {"prompt": self.prompt, "chosen": self.chosen, "rejected": self.rejected}
        return {
            "input": {"messages": [{"role": "user", "content": self.prompt}]},
            "preferred_output": [{"role": "assistant", "content": self.chosen}],
            "non_preferred_output": [{"role": "assistant", "content": self.rejected}],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> Preference:
        f = Fields(data, where)
        if "input" not in data:
            return cls(f.text("prompt"), f.text("chosen"), f.text("rejected"))
        try:
            return cls(
                data["input"]["messages"][0]["content"],
                data["preferred_output"][0]["content"],
                data["non_preferred_output"][0]["content"],
                openai=True,
            )
        except (KeyError, IndexError, TypeError):
            raise f.fail("not an OpenAI DPO row") from None


TrainingRow: TypeAlias = PromptCompletion | Alpaca | Conversation | Preference
TRAINING_FIELDS = ("prompt", "messages", "instruction", "conversations", "input")


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


def read_training(data: Mapping[str, Any], where: str) -> TrainingRow:
    if "instruction" in data:
        return Alpaca.from_dict(data, where)
    if "conversations" in data or "messages" in data:
        return Conversation.from_dict(data, where)
    if "chosen" in data or "preferred_output" in data:
        return Preference.from_dict(data, where)
    return PromptCompletion.from_dict(data, where)


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
