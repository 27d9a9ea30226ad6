"""What every stage is: an object that reads its input rows as typed records, runs over them,
and yields what to keep and what to set aside (with a reason), counting what its summary
prints. The CLI builds a stage from options and drives it with one loop (`lemagen.cli.run`).

Stages that call a model (`EngineStage`) also own an engine and a grader for the run, can
estimate a run without sending anything (`--dry-run`), and end with an exit status (budget
reached, requests failed).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar, get_args

import msgspec

from lemagen._version import __version__
from lemagen.engine import (
    Call,
    Choice,
    Engine,
    EngineConfig,
    Generation,
    RequestShape,
    Sampling,
    run_batches,
    run_rows,
)
from lemagen.engine.estimate import estimate
from lemagen.errors import RowsFailed
from lemagen.math import grading
from lemagen.math.grading import Grader, checker_info
from lemagen.records import Provenance
from lemagen.records.common import Task
from lemagen.records.rows import Encoded, Rejects, SetAside, ToDict
from lemagen.stage.rowbook import ROWS_VERSION, Kept, RowBook, code_digest, row_key
from lemagen.stage.templates import Template
from lemagen.terms import Command, StageName

In = TypeVar("In")
Output = ToDict | SetAside | Encoded
REPLAY_CHUNK = 500  # input rows looked up in the row book at once


class Replayed(msgspec.Struct, frozen=True):
    """Input rows the row book knew (of one chunk, handed on as one item): what they wrote,
    and how many samples they were made of."""

    kept: list[Kept]
    samples: int


def rows_in(batch: list[tuple[Any, list[Any]]]) -> int:
    """How many input rows a batch from `sent_batches` stands for (progress)."""
    return sum(len(row.kept) if type(row) is Replayed else 1 for row, _ in batch)


def _nothing() -> None:
    return None


@dataclass
class Hooks:
    """What the command loop wants to hear while a stage runs."""

    on_wait: Callable[[], None] = _nothing  # about to wait for the engine: flush output
    on_row: Callable[[int], None] = lambda n: None  # n input rows done (progress)
    # An input row not read (the engine stopped first); None: one that could not be read.
    on_unread: Callable[[Any], None] = lambda row: None


class Stage(ABC, Generic[In]):
    """One stage: `read` turns an input row into its typed record (raising a `file:line`
    `InputError` for a bad one), `run` yields records to write and `SetAside`s, `finish` what
    waits for the whole input, `summary` the line printed on stderr."""

    name: Command
    unit = "row"  # what the progress bar counts

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    @abstractmethod
    def read(self, data: dict[str, Any], where: str) -> In: ...

    def read_fast(self, raw: bytes) -> In | None:
        """The row of a raw line lemagen wrote itself, read in one pass (`records.fast`), or
        None to have `read` read it. Must give what `read` gives, and count the same."""
        return None

    @abstractmethod
    def run(self, rows: Iterable[In], hooks: Hooks) -> Iterator[Output]: ...

    def start(self, stack: ExitStack) -> None:
        """Enter what the run needs (a grader, an engine) into `stack`."""

    def finish(self) -> Iterator[Output]:
        return iter(())

    @abstractmethod
    def summary(self, rejects: Rejects) -> str: ...

    def check_exit(self, rows_unread: int = 0) -> None:
        """Raise the error that sets the exit status, after the summary is printed
        (`rows_unread`: input rows the run did not read)."""


def fmt_counts(counts: Counter[str], keys: list[str]) -> str:
    """`3 problems, 1 no answer`: the first key always, the others when not zero."""
    return ", ".join(
        f"{counts[k]} {k.replace('_', ' ')}" for k in keys if counts[k] or k in keys[:1]
    )


def by_reason(counts: Counter[str]) -> str:
    """`reason 3, other 1`, most common first, or `none`."""
    return ", ".join(f"{k} {v}" for k, v in counts.most_common()) or "none"


class EngineStage(Stage[In]):
    """A stage whose rows become model calls, sent by the request engine.

    A stage that gives `replay_options` keeps what each finished row wrote in the row book
    (`stage.rowbook`) when the command loop asks for it (`keep_rows`): a re-run writes a
    kept row's lines again instead of rebuilding them. Its `run` goes through `made_rows`.
    """

    # Reasons that are not kept: a re-run must try the row again.
    NOT_KEPT: ClassVar[frozenset[str]] = frozenset(
        {"request_failed", "no_choices", "budget_exhausted", "store_unwritable", "check_timeout"}
    )

    def __init__(self, config: EngineConfig, *, check_timeout: float, max_pending: int) -> None:
        super().__init__()
        self.config = config
        self._engine: Engine | None = None
        self.check_timeout = check_timeout
        self.max_pending = max_pending
        self.grader: Grader | None = None
        self.keep_rows = False  # set by the command loop: output goes out as encoded lines
        self._rows = RowBook(None)
        self._options = b""
        # id(row) -> its key in the row book, its calls and their identities
        self._fresh: dict[int, tuple[bytes, list[Call], list[bytes]]] = {}

    def replay_options(self) -> dict[str, Any] | None:
        """Everything besides the calls that changes what a row writes, or None: this stage
        does not keep rows."""
        return None

    @abstractmethod
    def calls(self, row: In) -> list[Call]:
        """The calls one row needs (none: the row passes through)."""

    @property
    def engine(self) -> Engine:
        """The run's engine (its request store opens here: an unusable one is a one-line
        error)."""
        if self._engine is None:
            self._engine = Engine(self.config)
        return self._engine

    def start(self, stack: ExitStack) -> None:
        engine = self.engine
        stack.callback(engine.close)
        self.grader = stack.enter_context(Grader(self.check_timeout))
        stack.enter_context(engine)
        options = self.replay_options() if self.keep_rows else None
        if options is not None and engine.has_store and self.config.batch is None:
            self._rows = RowBook(self.config.cache_dir)
            stack.callback(self._rows.close)
            options |= {
                "grader": grading.grader_digest(),
                "checkers": [checker_info(task) for task in get_args(Task)],
                "lemagen": __version__,
                "code": code_digest(),
                "rowbook": ROWS_VERSION,
            }
            self._options = msgspec.msgpack.encode(options)

    def sent(self, rows: Iterable[In], hooks: Hooks) -> Iterator[tuple[In, list[Any]]]:
        """`(row, results)` as rows finish."""
        return run_rows(
            self.engine,
            rows,
            self.calls,
            max_pending=self.max_pending,
            on_wait=hooks.on_wait,
            on_unread=hooks.on_unread,
        )

    def sent_batches(
        self, rows: Iterable[In | Replayed], hooks: Hooks
    ) -> Iterator[list[tuple[Any, list[Any]]]]:
        """`(row, results)` as rows finish, in lists of the rows that finished together; a
        `Replayed` row comes back as it went in, with no results."""

        def unread(row: Any) -> None:
            if type(row) is Replayed:  # rows the row book knew: written again by a re-run
                for _ in row.kept:
                    hooks.on_unread(None)
            else:
                hooks.on_unread(row)

        return run_batches(
            self.engine,
            rows,
            self._calls_of,
            max_pending=self.max_pending,
            on_wait=hooks.on_wait,
            on_unread=unread,
        )

    def _calls_of(self, row: Any) -> list[Call]:
        if type(row) is Replayed:
            return []
        fresh = self._fresh.get(id(row))
        return fresh[1] if fresh is not None else self.calls(row)

    # ------------------------------------------------------------------ kept rows

    def made_rows(
        self,
        rows: Iterable[In],
        hooks: Hooks,
        make: Callable[[In, list[Any]], tuple[list[Output], bool]],
        after_batch: Callable[[], None] = _nothing,
    ) -> Iterator[Output]:
        """Every row's output as rows finish: a row the row book kept, as it was written; a
        new one as `make(row, results)` builds it (its output, and whether the row is
        complete, so that it can be kept). `after_batch` runs after each batch of rows."""
        for batch in self.sent_batches(self.replaying(rows), hooks):
            for row, results in batch:
                if type(row) is Replayed:
                    yield from self.replay(row)
                    continue
                before = self.counted()
                out, complete = make(row, results)
                yield from self.finished(row, results, out, before, keep=complete)
            hooks.on_row(rows_in(batch))
            after_batch()

    def replaying(self, rows: Iterable[In]) -> Iterator[In | Replayed]:
        """`rows`, each one the row book knows (and whose samples the store still holds
        under the same requests) replaced by a `Replayed`. Rows are looked up in chunks of
        at most `max_pending` (the rows the engine reads ahead anyway)."""
        if not self._rows.on:
            yield from rows
            return
        source = iter(rows)
        size = max(1, min(REPLAY_CHUNK, self.max_pending))
        while True:
            chunk: list[In] = []
            error: Exception | None = None
            try:
                for row in source:
                    chunk.append(row)
                    if len(chunk) >= size:
                        break
            except Exception as exc:  # noqa: BLE001 - raised after the rows before it
                error = exc
            yield from self._replayed(chunk)
            if error is not None:
                raise error
            if len(chunk) < size:
                return

    def _replayed(self, chunk: list[In]) -> Iterator[In | Replayed]:
        api = self.config.api
        keyed = []
        for row in chunk:
            calls = self.calls(row)
            identities = [call.identity(api) for call in calls]
            key = row_key(self._options, self.row_bytes(row), identities)
            keyed.append((row, calls, key, identities))
        found = self._rows.get_many([key for _, calls, key, _ in keyed if calls])
        stored = self.engine.requests_of([k for kept in found.values() for k in kept.keys])
        hits: list[Kept] = []
        misses = []
        for row, calls, key, identities in keyed:
            kept = found.get(key)
            if kept is not None and [stored.get(k) for k in kept.keys] == kept.sources:
                hits.append(kept)
            else:
                self._fresh[id(row)] = (key, calls, identities)
                misses.append(row)
        # Kept rows first: they cost nothing, and a run that stops reading (--max-cost)
        # still writes them.
        if hits:
            yield Replayed(hits, sum(len(kept.sources) for kept in hits))
        yield from misses

    def counted(self) -> dict[str, int] | None:
        """The counts before a new row is made, when the row book keeps rows (else None)."""
        return dict(self.counts) if self._rows.on else None  # a dict: Counter.copy is slow

    def row_bytes(self, row: In) -> bytes:
        """The row as read, for its key in the row book."""
        return msgspec.msgpack.encode(row)

    def replay(self, row: Replayed) -> list[Output]:
        """Kept rows' lines, their counts added to this run's."""
        counts = self.counts
        lines: list[Output] = []
        for kept in row.kept:
            for name, count in kept.counts.items():
                counts[name] += count
            lines.extend(kept.lines)
        self.engine.served_from_store(row.samples)
        return lines

    def finished(
        self,
        row: In,
        results: list[Any],
        out: list[Output],
        before: dict[str, int] | None,
        *,
        keep: bool = True,
    ) -> list[Output]:
        """A new row's output (`before`: the counts before it was made, from `counted`):
        when the command writes lines, encoded, and kept in the row book when the row is
        complete (every call answered, `keep`); a row with no calls is not kept (it costs
        nothing to make again)."""
        fresh = self._fresh.pop(id(row), None)
        if not self.keep_rows:
            return out
        lines = [item if isinstance(item, Encoded) else Encoded.of(item) for item in out]
        if fresh is None or before is None or not keep or not results:
            return list(lines)
        counts = {  # what this row added (Counter's `-` costs several times more per row)
            name: count - before.get(name, 0)
            for name, count in self.counts.items()
            if count > before.get(name, 0)
        }
        if self.NOT_KEPT.intersection(counts) or any(
            not isinstance(result, Generation) for result in results
        ):
            return list(lines)
        key, calls, identities = fresh
        api = self.config.api
        keys = [
            k for call, ident in zip(calls, identities, strict=True) for k in call.keys(api, ident)
        ]
        sources = [source for result in results for source in result.sources]
        self._rows.add(key, Kept(keys, sources, lines, counts))
        return list(lines)

    def dry_run(self, rows: Iterable[In], emit: Callable[[dict[str, Any]], None]) -> str:
        """What a run would send, given what the request store already holds: each request
        to `emit`, the counts and cost returned."""
        try:
            return estimate(self.engine, map(self.calls, rows), emit).describe(self.name)
        finally:
            self.engine.close()

    def requests_summary(self) -> str:
        """The engine's part of the summary line (`Engine.summary`)."""
        return self.engine.summary()

    def check_exit(self, rows_unread: int = 0) -> None:
        """The engine's own outcome first (the request store could not be written, exit 6;
        the budget ran out, exit 5), then rows that failed (exit 4)."""
        stopped = self.engine.outcome(
            set_aside=self.counts["store_unwritable"], rows_unread=rows_unread
        )
        if stopped is not None:
            raise stopped
        failed = self.counts["request_failed"] + self.counts["no_choices"]
        if failed:
            raise RowsFailed(
                f"{failed} requests failed (see --rejects); "
                "re-running the same command retries only those"
            )


