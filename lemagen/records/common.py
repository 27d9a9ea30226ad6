"""What every record type shares: the tasks and verdicts, the schema version, how a record's
JSON shape is checked (`check`, by msgspec, in C: several times faster than checking field by
field in Python, benchmarks/bench_stages.py), and how unknown keys are carried through."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeAlias, TypeVar

import msgspec

from lemagen.errors import InputError

TASKS = ("gsm8k", "math")
VERDICTS = ("correct", "wrong", "no_answer", "timeout")
Task = Literal["gsm8k", "math"]
PotVerdict = Literal["agree", "disagree", "error", "timeout"]  # `lemagen crosscheck`
POT_VERDICTS = ("agree", "disagree", "error", "timeout")
Verdict = Literal["correct", "wrong", "no_answer", "timeout"]
JSON: TypeAlias = dict[str, Any]
Count = Annotated[int, msgspec.Meta(ge=0)]
Number = int | float  # kept as given: msgspec would turn 1 into 1.0 for `float`
S = TypeVar("S", bound=msgspec.Struct)
SCHEMA_VERSION = 2  # written into samples, corrections, analyses, ART records, retry texts, rejects


def versioned(out: JSON) -> JSON:
    """`out` with the schema version, last (records without it are version 1)."""
    out["schema_version"] = SCHEMA_VERSION
    return out


def with_extra(out: JSON, extra: Mapping[str, Any]) -> JSON:
    for key, value in extra.items():
        out.setdefault(key, value)
    return out


def unknown_keys(data: Mapping[str, Any], known: frozenset[str]) -> dict[str, Any]:
    """The keys of `data` lemagen does not know, to carry through."""
    if data.keys() <= known:
        return {}
    return {k: v for k, v in data.items() if k not in known}


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
