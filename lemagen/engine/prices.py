"""Dollars per million tokens (input, output) for common hosted models.

Published list prices (standard tier, no batch or cached-input discounts) as of 2025; prices
change, so `--price-in` / `--price-out` override this table, and a model not listed here
(every local model) has no known price: its cost is reported as unknown, and `--max-cost`
then needs the two flags.

A dated model name (`gpt-4o-2024-08-06`) takes the price of the longest listed name it
starts with.
"""

from __future__ import annotations

from dataclasses import dataclass

PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4-turbo": (10.00, 30.00),
    "gpt-4": (30.00, 60.00),
    "gpt-3.5-turbo": (0.50, 1.50),
    "o1": (15.00, 60.00),
    "o1-mini": (1.10, 4.40),
    "o3": (2.00, 8.00),
    "o3-mini": (1.10, 4.40),
    "o4-mini": (1.10, 4.40),
}


@dataclass(frozen=True)
class Price:
    """Dollars per million input and output tokens; `None` when not known."""

    per_m_in: float | None
    per_m_out: float | None

    @property
    def known(self) -> bool:
        return self.per_m_in is not None and self.per_m_out is not None

    def cost(self, prompt_tokens: float, completion_tokens: float) -> float:
        return (
            prompt_tokens * (self.per_m_in or 0.0) + completion_tokens * (self.per_m_out or 0.0)
        ) / 1e6


def price_for(model: str, price_in: float | None = None, price_out: float | None = None) -> Price:
    """The flags win; otherwise the table (exact name, else the longest listed prefix)."""
    listed: tuple[float, float] | None = PRICES.get(model)
    if listed is None:
        prefixes = [name for name in PRICES if model.startswith(name + "-")]
        if prefixes:
            listed = PRICES[max(prefixes, key=len)]
    per_in = price_in if price_in is not None else (listed[0] if listed else None)
    per_out = price_out if price_out is not None else (listed[1] if listed else None)
    return Price(per_in, per_out)


# Batch API prices (dollars per million input, output tokens) where they are not half the
# standard price; none of the models above is known to differ.
BATCH_PRICES: dict[str, tuple[float, float]] = {}
BATCH_DISCOUNT = 0.5  # OpenAI's Batch API: half the standard price


def batch_price(model: str, price_in: float | None = None, price_out: float | None = None) -> Price:
    """What a result from a provider's Batch API costs: the batch table's price, else half
    the synchronous price (`price_for`, so --price-in/--price-out are halved too)."""
    listed = BATCH_PRICES.get(model)
    if listed is None:
        prefixes = [name for name in BATCH_PRICES if model.startswith(name + "-")]
        if prefixes:
            listed = BATCH_PRICES[max(prefixes, key=len)]
    if listed is not None:
        return Price(*listed)
    sync = price_for(model, price_in, price_out)
    return Price(
        None if sync.per_m_in is None else sync.per_m_in * BATCH_DISCOUNT,
        None if sync.per_m_out is None else sync.per_m_out * BATCH_DISCOUNT,
    )
