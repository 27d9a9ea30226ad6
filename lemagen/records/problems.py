"""Recognise problem records (GSM8K, MATH, MATH-500, any JSONL) and read their gold answers.

Input rows become `Problem` records (`lemagen.records.schema`); every later record starts with
the problem's fields and never renames them.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

import msgspec

from lemagen.errors import InputError, LemagenError
from lemagen.math import answers
from lemagen.records import TASKS, Problem

_BARE_MAX = 80  # a longer gold text without a marker is a solution whose answer we cannot find
_PLAIN_NUMBER = re.compile(r"\s*-?[\d,]*\.?\d+\s*")
_ANSWER_IS = re.compile(r"answer is", re.IGNORECASE)
_LONG_NUMBER = re.compile(rf"\d{{{answers.MAX_DIGITS + 1}}}")


@dataclass
class ProblemReader:
    """Turns input records into problem records; the task is fixed by the first usable record."""

    task: str | None = None
    question_field: str | None = None
    answer_field: str | None = None
    require_question: bool = True
    id_field: str | None = None
    gold_optional: bool = False  # sample --gold vote: a problem may come without an answer
    _fields_seen: dict[str, str] = field(default_factory=dict)

    def read(self, record: dict[str, Any], where: str) -> Problem:
        record_task = record.get("task")
        if record_task is not None and record_task not in TASKS:
            raise InputError(
                f"{where}: unknown task {record_task!r} (expected gsm8k or math)",
                reason="unknown_task",
            )
        qfield = self.question_field or _first_present(record, ("question", "problem"))
        question = record.get(qfield) if qfield else None
        needs_question = self.require_question or qfield is not None
        if needs_question and (not isinstance(question, str) or not question.strip()):
            name = self.question_field or "question"
            raise InputError(f"{where}: missing field {name!r}", reason="missing_field")
        afield = self.answer_field or _first_present(record, ("gold", "answer", "solution"))
        if afield is None or record.get(afield) in (None, ""):
            name = self.answer_field or "answer"
            if self.gold_optional and isinstance(question, str):
                return self._without_gold(record, question, record_task, where, name)
            raise InputError(f"{where}: missing field {name!r}", reason="missing_field")
        raw = record[afield]
        if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
            raise InputError(f"{where}: field {afield!r} is not text", reason="bad_gold")
        raw_text = str(raw)
        task = record_task or self.task or detect_task(raw_text, bare=afield == "gold")
        if self.task is None:
            self.task = task
        gold = read_gold(task, raw_text, bare=afield == "gold")
        if gold is None:
            why = ""
            if task == "gsm8k" and _LONG_NUMBER.search(raw_text):
                why = f" (a number of more than {answers.MAX_DIGITS} digits)"
            raise InputError(
                f"{where}: cannot read a {task} gold answer from field {afield!r}{why}",
                reason="bad_gold",
            )
        used = {qfield, afield, "task", self.id_field or "id"}
        return Problem(
            id=self._id(record, question, raw_text, where),
            task=task,  # type: ignore[arg-type]
            question=question if isinstance(question, str) else "",
            gold=gold,
            reference=raw_text if afield != "gold" and gold != raw_text.strip() else None,
            source={k: v for k, v in record.items() if k not in used},
        )

    def _without_gold(
        self, record: dict[str, Any], question: str, task: Any, where: str, field: str
    ) -> Problem:
        """A problem whose gold answer the samples' majority will give (empty `gold`)."""
        task = task or self.task
        if task is None:
            raise InputError(
                f"{where}: missing field {field!r} (give --task to vote a gold answer)",
                reason="missing_field",
            )
        qfield = self.question_field or _first_present(record, ("question", "problem"))
        used = {qfield, field, "task", self.id_field or "id"}
        return Problem(
            id=self._id(record, question, "", where),
            task=task,
            question=question,
            gold="",
            source={k: v for k, v in record.items() if k not in used},
        )

    def _id(self, record: dict[str, Any], question: Any, raw: str, where: str) -> str:
        """The input's id (`id`, or --id-field), else a hash of the question and answer."""
        given = record.get(self.id_field or "id")
        if isinstance(given, (str, int)) and not isinstance(given, bool) and str(given):
            return str(given)
        if self.id_field is not None:
            raise InputError(
                f"{where}: missing field {self.id_field!r} (--id-field)", reason="missing_field"
            )
        digest = hashlib.sha256(f"{question}\x1f{raw}".encode()).hexdigest()
        return digest[:16]


