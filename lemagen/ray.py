"""Run lemagen's row-by-row stages on Ray Data, for client-side work that outgrows one machine
(grading tens of millions of samples, many endpoints in several regions). Optional: install
with `pip install 'lemagen[ray]'`.

`map_stage(ds, "sample", model=..., ...)` maps a stage over a `ray.data.Dataset` in batches
(`map_batches` with a pool of actors). Each actor builds the stage once from the same options
as the Python API and the commands (`lemagen.api.<method>`, e.g. `lemagen.api.lema`), so it
has its own request engine, its own request store (`cache_dir` on that worker's machine) and
its own grader with its checker processes, and keeps them for every batch it maps.

Rows go in as plain columns (problems, as `ray.data.read_json` reads them) or as a `record`
column holding the JSON text of a record, which is what `map_stage` writes, so stages chain.
Every output row has `record` (the JSON line the command would write) and `reason` (null for
a kept record; for a set-aside row, its reason, with `record` the line `--rejects` would get).
Rows already set aside pass through later stages unchanged, so the last dataset holds every
kept record and every reject: `kept(ds)` and `rejects(ds)` split them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from lemagen.api import cotnpot, curate, lema, mistakes
from lemagen.api.run import Collected, reader
from lemagen.errors import UsageError
from lemagen.records.rows import Encoded, ToDict
from lemagen.run import HeldSink, MemorySink, Report, Sink, run
from lemagen.stage.base import EngineStage, Stage

try:
    import pyarrow as pa
    import pyarrow.compute as pc
    import ray.data
except ImportError as exc:  # pragma: no cover - the extra is in the dev install
    raise ImportError(
        f"lemagen.ray needs Ray Data ({exc.name} is not installed): pip install 'lemagen[ray]'"
    ) from None

if TYPE_CHECKING:
    from ray.data import Dataset

BUILDERS: dict[str, Callable[..., Stage[Any]]] = {
    "sample": lema.sample_stage,
    "correct": lema.correct_stage,
    "crosscheck": cotnpot.crosscheck_stage,
    "grade": curate.grade_stage,
    "filter": lema.filter_stage,
    "inject": mistakes.inject_stage,
}
"""The stages that map row by row (`export`, `stats` and `evolve` need the whole input)."""

SCHEMA = pa.schema([("record", pa.string()), ("reason", pa.string()), ("report", pa.string())])
NOT_READ = "not_read"  # the reason of an input row a batch did not read (its budget ran out)


class TableSink(Sink):
    """A batch's output as columns: kept records, then rows set aside, then rows not read."""

    def __init__(self) -> None:
        super().__init__(Collected(None))
        self.records: list[str] = []
        self.reasons: list[str | None] = []
        self.unread_rows: list[str] = []

    def keep(self, item: ToDict | Encoded) -> None:
        self.records.append(item.text if isinstance(item, Encoded) else Encoded.of(item).text)
        self.reasons.append(None)

    def not_read(self, row: Any) -> None:
        super().not_read(row)
        if row is not None:
            self.unread_rows.append(Encoded.of(row).text)

    def hold(self) -> HeldSink:
        return MemorySink()


class StageMapper:
    """One Ray actor's stage: built (and, unless in batch mode, started) once, then run over
    each batch with the one run loop (`lemagen.run`)."""

    def __init__(self, stage: str, options: dict[str, Any], skip_bad_rows: bool) -> None:
        self.stage = BUILDERS[stage](**options)
        self.skip_bad_rows = skip_bad_rows
        self._stack = ExitStack()
        self.batch = isinstance(self.stage, EngineStage) and self.stage.config.batch is not None
        if not self.batch:
            self.stage.start(self._stack)

    def __call__(self, batch: pa.Table) -> pa.Table:
        """The batch's kept records, its rows set aside here, its rows not read (reason
        `not_read`), those set aside before (passed through as they were), and one row
        whose `report` says what the batch did (`report(ds)` adds them up)."""
        rows = batch.to_pylist()
        passed = [row for row in rows if row.get("reason") is not None]  # set aside earlier
        passed = [row for row in passed if row.get("report") is None]
        todo = [_record(row) for row in rows if row.get("reason") is None and _data(row)]
        sink = TableSink()
        spent = _spent(self.stage)
        outcome = run(
            self.stage,
            reader(todo, skip_bad_rows=self.skip_bad_rows),
            sink,
            started=not self.batch,
        )
        records, reasons = sink.records, sink.reasons
        assert isinstance(sink.rejects, Collected)
        for reject in sink.rejects.items:
            records.append(Encoded.of(reject).text)
            reasons.append(reject.reason)
        for text in sink.unread_rows:
            records.append(text)
            reasons.append(NOT_READ)
        for row in passed:
            records.append(row["record"])
            reasons.append(row["reason"])
        reports: list[str | None] = [None] * len(records)
        records.append(None)  # type: ignore[arg-type]
        reasons.append(None)
        reports.append(json.dumps(_batch_report(outcome, _spent(self.stage) - spent)))
        return pa.Table.from_pydict(
            {"record": records, "reason": reasons, "report": reports}, schema=SCHEMA
        )

    def __del__(self) -> None:
        self._stack.close()


