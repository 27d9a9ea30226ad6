"""Dollars per million tokens for common hosted models, and what a request costs.

Each entry of the table is a model's published list price (standard tier): input, cached
input (prompt tokens the provider read from its prompt cache, reported as
`usage.prompt_tokens_details.cached_tokens`; None where the model has no cached rate, so
they cost full input), output, the Batch API's input and output (OpenAI's batch rate is half
the synchronous one), and the date the entry was last checked against the provider's
pricing page. Prices change: `--price-in` / `--price-out` / `--price-cached` override the
table for every model-calling stage (and `stats`), and a model not listed here (every local
model) has no known price: its cost is reported as unknown, and `--max-cost` then needs the
flags. Such a model needs both `--price-in` and `--price-out`: with one alone it stays
unpriced, and the summary says so.

A dated snapshot of a listed model (`gpt-4o-2024-08-06`, `gpt-4-0613`: the listed name, a
dash and a date) takes that model's price, except the snapshots listed under their own name
because their price differs (`gpt-4o-2024-05-13`). Nothing else is matched by prefix: `o1-pro`
is a different product from `o1` at ten times its price, so a name that is neither listed nor
a dated snapshot of a listed name is unknown.

What a request costs: its prompt tokens at the input rate, except the cached ones at the
cached rate (they are part of `prompt_tokens`), and its completion tokens at the output
rate. Reasoning tokens (`completion_tokens_details.reasoning_tokens`) are billed as output
and are already part of `completion_tokens`, so they are never added again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Listed:
    """One row of the table: USD per million tokens, and when it was checked (YYYY-MM-DD)."""

    input: float
    cached: float | None
    output: float
    batch_input: float
    batch_output: float
    checked: str


PRICES: dict[str, Listed] = {
    "gpt-4o": Listed(2.50, 1.25, 10.00, 1.25, 5.00, "2026-11-27"),
    "gpt-4o-mini": Listed(0.15, 0.075, 0.60, 0.075, 0.30, "2026-11-27"),
    "gpt-4.1": Listed(2.00, 0.50, 8.00, 1.00, 4.00, "2026-11-27"),
    "gpt-4.1-mini": Listed(0.40, 0.10, 1.60, 0.20, 0.80, "2026-11-27"),
    "gpt-4.1-nano": Listed(0.10, 0.025, 0.40, 0.05, 0.20, "2026-11-27"),
    # Dated snapshots priced unlike the model they are a snapshot of.
    "gpt-4o-2024-05-13": Listed(5.00, None, 15.00, 2.50, 7.50, "2026-11-28"),
    "gpt-3.5-turbo-0301": Listed(1.50, None, 2.00, 0.75, 1.00, "2026-11-28"),
    "gpt-3.5-turbo-0613": Listed(1.50, None, 2.00, 0.75, 1.00, "2026-11-28"),
    "gpt-3.5-turbo-1106": Listed(1.00, None, 2.00, 0.50, 1.00, "2026-11-28"),
    "gpt-4-turbo": Listed(10.00, None, 30.00, 5.00, 15.00, "2026-11-27"),
    "gpt-4": Listed(30.00, None, 60.00, 15.00, 30.00, "2026-11-27"),
    "gpt-4-32k": Listed(60.00, None, 120.00, 30.00, 60.00, "2026-11-28"),
    "gpt-3.5-turbo": Listed(0.50, None, 1.50, 0.25, 0.75, "2026-11-27"),
    "o1": Listed(15.00, 7.50, 60.00, 7.50, 30.00, "2026-11-27"),
    "o1-pro": Listed(150.00, None, 600.00, 75.00, 300.00, "2026-11-28"),
    "o1-mini": Listed(1.10, 0.55, 4.40, 0.55, 2.20, "2026-11-27"),
    "o3": Listed(2.00, 0.50, 8.00, 1.00, 4.00, "2026-11-27"),
    "o3-pro": Listed(20.00, None, 80.00, 10.00, 40.00, "2026-11-28"),
    "o3-mini": Listed(1.10, 0.55, 4.40, 0.55, 2.20, "2026-11-27"),
    "o4-mini": Listed(1.10, 0.275, 4.40, 0.55, 2.20, "2026-11-27"),
}


@dataclass(frozen=True)
class Price:
    """Dollars per million input, cached input and output tokens (`None`: not known; a
    cached rate that is not known is the input rate), with the batch rates and where the
    price comes from: the table's checked date, or `--price-*`."""

    per_m_in: float | None
    per_m_out: float | None
    per_m_cached: float | None = None
    batch_in: float | None = None
    batch_out: float | None = None
    source: str | None = None  # "checked 2026-11-27", "--price-in/--price-out", None

    @property
    def known(self) -> bool:
        return self.per_m_in is not None and self.per_m_out is not None

    def cost(
        self, prompt_tokens: float, completion_tokens: float, cached_tokens: float = 0
    ) -> float:
        """USD for a request's usage; `cached_tokens` are part of `prompt_tokens`."""
        per_in = self.per_m_in or 0.0
        per_cached = per_in if self.per_m_cached is None else self.per_m_cached
        cached = min(cached_tokens, prompt_tokens)
        return (
            (prompt_tokens - cached) * per_in
            + cached * per_cached
            + completion_tokens * (self.per_m_out or 0.0)
        ) / 1e6

    def batch(self) -> Price:
        """The same model's price through a Batch API (cached input at the batch input rate)."""
        return Price(
            self.batch_in, self.batch_out, None, self.batch_in, self.batch_out, self.source
        )

    @property
    def half_given(self) -> bool:
        """Only one of --price-in and --price-out for a model the table does not list: it
        stays unpriced (a model not in the table needs both)."""
        return not self.known and (self.per_m_in is None) != (self.per_m_out is None)

    def describe(self, model: str) -> str:
        """`gpt-4o $2.5 in, $1.25 cached, $10 out per M (checked 2026-11-27)`."""
        if self.half_given:
            given = "--price-in" if self.per_m_in is not None else "--price-out"
            return (
                f"{model} no price ({given} alone: a model not in the table needs both "
                "--price-in and --price-out)"
            )
        if not self.known:
            return f"{model} no price"
        cached = "" if self.per_m_cached is None else f", ${self.per_m_cached:g} cached"
        return (
            f"{model} ${self.per_m_in:g} in{cached}, ${self.per_m_out:g} out per M ({self.source})"
        )


