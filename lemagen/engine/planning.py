"""What to send for a call: the samples the request store already holds are read, the ones
another call of this run is already fetching are waited for, and only the rest are sent.

A `Plan` is one call after that check. The `Planner` keeps the in-flight table (store key ->
future of the sample) that joins identical calls of one run: a key stays in it until its
sample is durable in the store (or, without a store, until it arrived), so a call planned
meanwhile finds it either in flight or in the store, never in neither.

Other processes on the same store are joined through its leases (`Planner.claim`, just
before sending): a sample another live process is fetching is waited for, not sent again.
Alone on the store, nothing is leased until another process appears (`start_leasing`).
"""

from __future__ import annotations

import asyncio
import collections
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from lemagen.engine.calls import Call, Choice, Generation, RequestFailed
from lemagen.engine.store import RequestStore, StoredSample, StoreUnwritable

Outcome = StoredSample | RequestFailed | None  # None: the sender got no sample for it


@dataclass
class Plan:
    """One call, after the store and the calls in flight were consulted; sample indices map
    to what is already there, what another call is fetching, and what this call fetches."""

    call: Call
    keys: list[bytes]
    samples: dict[int, StoredSample] = field(default_factory=dict)  # already there
    waits: dict[int, asyncio.Future[Outcome]] = field(default_factory=dict)  # fetched elsewhere
    owned: dict[int, asyncio.Future[Outcome]] = field(default_factory=dict)  # to fetch