def _data(row: dict[str, Any]) -> bool:
    """Not a batch report row."""
    return row.get("report") is None


def _spent(stage: Stage[Any]) -> float:
    if isinstance(stage, EngineStage) and stage._engine is not None:
        st = stage.engine.stats
        return st.cost + st.possible_cost
    return 0.0


def _batch_report(outcome: Report, cost: float) -> dict[str, Any]:
    error = outcome.error
    return {
        "rows_read": outcome.rows_read,
        "bad_rows": outcome.bad_rows,
        "rows_unread": outcome.rows_unread,
        "counts": outcome.counts,
        "cost": cost,
        "exit_code": outcome.exit_code,
        "error": None if error is None else error.format_message(),
    }


def _record(row: dict[str, Any]) -> dict[str, Any]:
    """A row as the record dict a JSONL line would give: the JSON in `record`, else the row's
    own columns without the nulls Arrow fills in for columns a row did not have."""
    text = row.get("record")
    if isinstance(text, str):
        value: dict[str, Any] = json.loads(text)
        return value
    return {key: value for key, value in row.items() if value is not None and key != "reason"}


def map_stage(
    ds: Dataset,
    stage: str,
    *,
    batch_size: int = 256,
    actors: int = 1,
    skip_bad_rows: bool = True,
    num_cpus: float = 1,
    **options: Any,
) -> Dataset:
    """Map the stage named `stage` (sample, correct, crosscheck, grade, filter, inject) over
    `ds` in batches of `batch_size` rows, on `actors` actors of `num_cpus` each. `options` are
    the stage's keyword options, as for `lemagen.<stage>` (`model`, `base_url`, `n`,
    `concurrency` (requests in flight per endpoint, per actor), `workers`, `batch`, ...). A bad
    row is set aside (reason `missing_field`, ...) unless `skip_bad_rows=False`, when it fails
    the job. The API key is read on each worker from the environment variable `api_key_env`
    names (pass it with Ray's `runtime_env`).

    `max_cost` is one budget for the whole job, split evenly between the actors (each stops
    at `max_cost / actors`): the job never spends more than `max_cost`. Rows an actor
    did not read because its share ran out come back with reason `not_read`; `report(ds)`
    says what the job did and how it ended."""
    if stage not in BUILDERS:
        raise UsageError(f"stage {stage!r}: choose from {', '.join(BUILDERS)}")
    if options.get("max_cost") is not None:
        options = {**options, "max_cost": float(options["max_cost"]) / actors}
    return ds.map_batches(
        StageMapper,
        fn_constructor_kwargs={"stage": stage, "options": options, "skip_bad_rows": skip_bad_rows},
        batch_size=batch_size,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=num_cpus,
    )


def report(ds: Dataset) -> dict[str, Any]:
    """What a `map_stage` job did, added up over its batches: input rows read, unreadable
    and not read, the stage's counts, the cost, and how it ended (`exit_code`, the worst of
    its batches', and their distinct `errors`)."""
    total: dict[str, Any] = {
        "rows_read": 0, "bad_rows": 0, "rows_unread": 0, "counts": {}, "cost": 0.0,
        "exit_code": 0, "errors": [],
    }  # fmt: skip
    for row in ds.select_columns(["report"]).iter_rows():
        if row["report"] is None:
            continue
        one = json.loads(row["report"])
        for name in ("rows_read", "bad_rows", "rows_unread", "cost"):
            total[name] += one[name]
        for name, count in one["counts"].items():
            total["counts"][name] = total["counts"].get(name, 0) + count
        if one["exit_code"] and (not total["exit_code"] or one["exit_code"] != 4):
            total["exit_code"] = one["exit_code"]
        if one["error"] and one["error"] not in total["errors"]:
            total["errors"].append(one["error"])
    return total


def kept(ds: Dataset) -> Dataset:
    """The kept records of a `map_stage` output."""
    return ds.map_batches(_kept, batch_format="pyarrow")


def rejects(ds: Dataset) -> Dataset:
    """The set-aside rows of a `map_stage` output, each `record` a `--rejects` line."""
    return ds.map_batches(_rejects, batch_format="pyarrow")


def _kept(batch: pa.Table) -> pa.Table:
    return batch.filter(pc.and_(pc.is_null(batch["reason"]), pc.is_valid(batch["record"])))


def _rejects(batch: pa.Table) -> pa.Table:
    return batch.filter(pc.is_valid(batch["reason"]))


__all__ = ["BUILDERS", "NOT_READ", "StageMapper", "kept", "map_stage", "rejects", "report"]
