"""The one run loop: every command, every API function and every Ray batch runs a stage here.

`run(stage, source, sink)` reads the source's rows into the stage's typed records (bad rows set
aside with their reason, or a one-line error), runs the stage, hands what it keeps and what it
sets aside to the sink, and returns a `Report`: the stage's summary and counts, where every
input row went (read, set aside as unreadable, not read because the run stopped), and the
outcome: the `LemagenError` the run ends with after writing everything (requests failed for
good, budget reached, a store that could not be written, batches still running), or None.

The front ends differ only in their source and sink: the CLI reads files and writes JSONL or
Parquet (`lemagen.cli.running`), the Python API reads Python rows and keeps lists
(`lemagen.api.run`), `lemagen.ray` reads and writes Arrow batches.

`--batch` (`batch=True`) is a mode of this loop: the stage runs in passes over the input, each
on a fresh copy of the stage, its output held apart (`Sink.hold`). A pass collects the requests
whose samples the store lacks (`lemagen.engine.batching`); they are submitted as provider
batches and waited for (or the run ends with `BatchPending`), and the next pass finds them
stored. The first pass that collects nothing made exactly what a synchronous run makes: its
held output goes to the sink. `max_cost` holds there too: a batch whose worst case would pass
it is not submitted (what fits is), and the last pass sets the rest aside as
`budget_exhausted`.
"""

from __future__ import annotations

import copy
import itertools
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import IO, Any, Literal

import msgspec

from lemagen.errors import BatchPending, LemagenError, OutputFailed
from lemagen.records import Reject
from lemagen.records.rows import Encoded, Rejects, SetAside, ToDict
from lemagen.stage.base import EngineStage, Hooks, Stage

Read = Callable[[Stage[Any], Rejects], Iterator[Any]]
"""A source: the stage's typed rows of the input, read afresh on each call (a `--batch` run
reads its input once per pass); a bad row raises its one-line error, or is set aside in the
given `Rejects` (the source knows whether to skip bad rows)."""


@dataclass
class Report:
    """What a run did. `rows_read` input rows reached the stage (each made its records or was
    set aside), `bad_rows` could not be read (set aside as such), `rows_unread` were not read
    because the run stopped first (budget reached, store unwritable): a re-run reads them.
    `error` is the exit the run ends with after writing everything, else None."""

    summary: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    rows_read: int = 0
    bad_rows: int = 0
    rows_unread: int = 0
    error: LemagenError | None = None

    @property
    def exit_code(self) -> int:
        return 0 if self.error is None else self.error.exit_code

    @property
    def rows(self) -> int:
        """Every input row: read, unreadable or not read."""
        return self.rows_read + self.bad_rows + self.rows_unread

    def accounting(self) -> str:
        """`input rows: 20 = 14 read + 1 unreadable + 5 not read (the run stopped first)`."""
        text = f"input rows: {self.rows} = {self.rows_read} read"
        if self.bad_rows:
            text += f" + {self.bad_rows} unreadable (set aside)"
        if self.rows_unread:
            text += f" + {self.rows_unread} not read (the run stopped first; a re-run reads them)"
        return text


class Sink(ABC):
    """Where a run's output goes: kept records (typed, or lines the stage encoded), rows set
    aside (counted by reason in `rejects`), and input rows not read."""

    def __init__(self, rejects: Rejects) -> None:
        self.rejects = rejects
        self.unread = 0

    @abstractmethod
    def keep(self, item: ToDict | Encoded) -> None: ...

    def set_aside(self, item: SetAside | Reject | Encoded) -> None:
        if isinstance(item, Encoded):
            self.rejects.add_line(item)
        else:
            self.rejects.add(item)

    def not_read(self, row: Any) -> None:
        """An input row the run did not read (it stopped first)."""
        self.unread += 1

    def flush(self) -> None:  # noqa: B027 - most sinks have nothing to flush
        """The run is about to wait: what it wrote goes out."""

    def hold(self) -> HeldSink:
        """A sink that keeps a `--batch` pass's output apart until `release`: a spool file
        (the default), or `MemorySink` for a sink that holds its output in memory anyway."""
        return SpoolSink()

    def release(self, held: HeldSink) -> None:
        """A held pass's output, in the order it was made, to this sink."""
        held.replay(self)
        self.rejects.bad_rows += held.rejects.bad_rows


