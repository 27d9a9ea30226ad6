"""What every record type shares: the words it is made of (`lemagen.terms`), the schema
version, and how a msgspec validation error becomes lemagen's one-line `file:line` message.
Checking a record's JSON shape is msgspec's (in C: several times faster than checking field by
field in Python, benchmarks/bench_stages.py)."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from typing import Annotated, Any, TypeAlias, TypeVar

import msgspec

from lemagen.errors import InputError
from lemagen.terms import POT_VERDICTS, TASKS, VERDICTS, PotVerdict, Task, Verdict

__all__ = [
    "POT_VERDICTS",
    "TASKS",
    "VERDICTS",
    "PotVerdict",
    "Task",
    "Verdict",
]

JSON: TypeAlias = dict[str, Any]
Count = Annotated[int, msgspec.Meta(ge=0)]
Number = int | float  # kept as given: msgspec would turn 1 into 1.0 for `float`
S = TypeVar("S")
# Written last into every record written on its own line (samples, corrections, analyses, ART
# records, retry texts, rejects); a record without it is version 1. 2: `schema_version`;
# 3: records state their `kind`, first (`shape.TAG`).
SCHEMA_VERSION = 3
EXTRA = "(extra)"  # the field that holds a shape's unknown keys: read from no JSON key


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


def input_error(
    exc: msgspec.ValidationError,
    where: str,
    prefix: str,
    hint: str,
    nullable: Collection[str] = (),
    choices: Callable[[str], tuple[Any, ...]] = lambda path: (),
) -> InputError:
    """A msgspec validation error as lemagen's one-line `file:line` message and reason.
    `nullable`: the fields that also take null; `choices`: the values of a Literal field."""
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
        allowed = ", ".join(map(str, choices(_path("", enum.group(2)))))
        return InputError(
            f"{where}: field {name!r} must be one of {allowed}, not {enum.group(1)}",
            reason="bad_row",
        )
    expected = _EXPECTED.fullmatch(text)
    if expected:
        want, got, constraint, at = expected.groups()
        name = _path(prefix, at)
        if _path("", at) in nullable:
            want += " | null"
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
