"""The request engine: sends model calls concurrently over one event loop, keeps every answer
in the request store, retries, and holds rate, budget and endpoint limits.

Stages build `Call`s and read `Generation`s; `run_rows` streams rows through an `Engine`.
Everything a stage or the CLI needs is imported from here.
"""

from lemagen.engine.calls import (
    DEFAULT_BASE_URL,
    Call,
    Choice,
    Generation,
    RequestFailed,
    RequestShape,
    Sampling,
)
from lemagen.engine.engine import Engine, EngineConfig, Stats, describe
from lemagen.engine.prices import Price, price_for
from lemagen.engine.runner import run_batches, run_rows
from lemagen.engine.store import default_cache_dir
from lemagen.engine.transports import TRANSPORTS

__all__ = [
    "DEFAULT_BASE_URL",
    "TRANSPORTS",
    "Call",
    "Choice",
    "Engine",
    "EngineConfig",
    "Generation",
    "Price",
    "RequestFailed",
    "RequestShape",
    "Sampling",
    "Stats",
    "default_cache_dir",
    "describe",
    "price_for",
    "run_batches",
    "run_rows",
]