# A snapshot's date: `-2024-08-06` (newer models) or `-0613` (month and day, older ones).
_SNAPSHOT = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{4})$")


def listed(model: str) -> Listed | None:
    """The table's entry for `model`: its exact name, else (a dated snapshot) the entry of
    the name without its date; None for anything else."""
    entry = PRICES.get(model)
    if entry is None:
        base = _SNAPSHOT.sub("", model)
        if base != model:
            entry = PRICES.get(base)
    return entry


def price_for(
    model: str,
    price_in: float | None = None,
    price_out: float | None = None,
    price_cached: float | None = None,
) -> Price:
    """The flags win, each for its own rate; otherwise the table. A flag given for a model
    in the table replaces only that rate; the batch rates of a flagged rate are half of it
    (the usual Batch API discount)."""
    entry = listed(model)
    flags = [
        name
        for name, value in (("in", price_in), ("out", price_out), ("cached", price_cached))
        if value is not None
    ]
    per_in = price_in if price_in is not None else (entry.input if entry else None)
    per_out = price_out if price_out is not None else (entry.output if entry else None)
    per_cached = price_cached if price_cached is not None else (entry.cached if entry else None)
    batch_in = price_in / 2 if price_in is not None else (entry.batch_input if entry else None)
    batch_out = price_out / 2 if price_out is not None else (entry.batch_output if entry else None)
    source: str | None
    if flags:
        source = "/".join(f"--price-{name}" for name in flags)
        if entry is not None and len(flags) < 3:
            source += f", else the table checked {entry.checked}"
    else:
        source = f"checked {entry.checked}" if entry else None
    return Price(per_in, per_out, per_cached, batch_in, batch_out, source)