class Planner:
    """Plans calls against the store and the in-flight table; runs on the engine's loop."""

    def __init__(
        self,
        api: str,
        store: RequestStore | None,
        new_future: Callable[[], asyncio.Future[Outcome]],
    ) -> None:
        self.api = api
        self.store = store
        self._new_future = new_future
        self.pending: dict[bytes, asyncio.Future[Outcome]] = {}
        self._durable: collections.deque[bytes] = collections.deque()
        self._claims: list[
            tuple[list[bytes], asyncio.Future[tuple[dict[bytes, StoredSample], set[bytes]]]]
        ] = []
        self._claimer: asyncio.Future[None] | None = None

    def stored_count(self, call: Call) -> int:
        """How many of `call`'s samples the store holds."""
        if self.store is None:
            return 0
        return len(self.store.get_many(call.keys(self.api)))

    def plan_rows(self, rows: Sequence[Sequence[Call]]) -> tuple[list[list[Plan]], int]:
        """Plan every call of a batch: the store lookups in a few queries, identical calls
        (in flight, or earlier in this batch) joined to the one that sends them. Returns the
        plans, row by row, and how many samples came from the store."""
        self._forget_durable()
        keyed = [[(call, call.keys(self.api)) for call in calls] for calls in rows]
        found: dict[bytes, StoredSample] = {}
        if self.store is not None:
            pending = self.pending
            lookup = [k for row in keyed for _, keys in row for k in keys if k not in pending]
            found = self.store.get_many(lookup)
        cached = 0
        plans = []
        for row in keyed:
            row_plans = []
            for call, keys in row:
                plan = self._plan(call, keys, found)
                cached += len(plan.samples)
                row_plans.append(plan)
            plans.append(row_plans)
        return plans, cached

    def _plan(self, call: Call, keys: list[bytes], found: dict[bytes, StoredSample]) -> Plan:
        plan = Plan(call, keys)
        pending = self.pending
        for i, key in enumerate(keys):
            hit = found.get(key)
            if hit is not None:
                plan.samples[i] = hit
                continue
            waiting = pending.get(key)
            if waiting is not None:
                plan.waits[i] = waiting
            else:
                owned = self._new_future()
                pending[key] = owned
                plan.owned[i] = owned
        return plan

    async def claim(self, plan: Plan, todo: list[int]) -> tuple[list[int], list[int]]:
        """Lease samples `todo` in the store before sending them. Those another process
        stored meanwhile are taken as if fetched; returns the indices leased to this process
        (to send) and those another live process is fetching (to wait for). Raises
        `RequestFailed` (store_unwritable) when the store cannot be written: nothing more is
        sent then, since it could not be stored."""
        if self.store is None or not todo or not self.store.leasing:
            return todo, []
        keys = [plan.keys[i] for i in todo]
        try:
            stored, theirs = await self._claim(keys)
        except StoreUnwritable as exc:
            raise RequestFailed(f"not sent: {exc}", "store_unwritable") from None
        mine, waiting = [], []
        for i, key in zip(todo, keys, strict=True):
            sample = stored.get(key)
            if sample is not None:
                plan.samples[i] = sample
                plan.owned[i].set_result(sample)
                self.pending.pop(key, None)
            elif key in theirs:
                waiting.append(i)
            else:
                mine.append(i)
        return mine, waiting

    async def _claim(self, keys: list[bytes]) -> tuple[dict[bytes, StoredSample], set[bytes]]:
        """Claims made while one is being written go together in the next transaction, in
        the order they were made."""
        future: asyncio.Future[tuple[dict[bytes, StoredSample], set[bytes]]]
        future = asyncio.get_running_loop().create_future()
        self._claims.append((keys, future))
        if self._claimer is None:
            self._claimer = asyncio.ensure_future(self._claim_loop())
        return await future

    async def _claim_loop(self) -> None:
        assert self.store is not None
        try:
            while self._claims:
                batch, self._claims = self._claims, []
                try:
                    stored, theirs = await asyncio.to_thread(
                        self.store.claim, [key for keys, _ in batch for key in keys]
                    )
                except StoreUnwritable as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(StoreUnwritable(str(exc)))
                    continue
                busy = set(theirs)
                for _, future in batch:
                    if not future.done():
                        future.set_result((stored, busy))
        finally:
            self._claimer = None

    def start_leasing(self) -> None:
        """Another process came to the store: lease what this one is fetching, and every
        sample before sending it from now on."""
        if self.store is not None and not self.store.leasing:
            self.store.publish(list(self.pending))

    def fulfil(self, plan: Plan, todo: list[int], got: Sequence[StoredSample]) -> list[int]:
        """Samples `got` arrived for the first indices of `todo`: hand them to the calls
        waiting for them and to the store. Returns the indices still to fetch."""
        keys, samples, owned = plan.keys, plan.samples, plan.owned
        rows = []
        for i, sample in zip(todo, got, strict=False):
            samples[i] = sample
            owned[i].set_result(sample)
            rows.append((keys[i], sample))
        self._persist(rows)
        return todo[len(got) :]

    def abandon(self, plan: Plan, todo: list[int], outcome: RequestFailed | None) -> None:
        """Samples `todo` will not be fetched (the call failed, or the server returned too
        few choices): the calls waiting for them get `outcome`, and this process's leases of
        them are dropped."""
        for i in todo:
            future = plan.owned[i]
            if not future.done():
                future.set_result(outcome)
            self.pending.pop(plan.keys[i], None)
        if self.store is not None:
            self.store.release([plan.keys[i] for i in todo])

    def _persist(self, rows: list[tuple[bytes, StoredSample]]) -> None:
        keys = [key for key, _ in rows]
        if self.store is None:
            for key in keys:
                self.pending.pop(key, None)
            return
        # Once durable, the writer thread queues the keys; the loop drops them from pending at
        # its next plan_rows or _persist (no cross-thread wake-up per commit).
        self.store.put(rows, functools.partial(self._durable.extend, keys))
        self._forget_durable()

    def _forget_durable(self) -> None:
        durable = self._durable
        pending = self.pending
        while durable:
            pending.pop(durable.popleft(), None)


async def wait_for_others(plan: Plan) -> None:
    """Collect the samples other calls fetched for this one; their failure is this call's."""
    for i, future in plan.waits.items():
        got = await asyncio.shield(future)
        if isinstance(got, RequestFailed):
            raise RequestFailed(str(got), got.reason)
        if got is not None:
            plan.samples[i] = got


def generation(samples: dict[int, StoredSample]) -> Generation:
    """The call's result: choices in sample order; usage counted once per HTTP request
    (`cached_tokens` are part of `prompt_tokens`, `reasoning_tokens` of `completion_tokens`)."""
    out = Generation()
    seen: set[str] = set()
    prompt = completion = cached = reasoning = 0
    for i in sorted(samples):
        sample = samples[i]
        out.choices.append(Choice(sample.text, sample.finish_reason))
        out.sources.append(sample.request)
        if sample.request not in seen:
            seen.add(sample.request)
            prompt += sample.prompt_tokens
            completion += sample.completion_tokens
            cached += sample.cached_tokens
            reasoning += sample.reasoning_tokens
    out.usage = {"prompt_tokens": prompt, "completion_tokens": completion}
    # Parts of those counts, only when the server reported them (records stay as they were).
    if cached:
        out.usage["cached_tokens"] = cached
    if reasoning:
        out.usage["reasoning_tokens"] = reasoning
    out.requests = len(seen)
    return out
