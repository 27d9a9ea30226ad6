"""Run a stage over rows held in Python (typed records or plain dicts) and keep what it makes,
with the one run loop every command runs (`lemagen.run`): the source is the rows given, the
sink lists (`ListSink`).

The request engine sends from its own event loop in its own thread, so a run works the same
from a script, from a thread, and from code that already runs an event loop (a Jupyter cell,
or inside `asyncio.run`): there it blocks the calling coroutine until the run is done, and
`await asyncio.to_thread(lemagen.sample, ...)` keeps that loop free meanwhile.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from lemagen.errors import InputError, LemagenError
from lemagen.records import JSON, Reject
from lemagen.records.rows import Encoded, Rejects, SetAside, ToDict
from lemagen.run import HeldSink, MemorySink, Read, Report, Sink
from lemagen.run import run as run_loop
from lemagen.stage.base import Stage

T = TypeVar("T")
Rows = Iterable[Mapping[str, Any] | ToDict]
"""What every API function reads: typed records (anything with `to_dict`, such as the records
of `lemagen.records` another API function returned) or plain dicts in any stage's JSONL shape."""

ROWS_NAME = "<rows>"  # how errors name the rows given: `<rows>:3: missing field 'answer'`


@dataclass(repr=False)
class Result:
    """What a stage made: `kept` (typed records, in the order the stage wrote them), `rejects`
    (every row set aside, as `lemagen.records.Reject`: `reason`, `record`, `detail`), `counts`
    (by reason and by kind, as the summary counts them) and `summary` (the line the command
    prints). `error` is the exit the command would take after writing everything (requests
    that failed for good, `max_cost` reached, a store that could not be written, batches
    still running with `batch=True, wait=False`), else None. `unread` holds the input rows
    the run did not read because it stopped first (as read into typed records; a re-run with
    the same rows reads them), and `report` where every input row went.

    Iterating a result iterates `kept`; `dicts()` gives them as JSON-ready dicts, exactly the
    command's output lines. Its repr is a few lines (counts, the reasons rows were set aside,
    the summary), not the records: a notebook cell ending in a result shows what it holds.
    """

    kept: list[Any] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    summary: str = ""
    error: LemagenError | None = None
    unread: list[Any] = field(default_factory=list)
    report: Report = field(default_factory=Report)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.kept)

    def __len__(self) -> int:
        return len(self.kept)

    def dicts(self) -> list[JSON]:
        """The kept records as dicts, as the command writes them."""
        return [record.to_dict() for record in self.kept]

    @property
    def exit_code(self) -> int:
        """The command's exit code for this run: 0, or the code of `error`."""
        return 0 if self.error is None else self.error.exit_code

    def __repr__(self) -> str:
        reasons = Counter(reject.reason for reject in self.rejects).most_common()
        head = f"<lemagen.Result: {len(self.kept)} kept, {len(self.rejects)} set aside"
        if reasons:
            shown = ", ".join(f"{reason} {count}" for reason, count in reasons[:REPR_REASONS])
            head += f" ({shown}{', ...' if len(reasons) > REPR_REASONS else ''})"
        if self.unread:
            head += f", {len(self.unread)} input rows not read"
        lines = [f"{head}; exit code {self.exit_code}"]
        if self.summary:
            lines.append(f"  summary: {_clip(self.summary)}")
        if self.error is not None:
            lines.append(f"  error: {_clip(str(self.error))}")
        lines.append("  (.kept, .rejects, .dicts(), .counts, .report)>")
        return "\n".join(lines)


REPR_REASONS = 5  # the commonest reasons a Result's repr names
REPR_LINE = 240  # characters of the summary or error a Result's repr shows


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= REPR_LINE else text[: REPR_LINE - 3] + "..."


class Collected(Rejects):
    """Rejects counted by reason and kept in a list (and handed to `on_reject`)."""

    def __init__(self, on_reject: Callable[[Reject], None] | None) -> None:
        super().__init__(None)
        self.items: list[Reject] = []
        self.on_reject = on_reject

    def add(self, item: SetAside | Reject) -> None:
        super().add(item)
        reject = item.reject() if isinstance(item, SetAside) else item
        self.items.append(reject)
        if self.on_reject is not None:
            self.on_reject(reject)


class ListSink(Sink):
    """Kept records in a list (and to `on_record`), rows set aside in `Collected`, rows not
    read in a list."""

    def __init__(
        self,
        on_record: Callable[[Any], None] | None = None,
        on_reject: Callable[[Reject], None] | None = None,
    ) -> None:
        super().__init__(Collected(on_reject))
        self.kept: list[Any] = []
        self.unread_rows: list[Any] = []
        self.on_record = on_record

    def keep(self, item: ToDict | Encoded) -> None:
        self.kept.append(item)
        if self.on_record is not None:
            self.on_record(item)

    def not_read(self, row: Any) -> None:
        super().not_read(row)
        if row is not None:
            self.unread_rows.append(row)

    def hold(self) -> HeldSink:
        return MemorySink()


def reader(rows: Rows, *, skip_bad_rows: bool) -> Read:
    """The rows given, read by the stage into its typed records: dicts as they are, typed
    records through their dict (so a record made by one stage is checked as the next stage's
    input, exactly as a JSONL line would be). A bad row raises its one-line `<rows>:N` error,
    or with `skip_bad_rows` is set aside with its reason. A `--batch` run reads the rows once
    per pass, so an iterator given is read into a list first."""
    if not isinstance(rows, (list, tuple)):
        rows = list(rows)

    def read(stage: Stage[Any], rejects: Rejects) -> Iterator[Any]:
        for index, row in enumerate(rows, 1):
            data = dict(row) if isinstance(row, Mapping) else row.to_dict()
            try:
                yield stage.read(data, f"{ROWS_NAME}:{index}")
            except InputError as err:
                if not skip_bad_rows:
                    raise
                rejects.bad_rows += 1
                rejects.add(Reject(reason=err.reason, record=data, detail=err.format_message()))

    return read


def run(
    stage: Stage[Any],
    rows: Rows,
    *,
    skip_bad_rows: bool = False,
    on_reject: Callable[[Reject], None] | None = None,
    on_record: Callable[[Any], None] | None = None,
) -> Result:
    """Run `stage` over `rows` and return what it kept and set aside.

    `on_record` and `on_reject`, when given, see each kept record and each set-aside row as it
    is made (to write them as they come; with `batch=True`, once the last pass is done); the
    result still holds them all. An input error (without `skip_bad_rows`), an unusable
    endpoint or a broken prompt raises its `lemagen.errors.LemagenError`; the exits a command
    takes after writing everything are returned as `Result.error` instead."""
    sink = ListSink(on_record, on_reject)
    report = run_loop(stage, reader(rows, skip_bad_rows=skip_bad_rows), sink)
    assert isinstance(sink.rejects, Collected)
    return Result(
        kept=sink.kept,
        rejects=sink.rejects.items,
        counts=report.counts,
        summary=report.summary or (str(report.error) if report.error else ""),
        error=report.error,
        unread=sink.unread_rows,
        report=report,
    )
