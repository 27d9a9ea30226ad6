"""`--batch`: which requests go to a provider's Batch API instead of being sent now.

A run in batch mode goes in passes (`lemagen.cli.running`). In each pass the engine plans
every call against the request store as usual; a call whose samples are all stored is
answered from the store, and one with samples missing is not sent but collected here as one
Batch input line (the same body a synchronous request would carry, for the same samples) and
fails with reason `batch_pending`. Between passes the collected lines are submitted, waited
for and stored (`lemagen.engine.batches`); a pass that collects nothing is the real one.

A sample a batch failed to return is asked for in a new batch, up to --max-retries times,
then set aside with the batch's reason (as a failed synchronous call is); with
`--batch-fallback sync` it is sent synchronously after its first failed batch.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Literal

from lemagen.engine.batchstore import FINAL, BatchLedger, BatchRequest
from lemagen.engine.calls import PATHS, RequestFailed
from lemagen.engine.planning import Plan

Fallback = Literal["batch", "sync"]
MAX_REQUESTS = 50_000  # OpenAI: requests per Batch input file
MAX_BYTES = 200_000_000  # OpenAI: 200 MB per Batch input file


@dataclass(frozen=True)
class BatchConfig:
    completion_window: str = "24h"
    wait: bool = False
    poll_interval: float = 60.0  # seconds between looks at a running batch
    fallback: Fallback = "batch"
    max_requests: int = MAX_REQUESTS  # per input file
    max_bytes: int = MAX_BYTES  # per input file


def batch_endpoint(api: str) -> str:
    """The `url` of a Batch input line, and the batch's `endpoint`."""
    return "/v1" + PATHS[api]


@dataclass(frozen=True)
class Collected:
    """A Batch input line a pass collected; its text waits in the collector's spool file."""

    custom_id: str
    model: str
    endpoint: str
    keys: tuple[bytes, ...]
    offset: int
    size: int  # bytes, with the newline


class BatchCollector:
    """Decides, for each call the engine would send, whether it goes into a batch; keeps the
    lines of those that do in a temporary file (a pass over 10^6 rows would not fit them in
    memory), and what each one is in `requests`. Runs on the engine's loop."""

    def __init__(
        self, config: BatchConfig, api: str, ledger: BatchLedger, max_retries: int
    ) -> None:
        self.config = config
        self.api = api
        self.ledger = ledger
        self.max_retries = max_retries
        self.requests: dict[str, Collected] = {}
        self._spool: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self._end = 0
        self.waiting: set[str] = set()  # jobs submitted before that hold samples of this pass
        # Set once --max-cost stopped submissions: what a request that would be collected
        # fails with instead (`budget_exhausted`).
        self.refuse: Callable[[], RequestFailed] | None = None

    def route(self, plan: Plan) -> None:
        """Return when the plan's missing samples are to be sent now (a fallback to sync);
        otherwise raise `RequestFailed`: `batch_pending` (collected for a batch), or the
        batch's own reason once batches failed them more than --max-retries times."""
        todo = sorted(plan.owned)
        held = self.ledger.open_keys([plan.keys[i] for i in todo])
        if held:  # a batch already asks for these: wait for it, never ask twice
            self.waiting.update(held.values())
            todo = [i for i in todo if plan.keys[i] not in held]
            if not todo:
                raise RequestFailed("waiting for a provider batch", "batch_pending")
        keys = tuple(plan.keys[i] for i in todo)
        failures = self.ledger.failures(keys)
        if failures:
            attempts, error = max(failures.values())
            if attempts >= FINAL:  # refused with a 4xx: a new batch would be refused again
                raise RequestFailed(error)
            if attempts > self.max_retries:
                tries = "1 batch" if attempts == 1 else f"{attempts} batches"
                raise RequestFailed(f"{error} (gave up after {tries})")
            if self.config.fallback == "sync":
                return
        if self.refuse is not None:
            raise self.refuse()
        body = plan.call.body(self.api, len(todo), todo[0])
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode() + b"".join(keys))
        custom_id = f"lemagen-{digest.hexdigest()[:32]}"
        endpoint = batch_endpoint(self.api)
        line = json.dumps(
            {"custom_id": custom_id, "method": "POST", "url": endpoint, "body": body},
            ensure_ascii=False,
        )
        if custom_id not in self.requests:
            data = line.encode() + b"\n"
            self._spool.seek(self._end)
            self._spool.write(data)
            self.requests[custom_id] = Collected(
                custom_id, plan.call.model, endpoint, keys, self._end, len(data)
            )
            self._end += len(data)
        raise RequestFailed("waiting for a provider batch", "batch_pending")

    def request(self, collected: Collected) -> BatchRequest:
        """A collected line, read back from the spool."""
        self._spool.seek(collected.offset)
        line = self._spool.read(collected.size).decode().rstrip("\n")
        return BatchRequest(
            collected.custom_id, collected.model, collected.endpoint, line, collected.keys
        )

    def close(self) -> None:
        self._spool.close()
