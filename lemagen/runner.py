"""Stream rows through the engine: read lazily, keep a bounded number in flight, hand each
row back as soon as its calls finish (completion order, not input order)."""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from typing import TypeVar

from lemagen.engine import Engine, Result
from lemagen.llm import Call

T = TypeVar("T")


def run_rows(
    engine: Engine,
    rows: Iterable[T],
    calls_for: Callable[[T], list[Call]],
    *,
    max_pending: int,
) -> Iterator[tuple[T, list[Result]]]:
    """Yield `(row, results)` for every row, results in the order of `calls_for(row)`; a row
    with no calls comes back at once with `[]`.

    At most `max_pending` rows are in flight, so memory does not grow with the input. Reading
    stops when the engine stops (budget). An exception from reading `rows` (a bad input row)
    is raised only after every row already sent has been yielded, so nothing paid for is
    lost; an `EndpointError` from the engine is raised at once.
    """
    done: queue.SimpleQueue[tuple[T, Future[list[Result]]]] = queue.SimpleQueue()
    source = iter(rows)
    pending = 0
    exhausted = False
    read_error: Exception | None = None
    while True:
        while not exhausted and pending < max_pending and not engine.stopped:
            try:
                row = next(source)
            except StopIteration:
                exhausted = True
                break
            except Exception as exc:  # noqa: BLE001 - re-raised below, after the drain
                read_error = exc
                exhausted = True
                break
            calls = calls_for(row)
            if not calls:
                yield row, []
                continue
            future = engine.submit(calls)
            future.add_done_callback(lambda f, row=row: done.put((row, f)))  # type: ignore[misc]
            pending += 1
        if pending == 0:
            break
        row, future = done.get()
        pending -= 1
        yield row, future.result()
    if read_error is not None:
        raise read_error