def question_of(record: dict[str, Any], where: str) -> str:
    """The question of a record of any dataset (field `question` or `problem`), e.g. a test
    set's."""
    text = record.get("question", record.get("problem"))
    if not isinstance(text, str):
        raise LemagenError(f"{where}: no 'question' or 'problem' field")
    return text


def _first_present(record: dict[str, Any], names: tuple[str, ...]) -> str | None:
    for name in names:
        if record.get(name) not in (None, ""):
            return name
    return None


def detect_task(raw: str, *, bare: bool = False) -> str:
    """`gsm8k` for a `####` rationale, a plain solution ending `The answer is 12.` or a bare
    number; `math` for `\\boxed{}` / LaTeX."""
    if not bare and "####" in raw:
        return "gsm8k"
    if "\\boxed" in raw or "The answer is:" in raw or "\\" in raw:
        return "math"
    if not bare and _ANSWER_IS.search(raw) and answers.extract_gsm8k(raw) is not None:
        return "gsm8k"
    return "gsm8k" if _PLAIN_NUMBER.fullmatch(raw) else "math"


def read_gold(task: str, raw: str, *, bare: bool = False) -> str | None:
    """The gold final answer in `raw` (a full solution or a bare value), or None."""
    text = raw.strip()
    if not text:
        return None
    if task == "gsm8k":
        if not bare and "####" in text:
            return answers.gsm8k_gold(text)
        if not bare and (_ANSWER_IS.search(text) or "\\boxed" in text):
            found = answers.extract_gsm8k(text)  # a plain solution ending `The answer is 12.`
            return None if found is None or answers.too_long(found) else found
        if _PLAIN_NUMBER.fullmatch(text) or (len(text) <= _BARE_MAX and "\n" not in text):
            value = answers.parse_number(text)
            return answers.format_number(value) if value is not None else None
        return None
    if not bare and ("\\boxed" in text or "\\fbox" in text or "The answer is:" in text):
        return answers.math_gold(text)
    if not bare and _ANSWER_IS.search(text):
        return answers.extract_math(text)
    if len(text) <= _BARE_MAX and "\n" not in text:
        stripped = text.strip("$ ").strip()
        return stripped or None
    return None


class Graded(msgspec.Struct, frozen=True):
    """A record of any shape labelled by `lemagen grade`: the input, then `pred`,
    `extracted_by` and `verdict`."""

    source: dict[str, Any]
    pred: str | None
    verdict: str
    extracted_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.source,
            "pred": self.pred,
            "extracted_by": self.extracted_by,
            "verdict": self.verdict,
        }


class GradeInput(msgspec.Struct, frozen=True):
    """A record to grade: the model output in `response_field`, and its problem's gold."""

    source: dict[str, Any]
    problem: Problem
    response: str

    @classmethod
    def read(
        cls, record: dict[str, Any], where: str, reader: ProblemReader, response_field: str
    ) -> GradeInput:
        problem = reader.read(record, where)
        response = record.get(response_field)
        if not isinstance(response, str):
            raise InputError(f"{where}: missing field {response_field!r}", reason="missing_field")
        return cls(record, problem, response)

    def graded(self, pred: str | None, verdict: str, extracted_by: str | None = None) -> Graded:
        return Graded(self.source, pred, verdict, extracted_by)
