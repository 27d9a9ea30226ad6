"""Run a stage over rows held in Python (typed records or plain dicts) and keep what it makes:
the API's counterpart of `lemagen.cli.running.run_stage`, which reads files and writes JSONL.

The request engine sends from its own event loop in its own thread, so a run works the same
from a script, from a thread, and from code that already runs an event loop (a Jupyter cell,
or inside `asyncio.run`): there it blocks the calling coroutine until the run is done, and
`await asyncio.to_thread(lemagen.sample, ...)` keeps that loop free meanwhile.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, TypeVar

import click

from lemagen.errors import InputError
from lemagen.records import JSON, Reject
from lemagen.records.rows import Rejects, SetAside, ToDict
from lemagen.stage.base import EngineStage, Hooks, Stage

T = TypeVar("T")
Rows = Iterable[Mapping[str, Any] | ToDict]
"""What every API function reads: typed records (anything with `to_dict`, such as the records
of `lemagen.records` another API function returned) or plain dicts in any stage's JSONL shape."""

ROWS_NAME = "<rows>"  # how errors name the rows given: `<rows>:3: missing field 'answer'`


@dataclass
class Result:
    """What a stage made: `kept` (typed records, in the order the stage wrote them), `rejects`
    (every row set aside, as `lemagen.records.Reject`: `reason`, `record`, `detail`), `counts`
    (by reason and by kind, as the summary counts them) and `summary` (the line the command
    prints). `error` is the exit the command would take after writing everything (requests
    that failed for good, `max_cost` reached, a store that could not be written), else None.

    Iterating a result iterates `kept`; `dicts()` gives them as JSON-ready dicts, exactly the
    command's output lines.
    """

    kept: list[Any] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    summary: str = ""
    error: click.ClickException | None = None

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


def read_rows(stage: Stage[T], rows: Rows, *, skip_bad_rows: bool, rejects: Rejects) -> Iterator[T]:
    """`rows` read by the stage into its typed records: dicts as they are, typed records
    through their dict (so a record made by one stage is checked as the next stage's input,
    exactly as a JSONL line would be). A bad row raises its one-line `<rows>:N` error, or with
    `skip_bad_rows` is set aside with its reason."""
    for index, row in enumerate(rows, 1):
        data = dict(row) if isinstance(row, Mapping) else row.to_dict()
        try:
            yield stage.read(data, f"{ROWS_NAME}:{index}")
        except InputError as err:
            if not skip_bad_rows:
                raise
            rejects.bad_rows += 1
            rejects.add(Reject(err.reason, data, detail=err.format_message()))


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
    is made (to write them as they come); the result still holds them all. An input error
    (without `skip_bad_rows`), an unusable endpoint or a broken prompt raises its
    `lemagen.errors.LemagenError`; the exits a command takes after writing everything are
    returned as `Result.error` instead."""
    if isinstance(stage, EngineStage) and stage.config.batch is not None:
        raise click.UsageError(
            "batch=True: Batch APIs run from the command line only (`lemagen ... --batch`)"
        )
    rejected = Collected(on_reject)
    result = Result()
    with ExitStack() as stack:
        records = read_rows(stage, rows, skip_bad_rows=skip_bad_rows, rejects=rejected)
        stage.start(stack)
        for item in itertools.chain(stage.run(records, Hooks()), stage.finish()):
            if isinstance(item, SetAside):
                rejected.add(item)
            else:
                result.kept.append(item)
                if on_record is not None:
                    on_record(item)
    result.rejects = rejected.items
    result.summary = stage.summary(rejected)
    result.counts = dict(stage.counts + rejected.counts)
    try:
        stage.check_exit()
    except click.ClickException as exc:
        result.error = exc
    return result
