"""`lemagen filter`: keep trustworthy corrections and write LEMA fine-tuning records.

A correction is kept only if it parsed, was not truncated, names a step that exists in the
original solution, continues from that step when it elides earlier ones with `...`, leaves the
steps before that step as they were (`prefix_changed`), changes the solution and the named step
itself (`step_unchanged`), and reaches the gold answer. Every dropped record gets one
machine-readable reason.

`prefix_changed` and `step_unchanged` are filter reasons, not parse errors: the reply was read
(its parts are in the `correct` record for anyone to inspect), but it does not do what it says:
LEMA's target names the first incorrect step, so a correction that rewrites an earlier step, or
leaves the named one as it was, teaches the wrong position. Judging here, like the step range,
applies to every correction, from any run or from `inject`.
`Keep` is that judgement, shared by `filter`, `export` and `stats`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from lemagen.curate.decontam import HeldOut
from lemagen.lema.formats import lema_correction, lema_cot
from lemagen.records import Correction, PromptCompletion, Sample, fast, read_sample_or_correction
from lemagen.records.rows import Rejects, SetAside
from lemagen.stage.base import Hooks, Output, Stage, by_reason
from lemagen.terms import POT_REASONS, Reason, Verdict

VERDICT_REASONS: dict[Verdict, Reason] = {"no_answer": "no_answer", "timeout": "check_timeout"}


@dataclass
class Keep:
    """Which records make training data: kept corrections (and, `with_cot`, correct samples as
    CoT records), each training record once."""

    with_cot: bool = False
    require_pot: bool = False  # --require-pot-agreement: only records whose program agrees
    counts: Counter[str] = field(default_factory=Counter)
    _seen: set[tuple[str, str]] = field(default_factory=set)

    def __call__(
        self, record: Sample | Correction
    ) -> tuple[PromptCompletion | None, Reason | None]:
        """(training record, None) to keep, or (None, reason) to drop."""
        out: PromptCompletion | None
        if isinstance(record, Correction):
            self.counts["corrections"] += 1
            reason = check(record) or (pot_reason(record) if self.require_pot else None)
            out = None if reason else lema_correction(record)
            kind = "correction"
        else:
            self.counts["samples"] += 1
            if record.verdict != "correct":
                return None, "uncorrected_sample"
            if not self.with_cot:
                return None, "correct_sample"
            if self.require_pot and pot_reason(record):
                return None, pot_reason(record)
            reason, out, kind = None, lema_cot(record), "cot"
        if out is None:
            return None, reason
        key = (out.prompt, out.completion)
        if key in self._seen:
            return None, "duplicate"
        self._seen.add(key)
        self.counts[f"kept_{kind}"] += 1
        return out, None


def check(record: Correction) -> Reason | None:
    """Why a correction cannot be kept, or None."""
    if record.reject_reason:
        return "unparseable"
    if record.meta.finish_reason == "length":
        return "truncated"
    original = record.original.steps
    k = record.incorrect_step
    if k is None or not 1 <= k <= len(original):
        return "step_out_of_range"
    if record.elided and record.corrected_from != k:
        return "step_mismatch"
    solution = record.full_solution()
    # Steps before `corrected_from` are the original's own (full_solution copies them), so
    # only a reply that rewrote the solution from an earlier step can have changed them.
    copied = record.corrected_from is not None and record.corrected_from >= k
    if not copied and [_norm((s,)) for s in solution[: k - 1]] != [
        _norm((s,)) for s in original[: k - 1]
    ]:
        return "prefix_changed"
    if record.verdict != "correct":
        return VERDICT_REASONS.get(record.verdict, "wrong_answer")
    if _norm(solution) == _norm(original):
        return "unchanged"
    if len(solution) >= k and _norm(solution[k - 1 : k]) == _norm(original[k - 1 : k]):
        return "step_unchanged"
    return None


def pot_reason(record: Sample | Correction) -> Reason | None:
    """Why a record fails `--require-pot-agreement` (`lemagen crosscheck`), or None: its
    program disagreed, failed or timed out, or it was never cross-checked."""
    pot = record.pot
    if pot is None:
        return "pot_unchecked"
    return None if pot.verdict == "agree" else POT_REASONS[pot.verdict]


def unparseable_detail(record: Sample | Correction, reason: Reason) -> str | None:
    """The parser's message, for a correction set aside as unparseable."""
    if reason == "unparseable" and isinstance(record, Correction):
        return record.reject_reason
    return None


_SPACE = re.compile(r"\s+")


def _norm(steps: Iterable[str]) -> str:
    """Steps compared as text: whitespace and a final full stop do not count."""
    return _SPACE.sub(" ", " ".join(steps)).strip().rstrip(".")


class FilterStage(Stage[Sample | Correction]):
    name = "filter"

    def __init__(
        self,
        *,
        with_cot: bool,
        with_meta: bool,
        held_out: HeldOut | None,
        require_pot: bool = False,
    ) -> None:
        super().__init__()
        self.keep = Keep(with_cot=with_cot, require_pot=require_pot)
        self.with_meta = with_meta
        self.held_out = held_out

    def read(self, data: dict[str, Any], where: str) -> Sample | Correction:
        self.counts["in"] += 1
        return read_sample_or_correction(data, where)

    def read_fast(self, raw: bytes) -> Sample | Correction:
        record = fast.sample_or_correction(raw)
        self.counts["in"] += 1
        return record

    def run(self, rows: Iterable[Sample | Correction], hooks: Hooks) -> Iterator[Output]:
        for record in rows:
            hooks.on_row(1)
            leak = self.held_out.match(record.question) if self.held_out else None
            if leak is not None:
                yield SetAside("contaminated", record, f"overlaps {leak}")
                continue
            out, reason = self.keep(record)
            if out is None:
                assert reason is not None
                yield SetAside(reason, record, unparseable_detail(record, reason))
            elif self.with_meta:
                kind = "correction" if isinstance(record, Correction) else "cot"
                yield PromptCompletion(out.prompt, out.completion, record.id, kind)
            else:
                yield out

    def summary(self, rejects: Rejects) -> str:
        c = self.keep.counts
        kept = c["kept_correction"] + c["kept_cot"]
        return (
            f"filter: in {self.counts['in']} ({c['corrections']} corrections, {c['samples']} "
            f"samples); kept {kept} ({c['kept_correction']} correction, {c['kept_cot']} cot); "
            f"dropped {sum(rejects.counts.values())}: {by_reason(rejects.counts)}"
        )