class HeldSink(Sink):
    """A `--batch` pass's output, held until the pass is known to be the last (`replay`)
    or not (`discard`). Rows set aside go through its `rejects` (bad input rows included),
    which hands them to `hold_aside`."""

    def __init__(self) -> None:
        super().__init__(_HeldRejects(self.hold_aside))

    @abstractmethod
    def hold_aside(self, item: SetAside | Reject | Encoded) -> None: ...

    @abstractmethod
    def replay(self, into: Sink) -> None:
        """Everything held, to `into`: kept records, rows set aside, rows not read."""

    def discard(self) -> None:
        """The held output is not wanted (another pass follows)."""


class SpoolSink(HeldSink):
    """A pass's output in a temporary file (a pass over 10^6 rows would not fit in memory),
    each line an `Encoded` as JSON (which holds no raw newline)."""

    def __init__(self) -> None:
        self._file: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed in replay
        super().__init__()

    def keep(self, item: ToDict | Encoded) -> None:
        self._write(item if isinstance(item, Encoded) else Encoded.of(item))

    def hold_aside(self, item: SetAside | Reject | Encoded) -> None:
        if isinstance(item, Reject):
            item = SetAside(item.reason, item.record, item.detail)
        self._write(item if isinstance(item, Encoded) else Encoded.of(item))

    def _write(self, item: Encoded) -> None:
        self._file.write(_ENCODE(item) + b"\n")

    def discard(self) -> None:
        self._file.close()

    def replay(self, into: Sink) -> None:
        with self._file:
            self._file.seek(0)
            for raw in self._file:
                item = _DECODE(raw)
                if item.reason is None:
                    into.keep(item)
                else:
                    into.set_aside(item)
        for _ in range(self.unread):  # counted only: a spool does not keep the rows
            into.not_read(None)


class MemorySink(HeldSink):
    """A pass's output as it came, in memory: for a sink that keeps its output in memory
    anyway (the Python API's lists, a Ray batch), so that typed records and the rows not read
    reach it as they are."""

    def __init__(self) -> None:
        self._held: list[tuple[Literal["keep", "aside", "unread"], Any]] = []
        super().__init__()

    def keep(self, item: ToDict | Encoded) -> None:
        self._held.append(("keep", item))

    def hold_aside(self, item: SetAside | Reject | Encoded) -> None:
        self._held.append(("aside", item))

    def not_read(self, row: Any) -> None:
        super().not_read(row)
        self._held.append(("unread", row))

    def replay(self, into: Sink) -> None:
        for what, item in self._held:
            if what == "keep":
                into.keep(item)
            elif what == "aside":
                into.set_aside(item)
            else:
                into.not_read(item)


class _HeldRejects(Rejects):
    """Rows set aside in a held pass: counted, and handed to the held sink."""

    def __init__(self, hold: Callable[[SetAside | Reject | Encoded], None]) -> None:
        super().__init__(None)
        self._hold = hold

    def add(self, item: SetAside | Reject) -> None:
        super().add(item)
        self._hold(item)

    def add_line(self, item: Encoded) -> None:
        super().add_line(item)
        self._hold(item)


_ENCODE = msgspec.json.Encoder().encode
_DECODE = msgspec.json.Decoder(Encoded).decode


