"""What every record type shares: the tasks and verdicts, the schema version, and how unknown
keys are carried through."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeAlias

TASKS = ("gsm8k", "math")
VERDICTS = ("correct", "wrong", "no_answer", "timeout")
Task = Literal["gsm8k", "math"]
Verdict = Literal["correct", "wrong", "no_answer", "timeout"]
JSON: TypeAlias = dict[str, Any]
SCHEMA_VERSION = 2  # written into samples, corrections, retry texts and rejects


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
