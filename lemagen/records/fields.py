"""Typed, checked access to the fields of one JSON object: every record type reads its input
through `Fields`, so a bad field is one `file:line` error with a machine-readable reason."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeAlias

from lemagen.errors import InputError

TASKS = ("gsm8k", "math")
VERDICTS = ("correct", "wrong", "no_answer", "timeout")
Task = Literal["gsm8k", "math"]
Verdict = Literal["correct", "wrong", "no_answer", "timeout"]
JSON: TypeAlias = dict[str, Any]
SCHEMA_VERSION = 2  # written into samples, corrections, retry texts and rejects


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
        return Fields(value, self.where, f"{self.prefix}{name}.")

    def opt_object(self, name: str) -> Fields | None:
        value = self.data.get(name)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.fail(f"field {self.name(name)} must be an object, not {_kind(value)}")
        return Fields(value, self.where, f"{self.prefix}{name}.")

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


def versioned(out: JSON) -> JSON:
    """`out` with the schema version, last (records without it are version 1)."""
    out["schema_version"] = SCHEMA_VERSION
    return out


def with_extra(out: JSON, extra: Mapping[str, Any]) -> JSON:
    for key, value in extra.items():
        out.setdefault(key, value)
    return out
