"""Record plumbing shared by the stages: reading inputs row by row, and setting rows aside."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from lemagen.errors import InputError
from lemagen.records.jsonl import RecordWriter, read_records

T = TypeVar("T")

# Fields of a problem record that every later record carries unchanged.
PROBLEM_FIELDS = ("id", "task", "question", "gold", "reference")


class Rejects:
    """Rows set aside, each written to `--rejects` (when given) as
    `{"reason", "detail", "where"?, "record"}` and counted by reason."""

    def __init__(self, writer: RecordWriter | None) -> None:
        self.writer = writer
        self.counts: Counter[str] = Counter()
        self.bad_rows = 0  # input rows that could not be read (a subset of the counts)

    def add(
        self,
        reason: str,
        record: dict[str, Any] | None,
        *,
        detail: str | None = None,
        where: str | None = None,
    ) -> None:
        self.counts[reason] += 1
        if self.writer is not None:
            row: dict[str, Any] = {"reason": reason}
            if detail:
                row["detail"] = detail
            if where:
                row["where"] = where
            row["record"] = record
            self.writer.write(row)


def iter_rows(
    path: str,
    parse: Callable[[dict[str, Any], int], T],
    *,
    skip_bad_rows: bool,
    rejects: Rejects,
) -> Iterator[T]:
    """Parsed rows of `path`. A bad row stops the run with its `file:line` error, or with
    `skip_bad_rows` is set aside (reason and message) and reading goes on."""
    for lineno, record in read_records(path):
        try:
            if isinstance(record, InputError):
                raise record
            yield parse(record, lineno)
        except InputError as err:
            if not skip_bad_rows:
                raise
            raw = None if isinstance(record, InputError) else record
            rejects.bad_rows += 1
            rejects.add(err.reason, raw, detail=err.format_message())


def problem_part(record: dict[str, Any]) -> dict[str, Any]:
    """The problem fields of any lemagen record, in their usual order."""
    return {k: record[k] for k in PROBLEM_FIELDS if k in record}


def provenance(
    *,
    stage: str,
    model: str,
    api: str,
    sampling: dict[str, Any],
    n: int,
    index: int,
    prompt_name: str,
    prompt_sha256: str,
    finish_reason: str | None,
    usage: dict[str, int],
    requests: int,
    choices: int,
    checker: dict[str, str],
) -> dict[str, Any]:
    """The `meta` block of a sample or correction: everything needed to reproduce and audit it.
    `usage` is that of the request(s) that produced all `choices` choices together."""
    return {
        "stage": stage,
        "model": model,
        "api": api,
        **sampling,
        "n": n,
        "sample_index": index,
        "prompt": prompt_name,
        "prompt_sha256": prompt_sha256,
        "finish_reason": finish_reason,
        "usage": dict(usage),
        "requests": requests,
        "choices_in_usage": choices,
        "checker": checker,
    }
