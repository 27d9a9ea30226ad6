"""`lemagen grade`: label model outputs made elsewhere with `pred`, `extracted_by` and
`verdict`."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from typing import Any

from lemagen.math.grading import Grader
from lemagen.records.problems import GradeInput, ProblemReader
from lemagen.records.rows import Rejects
from lemagen.stage.base import Hooks, Output, Stage, fmt_counts

SUMMARY_KEYS = ["correct", "wrong", "no_answer", "timeout", "bad_rows"]


class GradeStage(Stage[GradeInput]):
    name = "grade"

    def __init__(
        self,
        reader: ProblemReader,
        *,
        response_field: str,
        check_timeout: float,
        workers: int = 1,
    ) -> None:
        super().__init__()
        self.reader = reader
        self.response_field = response_field
        self.check_timeout = check_timeout
        self.workers = workers
        self.grader: Grader | None = None

    def read(self, data: dict[str, Any], where: str) -> GradeInput:
        return GradeInput.read(data, where, self.reader, self.response_field)

    def start(self, stack: ExitStack) -> None:
        self.grader = stack.enter_context(Grader(self.check_timeout, self.workers))

    def run(self, rows: Iterable[GradeInput], hooks: Hooks) -> Iterator[Output]:
        """Rows graded in batches, their symbolic checks spread over `workers` processes,
        written in input order."""
        assert self.grader is not None
        held: deque[GradeInput] = deque()

        def checks() -> Iterator[tuple[str, str, str]]:
            for row in rows:
                held.append(row)
                yield row.problem.task, row.problem.gold, row.response

        for result in self.grader.grade_many(checks()):
            row = held.popleft()
            self.counts[result.verdict] += 1
            yield row.graded(result.pred, result.verdict, result.extracted_by)
            hooks.on_row(1)

    def summary(self, rejects: Rejects) -> str:
        self.counts["bad_rows"] = rejects.bad_rows
        return "grade: " + fmt_counts(self.counts, SUMMARY_KEYS)
