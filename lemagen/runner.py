"""Run blocking calls concurrently over a stream, keeping input order and bounded memory."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def ordered_map(
    fn: Callable[[T], R], items: Iterable[T], *, concurrency: int
) -> Iterator[tuple[T, R]]:
    """Yield `(item, fn(item))` in input order, with at most `concurrency` calls running and at
    most `2 * concurrency` items read ahead.

    An exception from `fn` is raised at its position and the calls not yet started are
    cancelled. An exception from reading `items` (a bad input row) is raised only after the
    calls already sent have finished and been yielded, so nothing already paid for is lost.
    """
    workers = max(1, concurrency)
    window: deque[tuple[T, Future[R]]] = deque()
    source = iter(items)
    read_error: Exception | None = None
    with ThreadPoolExecutor(max_workers=workers) as pool:
        try:
            while True:
                try:
                    item = next(source)
                except StopIteration:
                    break
                except Exception as exc:  # noqa: BLE001 - re-raised below, after the drain
                    read_error = exc
                    break
                window.append((item, pool.submit(fn, item)))
                while len(window) >= 2 * workers:
                    head, future = window.popleft()
                    yield head, future.result()
            while window:
                head, future = window.popleft()
                yield head, future.result()
        finally:
            for _, future in window:
                future.cancel()
    if read_error is not None:
        raise read_error
