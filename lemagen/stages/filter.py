"""`lemagen filter`: keep trustworthy corrections and write LEMA fine-tuning records.

A correction is kept only if it parsed, was not truncated, names a step that exists in the
original solution, continues from that step when it elides earlier ones with `...`, changes the
solution, and reaches the gold answer. Every dropped record gets one machine-readable reason.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from lemagen.errors import InputError
from lemagen.stages.correct import ParsedReply, full_solution
from lemagen.stages.formats import lema_correction, lema_cot

REASONS = (
    "unparseable",
    "truncated",
    "step_out_of_range",
    "step_mismatch",
    "no_answer",
    "check_timeout",
    "wrong_answer",
    "unchanged",
    "duplicate",
    "uncorrected_sample",
    "correct_sample",
)


@dataclass
class Filter:
    with_cot: bool = False
    with_meta: bool = False
    counts: Counter[str] = field(default_factory=Counter)
    _seen: set[tuple[str, str]] = field(default_factory=set)

    def __call__(
        self, record: dict[str, Any], where: str
    ) -> tuple[dict[str, Any] | None, str | None]:
        """(training record, None) to keep, or (None, reason) to drop."""
        if "correction_id" in record:
            self.counts["corrections"] += 1
            _require(record, where, ("question", "original", "corrected_steps", "verdict"))
            reason = self._check(record)
            out = None if reason else lema_correction(record)
            kind = "correction"
        elif "sample_id" in record and "steps" in record:
            self.counts["samples"] += 1
            _require(record, where, ("question", "steps", "verdict", "task"))
            if record["verdict"] != "correct":
                return None, "uncorrected_sample"
            if not self.with_cot:
                return None, "correct_sample"
            reason, out, kind = None, lema_cot(record), "cot"
        else:
            raise InputError(
                f"{where}: not a sample or correction record (no 'sample_id')", reason="bad_record"
            )
        if reason is None and out is not None:
            key = (out["prompt"], out["completion"])
            if key in self._seen:
                reason, out = "duplicate", None
            else:
                self._seen.add(key)
        if out is None:
            return None, reason
        self.counts[f"kept_{kind}"] += 1
        if self.with_meta:
            out = {**out, "id": record["id"], "kind": kind}
        return out, None

    @staticmethod
    def _check(record: dict[str, Any]) -> str | None:
        if record.get("reject_reason"):
            return "unparseable"
        if record.get("meta", {}).get("finish_reason") == "length":
            return "truncated"
        original = record["original"]["steps"]
        k = record.get("incorrect_step")
        if not isinstance(k, int) or not 1 <= k <= len(original):
            return "step_out_of_range"
        if record.get("elided") and record.get("corrected_from") != k:
            return "step_mismatch"
        verdict = record["verdict"]
        if verdict != "correct":
            return {"no_answer": "no_answer", "timeout": "check_timeout"}.get(
                verdict, "wrong_answer"
            )
        parsed = ParsedReply(
            incorrect_step=k,
            corrected_from=record.get("corrected_from"),
            corrected_steps=record["corrected_steps"],
            elided=bool(record.get("elided")),
        )
        if _norm(full_solution(original, parsed)) == _norm(original):
            return "unchanged"
        return None


def _norm(steps: list[str]) -> str:
    return re.sub(r"\s+", " ", " ".join(steps)).strip()


def _require(record: dict[str, Any], where: str, names: tuple[str, ...]) -> None:
    for name in names:
        if name not in record:
            raise InputError(f"{where}: missing field {name!r}", reason="missing_field")
