"""The JSON shape of each record, checked in C by msgspec.

A record type's `from_dict` converts the decoded line to its shape here (`check`), which
type-checks every field at once and is several times faster than checking field by field in
Python (benchmarks/bench_stages.py); a mismatch becomes one `file:line` error in lemagen's words.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, TypeVar

import msgspec

from lemagen.errors import InputError
from lemagen.records.common import Task, Verdict

Count = Annotated[int, msgspec.Meta(ge=0)]
Number = int | float  # kept as given: msgspec would turn 1 into 1.0 for `float`

S = TypeVar("S", bound=msgspec.Struct)


class ProblemShape(msgspec.Struct, kw_only=True):
    id: str
    task: Task
    question: str
    gold: str
    reference: str | None = None


class ProvenanceShape(msgspec.Struct, kw_only=True):
    stage: str | None = None
    model: str | None = None
    api: str | None = None
    temperature: Number | None = None
    top_p: Number | None = None
    max_tokens: int | None = None
    seed: int | None = None
    n: int | None = None
    sample_index: int | None = None
    prompt: str | None = None
    prompt_sha256: str | None = None
    finish_reason: str | None = None
    usage: dict[str, Count] | None = None
    requests: int | None = None
    choices_in_usage: int | None = None
    checker: dict[str, str] | None = None


class InjectMetaShape(msgspec.Struct, kw_only=True):
    error_type: str
    seed: int | None = None
    checker: dict[str, str] | None = None


class OriginalShape(msgspec.Struct, kw_only=True):
    sample_id: str | None = None
    response: str | None = None
    steps: tuple[str, ...]
    pred: str | None = None
    extracted_by: str | msgspec.UnsetType | None = msgspec.UNSET
    verdict: Verdict = "wrong"
    meta: dict[str, Any] | None = None


class SampleShape(ProblemShape, kw_only=True):
    sample_id: str
    response: str | None = None
    steps: tuple[str, ...]
    pred: str | None = None
    extracted_by: str | msgspec.UnsetType | None = msgspec.UNSET
    verdict: Verdict
    meta: dict[str, Any] | None = None


class CorrectionShape(ProblemShape, kw_only=True):
    sample_id: str
    correction_id: str
    original: dict[str, Any]
    response: str | None = None
    incorrect_step: int | None = None
    explanation: str | None = None
    corrected_from: int | None = None
    elided: bool | None = None
    corrected_steps: tuple[str, ...]
    pred: str | None = None
    verdict: Verdict
    reject_reason: str | None = None
    meta: dict[str, Any] | None = None


class RetryMetaShape(msgspec.Struct, kw_only=True):
    retry_rate: Number | None = None
    fake: bool = False
    marker: str
    seed: int | None = None


class RetryTextShape(msgspec.Struct, kw_only=True):
    id: str
    task: Task
    question: str
    gold: str
    solution: str
    mistakes: tuple[str, ...]
    meta: RetryMetaShape


class RejectShape(msgspec.Struct, kw_only=True):
    reason: str
    detail: str | None = None
    where: str | None = None
    record: dict[str, Any] | None = None


class PromptCompletionShape(msgspec.Struct, kw_only=True):
    prompt: str
    completion: str
    id: str | None = None
    kind: str | None = None


class AlpacaShape(msgspec.Struct, kw_only=True):
    instruction: str
    input: str = ""
    output: str


class PreferenceShape(msgspec.Struct, kw_only=True):
    prompt: str
    chosen: str
    rejected: str


_TYPE_WORDS = {
    "str": "text",
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "array": "a list",
    "object": "an object",
    "null": "null",
}
_EXPECTED = re.compile(r"Expected `(.+?)`(?:, got `(.+?)`)?(.*?) - at `\$(.*)`")
_MISSING = re.compile(r"Object missing required field `(.+?)`(?: - at `\$(.*)`)?")
_ENUM = re.compile(r"Invalid enum value (.+?) - at `\$(.*)`")


def _path(prefix: str, at: str) -> str:
    """`$.meta.usage.prompt_tokens` -> `meta.usage.prompt_tokens` (under `prefix`)."""
    return prefix + re.sub(r"^\.", "", at)


def _words(types: str, *, got: bool = False) -> str:
    words = {**_TYPE_WORDS, "bool": "true/false"} if got else _TYPE_WORDS
    return " or ".join(words.get(t.strip(), t.strip()) for t in types.split("|"))


def input_error(exc: msgspec.ValidationError, where: str, prefix: str, hint: str) -> InputError:
    """A msgspec validation error as lemagen's one-line `file:line` message and reason."""
    text = str(exc)
    missing = _MISSING.fullmatch(text)
    if missing:
        name = _path(prefix, f"{missing.group(2) or ''}.{missing.group(1)}")
        return InputError(f"{where}: missing field {name!r}{hint}", reason="missing_field")
    enum = _ENUM.fullmatch(text)
    if enum:
        name = _path(prefix, enum.group(2))
        if name == "task":
            return InputError(f"{where}: unknown task {enum.group(1)}", reason="unknown_task")
        choices = "correct, wrong, no_answer, timeout" if name.endswith("verdict") else ""
        return InputError(
            f"{where}: field {name!r} must be one of {choices}, not {enum.group(1)}",
            reason="bad_row",
        )
    expected = _EXPECTED.fullmatch(text)
    if expected:
        want, got, constraint, at = expected.groups()
        name = _path(prefix, at)
        if got is None:  # a constraint: `Expected `int` >= 0`
            return InputError(
                f"{where}: field {name!r} must be {_words(want)}{constraint}", reason="bad_row"
            )
        return InputError(
            f"{where}: field {name!r} must be {_words(want)}, not {_words(got, got=True)}",
            reason="bad_row",
        )
    return InputError(f"{where}: {text}", reason="bad_row")


def check(data: Any, shape: type[S], where: str, prefix: str = "", hint: str = "") -> S:
    """`data` as `shape`, or a one-line `InputError` naming `where` and the field."""
    try:
        return msgspec.convert(data, shape)
    except msgspec.ValidationError as exc:
        raise input_error(exc, where, prefix, hint) from None
