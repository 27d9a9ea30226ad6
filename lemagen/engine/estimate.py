"""`--dry-run`: what a run would send and cost, given what the request store already holds."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from lemagen.engine.calls import Call
from lemagen.engine.engine import Engine


@dataclass
class Estimate:
    rows: int = 0
    requests: int = 0
    samples: int = 0
    cached: int = 0
    prompt_tokens: int = 0
    cost_in: float = 0.0
    cost_out: float = 0.0
    unpriced: set[str] = field(default_factory=set)

    def describe(self, stage: str) -> str:
        cost = (
            f"${self.cost_in:.4f} for prompts, at most ${self.cost_in + self.cost_out:.4f} "
            "with completions"
        )
        if self.unpriced:
            models = ", ".join(sorted(self.unpriced))
            cost += f" (no price for {models}: give --price-in/--price-out)"
        return (
            f"{stage} --dry-run: {self.rows} rows; would send {self.requests} requests for "
            f"{self.samples} samples ({self.cached} already in the request store); "
            f"~{self.prompt_tokens} prompt tokens; estimated cost {cost}. Nothing was sent."
        )


def estimate(engine: Engine, calls: Iterable[list[Call]]) -> Estimate:
    """Count the requests each row's calls would need, without sending any."""
    out = Estimate()
    for row_calls in calls:
        out.rows += 1
        for call in row_calls:
            have = engine.cached_samples(call)
            out.cached += have
            missing = call.n - have
            if missing <= 0:
                continue
            out.requests += 1
            out.samples += missing
            tokens, most = call.estimated_tokens(missing)
            out.prompt_tokens += tokens
            price = engine.price(call.model)
            if not price.known:
                out.unpriced.add(call.model)
            out.cost_in += price.cost(tokens, 0)
            out.cost_out += price.cost(0, most)
    return out