def run(
    stage: Stage[Any],
    read: Read,
    sink: Sink,
    *,
    on_row: Callable[[int], None] | None = None,
    say: Callable[[str], None] | None = None,
    started: bool = False,
) -> Report:
    """Run `stage` over the rows `read` gives, into `sink`; see the module's docstring.
    `on_row(n)`: n more input rows done (progress); `say`: what a `--batch` run tells as it
    goes; `started`: the caller started the stage and keeps it for more runs (`lemagen.ray`
    maps one stage over many batches; not with `--batch`, whose passes start their own).
    Errors that stop a run before it can write anything more (bad input without skipping,
    an unusable endpoint, a broken prompt) are raised; the exits taken after writing
    everything are the report's `error`."""
    if isinstance(stage, EngineStage) and stage.config.batch is not None:
        assert not started, "a --batch run starts each pass's own copy of the stage"
        return _run_batched(stage, read, sink, on_row, say or _silent)
    return _run_pass(stage, read, sink, on_row, started=started)


def _silent(message: str) -> None:
    return None


def _run_pass(
    stage: Stage[Any],
    read: Read,
    sink: Sink,
    on_row: Callable[[int], None] | None,
    *,
    started: bool = False,
) -> Report:
    counted = _Counted()
    unread_before = sink.unread
    output_failed: OutputFailed | None = None
    with ExitStack() as stack:
        rows = counted.wrap(read(stage, sink.rejects))
        if not started:
            stage.start(stack)
        hooks = Hooks(on_wait=sink.flush, on_unread=sink.not_read)
        if on_row is not None:
            hooks.on_row = on_row
        try:
            for item in itertools.chain(stage.run(rows, hooks), stage.finish()):
                if isinstance(item, Encoded):  # a line the stage encoded, or one kept from a run
                    if item.reason is not None:
                        sink.set_aside(item)
                    else:
                        sink.keep(item)
                elif isinstance(item, SetAside):
                    sink.set_aside(item)
                else:
                    sink.keep(item)
            sink.flush()
        except OutputFailed as exc:
            if not isinstance(stage, EngineStage):
                raise
            stage.engine.finish_in_flight()  # what is paid for is stored before the exit
            output_failed = exc
    if output_failed is not None:  # the engine is closed: its store holds what it will
        assert isinstance(stage, EngineStage)
        outcome = stage.engine.in_flight_outcome()
        raise OutputFailed(f"{output_failed.message}; {outcome}") from None
    unread = sink.unread - unread_before
    report = Report(
        rows_read=counted.count - unread,
        bad_rows=sink.rejects.bad_rows,
        rows_unread=unread,
    )
    return _finish(stage, sink.rejects, report)


def _finish(stage: Stage[Any], rejects: Rejects, report: Report) -> Report:
    """The report's summary, counts and outcome, once everything is written."""
    report.summary = stage.summary(rejects)
    report.counts = dict(stage.counts + rejects.counts)
    try:
        stage.check_exit(report.rows_unread)
    except LemagenError as exc:
        report.error = exc
    return report


class _Counted:
    """Counts the rows a stage took from its source."""

    def __init__(self) -> None:
        self.count = 0

    def wrap(self, rows: Iterator[Any]) -> Iterator[Any]:
        for row in rows:
            self.count += 1
            yield row


def _run_batched(
    stage: EngineStage[Any],
    read: Read,
    sink: Sink,
    on_row: Callable[[int], None] | None,
    say: Callable[[str], None],
) -> Report:
    from lemagen.engine.batches import BatchRunner  # only --batch needs it

    pristine = copy.deepcopy(stage)  # before anything started: each pass begins from it
    runner = BatchRunner(stage.config, say=say)
    try:
        while True:
            trial = copy.deepcopy(pristine)
            held = sink.hold()
            runner.prepare(trial.engine)
            collector = trial.engine.batch
            assert collector is not None
            last = False
            try:
                report = _run_pass(trial, read, held, on_row=None)
                last = not collector.requests and not collector.waiting
                if last:
                    break
                runner.settle(collector)
            except BatchPending as exc:  # submitted: a re-run (or wait=True) collects them
                return Report(error=exc)  # nothing written yet: no summary but its message
            finally:
                collector.close()
                if not last:
                    held.discard()
    finally:
        runner.close()
    runner.book(trial.engine)
    sink.release(held)
    if on_row is not None:
        on_row(report.rows_read + report.bad_rows)
    return _finish(trial, sink.rejects, report)