class PromptedStage(EngineStage[In]):
    """An engine stage that asks one model with one prompt file (`variables`: what the
    prompt must use): analyze, art ask, crosscheck, inject --model."""

    variables: ClassVar[set[str]]

    def __init__(
        self,
        config: EngineConfig,
        *,
        model: str,
        template: Template,
        sampling: Sampling,
        check_timeout: float,
        max_pending: int,
        request: RequestShape | None = None,
    ) -> None:
        super().__init__(config, check_timeout=check_timeout, max_pending=max_pending)
        template.check(self.variables)
        self.api = config.api
        self.model = model
        self.template = template
        self.sampling = sampling
        self.request = request or RequestShape()


def one_call_provenance(
    stage: StageName,
    *,
    model: str,
    api: str,
    sampling: dict[str, Any],
    template: Template,
    choice: Choice,
    generation: Generation,
    request: RequestShape,
    checker: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Provenance:
    """The `meta` of a record made from one choice of one call (analyze, art ask, a
    teacher's mistake): model, parameters, prompt and the call's usage."""
    return Provenance(
        stage=stage,
        model=model,
        api=api,
        **sampling,
        n=1,
        sample_index=0,
        prompt=template.name,
        prompt_sha256=template.sha256,
        finish_reason=choice.finish_reason,
        usage=dict(generation.usage),
        requests=generation.requests,
        choices_in_usage=len(generation.choices),
        checker=checker or {},
        **request.meta(),
        extra=extra or {},
    )
