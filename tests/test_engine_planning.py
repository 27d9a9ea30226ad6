"""Planning on its own: what the request store already holds is not sent, identical calls
in one run are sent once (the others wait for that one), and a failure reaches every call
that waited for it."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from lemagen.engine.calls import Call, RequestFailed, Sampling, max_tokens_param
from lemagen.engine.planning import Planner, generation, wait_for_others
from lemagen.engine.store import RequestStore, StoredSample, default_cache_dir


def call(prompt: str = "2 + 2?", n: int = 2, temperature: float = 0.7) -> Call:
    return Call("m", prompt, n, Sampling(temperature=temperature))


def sample(text: str, request: str = "r1", prompt: int = 5, completion: int = 3) -> StoredSample:
    return StoredSample(text, "stop", request, prompt, completion)


def on_loop(
    body: Callable[[Planner], Coroutine[Any, Any, None]], store: RequestStore | None
) -> None:
    """Run `body` with a planner on a fresh event loop."""

    async def main() -> None:
        await body(Planner("chat", store, asyncio.get_running_loop().create_future))

    asyncio.run(main())


async def settle() -> None:
    """Let done callbacks and other tasks run."""
    for _ in range(3):
        await asyncio.sleep(0)


def test_identical_calls_are_fetched_once_and_shared() -> None:
    async def body(planner: Planner) -> None:
        rows = [[call()], [call(), call("other")], [call(n=3)]]
        plans, cached = planner.plan_rows(rows)
        assert cached == 0
        (first,), (twin, other), (bigger,) = plans
        assert sorted(first.owned) == [0, 1]
        assert (first.waits, twin.owned, sorted(twin.waits)) == ({}, {}, [0, 1])
        assert sorted(other.owned) == [0, 1]
        assert sorted(bigger.waits) == [0, 1]  # -n 3: samples 0 and 1 are the same requests
        assert sorted(bigger.owned) == [2]
        assert len(planner.pending) == 2 + 2 + 1

        remaining = planner.fulfil(first, [0, 1], [sample("a"), sample("b")])
        assert remaining == []
        waiter = asyncio.ensure_future(wait_for_others(twin))
        await settle()
        assert waiter.done()
        assert [c.text for c in generation(twin.samples).choices] == ["a", "b"]
        planner.abandon(first, remaining, None)

    on_loop(body, None)


def test_without_a_store_a_key_leaves_the_in_flight_table_on_arrival() -> None:
    async def body(planner: Planner) -> None:
        ((first,),), _ = planner.plan_rows([[call()]])
        planner.fulfil(first, [0, 1], [sample("a"), sample("b")])
        assert planner.pending == {}
        ((again,),), cached = planner.plan_rows([[call()]])
        assert cached == 0
        assert sorted(again.owned) == [0, 1]  # nothing remembers it: asked for again

    on_loop(body, None)


def test_the_store_answers_what_it_holds(tmp_path: Path) -> None:
    store = RequestStore(tmp_path)

    async def body(planner: Planner) -> None:
        ((first,),), _ = planner.plan_rows([[call()]])
        planner.fulfil(first, [0], [sample("a")])  # the server returned one choice of two
        planner.abandon(first, [1], None)
        assert list(planner.pending) == [first.keys[0]]  # until durable

    on_loop(body, store)
    store.close()  # commits

    store = RequestStore(tmp_path)
    try:

        async def again(planner: Planner) -> None:
            assert planner.stored_count(call()) == 1
            ((plan,),), cached = planner.plan_rows([[call(n=4)]])
            assert cached == 1
            assert plan.samples == {0: sample("a")}
            assert sorted(plan.owned) == [1, 2, 3]
            ((other,),), cached = planner.plan_rows([[call(temperature=0.9)]])
            assert (cached, sorted(other.owned)) == (0, [0, 1])  # another identity

        on_loop(again, store)
    finally:
        store.close()


def test_a_durable_key_is_dropped_from_the_in_flight_table(tmp_path: Path) -> None:
    store = RequestStore(tmp_path)
    try:

        async def body(planner: Planner) -> None:
            ((first,),), _ = planner.plan_rows([[call(n=1)]])
            planner.fulfil(first, [0], [sample("a")])
            deadline = asyncio.get_running_loop().time() + 30
            while planner.pending and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.005)
                planner.plan_rows([])  # the loop drops durable keys when it plans
            assert planner.pending == {}
            ((plan,),), cached = planner.plan_rows([[call(n=1)]])
            assert (cached, plan.samples) == (1, {0: sample("a")})

        on_loop(body, store)
    finally:
        store.close()


def test_a_failure_reaches_every_call_waiting_for_it() -> None:
    async def body(planner: Planner) -> None:
        (first,), (twin,) = planner.plan_rows([[call()], [call()]])[0]
        waiter = asyncio.ensure_future(wait_for_others(twin))
        planner.abandon(first, [0, 1], RequestFailed("HTTP 400: too long", "request_failed"))
        with pytest.raises(RequestFailed, match="HTTP 400: too long") as failed:
            await waiter
        assert failed.value.reason == "request_failed"
        assert planner.pending == {}  # a later call asks again

    on_loop(body, None)


def test_samples_never_returned_are_simply_missing_for_the_waiters() -> None:
    async def body(planner: Planner) -> None:
        (first,), (twin,) = planner.plan_rows([[call()], [call()]])[0]
        remaining = planner.fulfil(first, [0, 1], [sample("a")])
        assert remaining == [1]
        planner.abandon(first, remaining, None)
        await wait_for_others(twin)
        assert list(twin.samples) == [0]

    on_loop(body, None)


def test_generation_counts_usage_once_per_request() -> None:
    samples = {
        2: sample("c", request="r2", prompt=7, completion=4),
        0: sample("a", request="r1"),
        1: sample("b", request="r1"),
    }
    out = generation(samples)
    assert [c.text for c in out.choices] == ["a", "b", "c"]
    assert out.usage == {"prompt_tokens": 5 + 7, "completion_tokens": 3 + 4}
    assert out.requests == 2


def test_store_keys_are_stable_per_api_and_sample() -> None:
    """A store written by one version is read by the next, so a call's keys are pinned here
    (changing them needs a KEY_VERSION bump); they differ by API and by sample index."""
    full = Call(
        "m",
        "2 + 2?",
        2,
        Sampling(temperature=0.7, seed=3, stop=("END",)),
        extra={"top_k": 5},
        system="Be brief.",
    )
    chat = full.keys("chat")
    assert [k.hex()[:16] for k in chat] == ["e79d1a6d38e2ce42", "73c789e573bc29b5"]
    assert [k.hex()[:16] for k in full.keys("completion")] == [
        "f4ff696438e5b2a1",
        "324db005be28a068",
    ]


@pytest.mark.parametrize(
    ("model", "given", "param"),
    [
        ("gpt-4o", "auto", "max_tokens"),
        ("o3-mini", "auto", "max_completion_tokens"),
        ("openai/o3-mini", "auto", "max_completion_tokens"),  # a gateway's provider prefix
        ("org/GPT-5", "auto", "max_completion_tokens"),
        ("router/openai/o3-mini", "auto", "max_completion_tokens"),
        ("o3-mini", "max_tokens", "max_tokens"),  # given: used as is
    ],
)
def test_max_tokens_param(model: str, given: str, param: str) -> None:
    assert max_tokens_param(model, given) == param


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """LEMAGEN_CACHE_DIR, else the platform's user cache directory plus `lemagen`."""
    monkeypatch.delenv("LEMAGEN_CACHE_DIR", raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "lemagen"
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "local"))
    assert default_cache_dir() == tmp_path / "local" / "lemagen" / "Cache"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # what Path.home() reads here
    monkeypatch.delenv("LOCALAPPDATA")
    assert default_cache_dir() == tmp_path / "home" / "AppData" / "Local" / "lemagen" / "Cache"
    monkeypatch.setattr(sys, "platform", "darwin")
    assert default_cache_dir() == tmp_path / "home" / "Library" / "Caches" / "lemagen"
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "lemagen"
    monkeypatch.setenv("LEMAGEN_CACHE_DIR", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"
