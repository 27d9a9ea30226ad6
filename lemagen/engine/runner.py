"""Stream rows through the engine: read lazily, keep a bounded number in flight, hand each
row back as soon as its calls finish (completion order, not input order)."""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from lemagen.engine.calls import Call
from lemagen.engine.engine import Engine, Result

T = TypeVar("T")
# Rows with nothing to send are handed back in groups of at most this many items (an item
# may itself stand for many rows: a chunk of rows a stage wrote from its row book).
CALLLESS_GROUP = 8
ALIVE_CHECK = 1.0  # seconds between looks at the engine thread while waiting


def run_rows(
    engine: Engine,
    rows: Iterable[T],
    calls_for: Callable[[T], list[Call]],
    *,
    max_pending: int,
    on_wait: Callable[[], None] | None = None,
    on_unread: Callable[[T | None], None] | None = None,
) -> Iterator[tuple[T, list[Result]]]:
    """`run_batches`, one row at a time."""
    for batch in run_batches(
        engine, rows, calls_for, max_pending=max_pending, on_wait=on_wait, on_unread=on_unread
    ):
        yield from batch


def run_batches(
    engine: Engine,
    rows: Iterable[T],
    calls_for: Callable[[T], list[Call]],
    *,
    max_pending: int,
    on_wait: Callable[[], None] | None = None,
    on_unread: Callable[[T | None], None] | None = None,
) -> Iterator[list[tuple[T, list[Result]]]]:
    """Yield `(row, results)` for every row, results in the order of `calls_for(row)`, in
    lists of the rows that finished together (so a caller can look up what they need in one
    go); rows with no calls come back at once, together, with `[]`.

    At most `max_pending` rows are in flight, so memory does not grow with the input.
    Reading stops when the engine stops (budget, store): the rows left are handed to
    `on_unread`, one by one (`_drain`), so a caller accounts for every row. An exception
    from reading `rows` (a bad input row) is raised only after every row already sent has
    been yielded, so nothing paid for is lost; an `EndpointError` from the engine is raised
    at once. `on_wait` runs before each wait for the engine (the caller flushes its output
    there).
    """
    done: queue.SimpleQueue[tuple[T, list[Result] | BaseException]] = queue.SimpleQueue()
    source = iter(rows)
    pending = 0
    exhausted = False
    read_error: Exception | None = None
    while True:
        # Read up to the limit and hand the new rows over in one batch (one wake-up).
        batch: list[tuple[T, list[Call]]] = []
        callless: list[tuple[T, list[Result]]] = []  # rows with nothing to send
        while (
            not exhausted
            and pending + len(batch) < max_pending
            and len(callless) < CALLLESS_GROUP
            and not engine.stopped
        ):
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
            if calls:
                batch.append((row, calls))
            else:
                callless.append((row, []))
        if batch:
            rows_sent = [row for row, _ in batch]

            def deliver(
                index: int,
                outcome: list[Result] | BaseException,
                rows_sent: list[T] = rows_sent,
            ) -> None:
                done.put((rows_sent[index], outcome))

            engine.submit_many([calls for _, calls in batch], deliver)
            pending += len(batch)
        if callless:
            yield callless
            if len(callless) >= CALLLESS_GROUP and not exhausted and not engine.stopped:
                if pending == 0 and on_wait is not None:  # reading more may wait
                    on_wait()
                continue  # a full group: read on before waiting, as for a single row
        if pending == 0:
            if not exhausted and not engine.stopped:
                if on_wait is not None:  # reading more may wait: what is written goes out
                    on_wait()
                continue
            if not exhausted and on_unread is not None:
                _drain(source, on_unread)
            break
        # Wait for one row, then take every other row already finished.
        try:
            finished = [done.get_nowait()]
        except queue.Empty:
            if on_wait is not None:
                on_wait()
            finished = [_wait(engine, done)]
        while True:
            try:
                finished.append(done.get_nowait())
            except queue.Empty:
                break
        pending -= len(finished)
        ready: list[tuple[T, list[Result]]] = []
        for row, outcome in finished:
            if isinstance(outcome, BaseException):
                if ready:
                    yield ready
                raise outcome
            ready.append((row, outcome))
        yield ready
    if read_error is not None:
        raise read_error


def _drain(source: Iterator[T], on_unread: Callable[[T | None], None]) -> None:
    """Hand every row left in `source` to `on_unread`. A row that cannot be read (without
    --skip-bad-rows) ends the count there: its reader raised, and cannot go on."""
    while True:
        try:
            row = next(source)
        except StopIteration:
            return
        except Exception:  # noqa: BLE001 - a bad row among those not read is not an error
            return
        on_unread(row)


def _wait(engine: Engine, done: queue.SimpleQueue[T]) -> T:
    """The next finished row; never waits on an engine thread that has died."""
    while True:
        try:
            return done.get(timeout=ALIVE_CHECK)
        except queue.Empty:
            engine.check_alive()
