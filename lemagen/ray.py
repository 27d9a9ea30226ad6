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
from lemagen.api.run import Collected, read_rows
from lemagen.records.rows import Encoded, SetAside
from lemagen.stage.base import Hooks, Stage

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

SCHEMA = pa.schema([("record", pa.string()), ("reason", pa.string())])


class StageMapper:
    """One Ray actor's stage: built and started once, then run over each batch."""

    def __init__(self, stage: str, options: dict[str, Any], skip_bad_rows: bool) -> None:
        self.stage = BUILDERS[stage](**options)
        self.skip_bad_rows = skip_bad_rows
        self._stack = ExitStack()
        self.stage.start(self._stack)

    def __call__(self, batch: pa.Table) -> pa.Table:
        """The batch's kept records, then its rows set aside here, then those set aside
        before (passed through as they were)."""
        rows = batch.to_pylist()
        records: list[str] = []
        reasons: list[str | None] = []
        passed = [row for row in rows if row.get("reason") is not None]  # set aside earlier
        todo = [_record(row) for row in rows if row.get("reason") is None]
        rejected = Collected(None)
        read = read_rows(self.stage, todo, skip_bad_rows=self.skip_bad_rows, rejects=rejected)
        for item in self.stage.run(read, Hooks()):
            if isinstance(item, SetAside):
                rejected.add(item)
            elif isinstance(item, Encoded):  # a line the stage encoded itself
                records.append(item.text)
                reasons.append(item.reason)
            else:
                records.append(Encoded.of(item).text)
                reasons.append(None)
        for reject in rejected.items:
            records.append(Encoded.of(reject).text)
            reasons.append(reject.reason)
        for row in passed:
            records.append(row["record"])
            reasons.append(row["reason"])
        return pa.Table.from_pydict({"record": records, "reason": reasons}, schema=SCHEMA)

    def __del__(self) -> None:
        self._stack.close()


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
    concurrency: int = 1,
    skip_bad_rows: bool = True,
    num_cpus: float = 1,
    **options: Any,
) -> Dataset:
    """Map the stage named `stage` (sample, correct, crosscheck, grade, filter, inject) over
    `ds` in batches of `batch_size` rows, on `concurrency` actors of `num_cpus` each. `options`
    are the stage's keyword options, as for `lemagen.<stage>` (`model`, `base_url`, `n`,
    `workers`, ...). A bad row is set aside (reason `missing_field`, ...) unless
    `skip_bad_rows=False`, when it fails the job. The API key is read on each worker from the
    environment variable `api_key_env` names (pass it with Ray's `runtime_env`)."""
    if stage not in BUILDERS:
        raise ValueError(f"stage {stage!r}: choose from {', '.join(BUILDERS)}")
    return ds.map_batches(
        StageMapper,
        fn_constructor_kwargs={"stage": stage, "options": options, "skip_bad_rows": skip_bad_rows},
        batch_size=batch_size,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=concurrency),
        num_cpus=num_cpus,
    )


def kept(ds: Dataset) -> Dataset:
    """The kept records of a `map_stage` output."""
    return ds.map_batches(_kept, batch_format="pyarrow")


def rejects(ds: Dataset) -> Dataset:
    """The set-aside rows of a `map_stage` output, each `record` a `--rejects` line."""
    return ds.map_batches(_rejects, batch_format="pyarrow")


def _kept(batch: pa.Table) -> pa.Table:
    return batch.filter(pc.is_null(batch["reason"]))


def _rejects(batch: pa.Table) -> pa.Table:
    return batch.filter(pc.is_valid(batch["reason"]))


__all__ = ["BUILDERS", "StageMapper", "kept", "map_stage", "rejects"]
