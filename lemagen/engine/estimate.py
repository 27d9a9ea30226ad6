"""`--dry-run`: what a run would send and cost, given what the request store already holds.

Each request that would be sent is handed to `emit` as one JSON object, exactly what would go
on the wire: `endpoint` (the path after --base-url), `keys` (the request store key of each
sample it asks for, hex), `sample_indices` and `body` (model, messages or prompt, and every
parameter; never the key, which travels in a header). Samples already in the store, and
samples an earlier request of the same run already asks for, are not listed: a real run
does not send them either. The counts and the cost (synchronous and batch prices side by
side, with where each price comes from) are the returned `Estimate`'s `describe`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from lemagen.engine.calls import PATHS, Call
from lemagen.engine.engine import Engine


@dataclass
class Estimate:
    rows: int = 0
    requests: int = 0
    samples: int = 0
    cached: int = 0  # samples already in the request store
    repeated: int = 0  # samples an earlier request of this run asks for
    prompt_tokens: int = 0
    completion_tokens: int = 0  # at most: --max-tokens per sample
    cost_in: float = 0.0
    cost_out: float = 0.0
    batch_in: float = 0.0
    batch_out: float = 0.0
    unpriced: set[str] = field(default_factory=set)
    prices: str = ""

    def describe(self, stage: str) -> str:
        cost = (
            f"synchronous ${self.cost_in:.4f} for prompts, at most "
            f"${self.cost_in + self.cost_out:.4f} with completions; batch "
            f"${self.batch_in:.4f}, at most ${self.batch_in + self.batch_out:.4f}"
        )
        if self.unpriced:
            models = ", ".join(sorted(self.unpriced))
            cost += f" (no price for {models}: give --price-in/--price-out)"
        if self.prices:
            cost += f"; prices: {self.prices}"
        repeated = f", {self.repeated} asked for twice" if self.repeated else ""
        return (
            f"{stage} --dry-run: {self.rows} rows; would send {self.requests} requests for "
            f"{self.samples} samples ({self.cached} already in the request store{repeated}); "
            f"~{self.prompt_tokens} prompt tokens, at most {self.completion_tokens} completion "
            f"tokens; estimated cost {cost}. Nothing was sent."
        )


def estimate(
    engine: Engine,
    calls: Iterable[list[Call]],
    emit: Callable[[dict[str, Any]], None] = lambda request: None,
) -> Estimate:
    """Count the requests each row's calls would need, without sending any; hand each to
    `emit` as the line `--dry-run` writes."""
    out = Estimate()
    api = engine.api
    listed: set[bytes] = set()
    for row_calls in calls:
        out.rows += 1
        for call in row_calls:
            keys = call.keys(api)
            stored = engine.stored(keys)
            todo = []
            for index, key in enumerate(keys):
                if key in stored:
                    out.cached += 1
                elif key in listed:
                    out.repeated += 1
                else:
                    listed.add(key)
                    todo.append(index)
            if not todo:
                continue
            out.requests += 1
            out.samples += len(todo)
            tokens, most = call.estimated_tokens(len(todo))
            out.prompt_tokens += tokens
            out.completion_tokens += most
            price = engine.price(call.model)
            if not price.known:
                out.unpriced.add(call.model)
            batch = price.batch()
            out.cost_in += price.cost(tokens, 0)
            out.cost_out += price.cost(0, most)
            out.batch_in += batch.cost(tokens, 0)
            out.batch_out += batch.cost(0, most)
            emit(
                {
                    "endpoint": PATHS[api],
                    "keys": [keys[i].hex() for i in todo],
                    "sample_indices": todo,
                    "body": call.body(api, len(todo), todo[0]),
                }
            )
    out.prices = engine.prices()
    return out
