"""What `lemagen stats --html` shows beyond the numbers: a sample of kept and of rejected
corrections (question, the original solution with its incorrect step marked, the explanation,
the corrected steps beside the original ones with the changed values marked), yield and cost
per reasoner and per corrector, and the funnel broken down by every field the problems carry.

Collected while `stats` reads (`Details`), in bounded memory: a fixed-size random sample of
examples (seeded, so the same input gives the same page), and breakdowns only for fields with
few distinct values.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lemagen.engine import Price, price_for
from lemagen.records import Correction, Meta, Problem

EXAMPLES = 12  # of each kind, kept and rejected
MAX_VALUES = 30  # a field with more distinct values is not a category: no breakdown
SEED = 0


def usage_cost(
    meta: Meta, price_of: Callable[[str], Price] = price_for
) -> tuple[float, float, float | None]:
    """A record's share of its request's prompt and completion tokens (usage / choices), and
    their cost in USD (None when its model has no known price)."""
    usage = meta.usage
    if not usage:
        return 0.0, 0.0, 0.0
    share = 1 / max(1, meta.choices_in_usage or 1)
    tokens_in = float(usage.get("prompt_tokens") or 0) * share
    tokens_out = float(usage.get("completion_tokens") or 0) * share
    cached = float(usage.get("cached_tokens") or 0) * share
    price = price_of(meta.model or "unknown")
    return tokens_in, tokens_out, price.cost(tokens_in, tokens_out, cached) if price.known else None


def who(meta: Meta) -> str:
    """The model that wrote a record, or `inject` for a mistake injected offline."""
    if meta.model:
        return meta.model
    return "inject" if getattr(meta, "stage", None) == "inject" else "unknown"


@dataclass
class ModelRow:
    """One reasoner's or corrector's share of the run."""

    samples: int = 0  # a reasoner's samples, a corrector's corrections
    wrong: int = 0
    corrections: int = 0
    kept: int = 0
    tokens: float = 0.0
    cost: float = 0.0
    priced: bool = True

    def add_usage(self, meta: Meta, price_of: Callable[[str], Price] = price_for) -> None:
        tokens_in, tokens_out, cost = usage_cost(meta, price_of)
        self.tokens += tokens_in + tokens_out
        if cost is None:
            self.priced = False
        else:
            self.cost += cost


@dataclass
class Example:
    """A correction as the page shows it."""

    id: str
    question: str
    gold: str
    reasoner: str
    corrector: str
    original: tuple[str, ...]
    incorrect_step: int | None
    explanation: str | None
    corrected_from: int | None
    corrected: tuple[str, ...]
    pred: str | None
    reason: str | None  # why it was rejected (None: kept)


@dataclass
class Details:
    examples: int = EXAMPLES
    reasoners: dict[str, ModelRow] = field(default_factory=dict)
    correctors: dict[str, ModelRow] = field(default_factory=dict)
    fields: dict[str, dict[str, Counter[str]]] = field(default_factory=dict)
    kept: list[Example] = field(default_factory=list)
    rejected: list[Example] = field(default_factory=list)
    seen: Counter[str] = field(default_factory=Counter)  # kept / rejected corrections seen
    _too_many: set[str] = field(default_factory=set)
    _random: random.Random = field(default_factory=lambda: random.Random(SEED))
    price: Callable[[str], Price] = price_for  # stats --price-*: the flags, else the table

    def sample(self, problem: Problem | None, meta: Meta, verdict: str, drawn: int = 1) -> None:
        """A sample, counted once (a correction's original included), standing for `drawn`
        samples drawn (itself and the duplicates `sample` dropped)."""
        row = self.reasoners.setdefault(who(meta), ModelRow())
        row.samples += drawn
        row.wrong += drawn if verdict == "wrong" else 0
        row.add_usage(meta, self.price)
        if problem is not None:
            self._count(problem, "samples", drawn)
            self._count(problem, verdict, drawn)

    def correction(self, record: Correction, reason: str | None) -> None:
        """A correction, and why `filter` drops it (None: kept)."""
        reasoner = self.reasoners.setdefault(who(record.original.meta), ModelRow())
        corrector = self.correctors.setdefault(who(record.meta), ModelRow())
        corrector.samples += 1
        corrector.add_usage(record.meta, self.price)
        for row in (reasoner, corrector):
            row.corrections += 1
            row.kept += reason is None
        self._count(record.problem, "corrections")
        if reason is None:
            self._count(record.problem, "kept")
        kind = "kept" if reason is None else "rejected"
        self.seen[kind] += 1
        chosen = self.kept if reason is None else self.rejected
        # Reservoir sampling: every correction has the same chance to be shown.
        if len(chosen) < self.examples:
            chosen.append(_example(record, reason))
        else:
            slot = self._random.randrange(self.seen[kind])
            if slot < self.examples:
                chosen[slot] = _example(record, reason)

    def _count(self, problem: Problem, counter: str, n: int = 1) -> None:
        values: dict[str, Any] = {"task": problem.task, **problem.source}
        for name, value in values.items():
            if name in self._too_many or isinstance(value, (dict, list)) or value is None:
                continue
            groups = self.fields.setdefault(name, {})
            key = str(value)
            if key not in groups and len(groups) >= MAX_VALUES:
                self._too_many.add(name)
                del self.fields[name]
                continue
            groups.setdefault(key, Counter())[counter] += n

    def model_tables(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Yield and cost per reasoner (kept rows per sample) and per corrector (kept rows per
        correction)."""
        return {
            "reasoners": {m: _row(r) for m, r in sorted(self.reasoners.items())},
            "correctors": {m: _row(r) for m, r in sorted(self.correctors.items())},
        }

    def breakdowns(self) -> dict[str, dict[str, dict[str, Any]]]:
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for name in sorted(self.fields, key=lambda n: (n != "task", n)):
            out[name] = {}
            for key in sorted(self.fields[name]):
                c = self.fields[name][key]
                graded = c["correct"] + c["wrong"]
                out[name][key] = {
                    "samples": c["samples"],
                    "wrong": c["wrong"],
                    "accuracy": round(c["correct"] / graded, 4) if graded else None,
                    "corrections": c["corrections"],
                    "kept": c["kept"],
                    "kept_share": round(c["kept"] / c["corrections"], 4)
                    if c["corrections"]
                    else None,
                }
        return out


def _row(r: ModelRow) -> dict[str, Any]:
    per = r.samples
    return {
        "rows": r.samples,
        "wrong": r.wrong,
        "corrections": r.corrections,
        "kept": r.kept,
        "yield": round(r.kept / per, 4) if per else None,
        "tokens": round(r.tokens),
        "cost_usd": round(r.cost, 6) if r.priced else None,
        "cost_per_kept_usd": round(r.cost / r.kept, 6) if r.priced and r.kept else None,
    }


def _example(record: Correction, reason: str | None) -> Example:
    return Example(
        id=record.problem.id,
        question=record.problem.question,
        gold=record.problem.gold,
        reasoner=who(record.original.meta),
        corrector=who(record.meta),
        original=tuple(record.original.steps),
        incorrect_step=record.incorrect_step,
        explanation=record.explanation,
        corrected_from=record.corrected_from,
        corrected=tuple(record.corrected_steps),
        pred=record.pred,
        reason=reason,
    )
