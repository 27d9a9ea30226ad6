"""`lemagen inject`: mistakes made from gold solutions, no model needed (the mistakes
themselves are made in `lemagen.mistakes.gsm8k`). Each correction record has the shape
`lemagen correct` writes, so `lemagen filter` takes it unchanged; `--format retry` writes
retry texts instead (`lemagen.mistakes.retry`).
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from typing import Any

import msgspec

from lemagen.lema.formats import lema_correction
from lemagen.math.answers import format_number
from lemagen.math.grading import DEFAULT_CHECK_TIMEOUT, Grader, checker_info
from lemagen.mistakes.gsm8k import Mistake, Solution, Unusable, inject, parse_solution
from lemagen.mistakes.latex import LatexSolution, inject_latex, parse_latex_solution
from lemagen.mistakes.retry import RetryOptions, retry_text
from lemagen.records import Correction, Original, Problem, made_mistake
from lemagen.records.problems import ProblemReader
from lemagen.records.rows import Rejects, SetAside
from lemagen.stage.base import Hooks, Output, Stage, by_reason


def correction_record(
    problem: Problem, sol: Solution | LatexSolution, mistake: Mistake, grader: Grader, seed: int
) -> Correction:
    """A record in exactly the shape `lemagen correct` writes, for `lemagen filter`."""
    task = problem.task
    wrong = mistake.answer_text or format_number(mistake.answer)
    k = mistake.step + 1
    digest = hashlib.sha256(
        "\x1f".join([problem.id, mistake.error_type, *mistake.steps]).encode()
    ).hexdigest()
    sample_id = f"{problem.id}-i{digest[:10]}"
    meta = made_mistake(mistake.error_type, seed, checker_info(task))
    corrected = tuple(sol.steps[mistake.step :])
    graded = grader.grade(task, problem.gold, corrected[-1])
    record = Correction(
        **problem.parts(),
        sample_id=sample_id,
        correction_id=f"{sample_id}-c0",
        original=Original(
            response=" ".join(mistake.steps),
            steps=tuple(mistake.steps),
            pred=wrong,
            verdict=grader.compare(task, problem.gold, wrong),
            meta=meta,
        ),
        response="",
        incorrect_step=k,
        explanation=mistake.explanation,
        corrected_from=k,
        elided=k > 1,
        corrected_steps=corrected,
        pred=graded.pred,
        verdict=graded.verdict,
        reject_reason=None,
        meta=meta,
    )
    return msgspec.structs.replace(record, response=lema_correction(record).completion)


class InjectStage(Stage[Problem]):
    """Mistakes made from each problem's gold solution: correction records (`lema`) or retry
    texts (`retry`); problems that cannot be used are set aside with the reason."""

    name = "inject"
    unit = "problem"

    def __init__(
        self,
        reader: ProblemReader,
        *,
        fmt: str,
        types: tuple[str, ...],
        per_question: int,
        seed: int,
        retry: RetryOptions,
    ) -> None:
        super().__init__()
        self.reader = reader
        self.fmt = fmt
        self.types = types
        self.per_question = per_question
        self.seed = seed
        self.retry = retry
        self.skipped: Counter[str] = Counter()
        self.grader: Grader | None = None

    def read(self, data: dict[str, Any], where: str) -> Problem:
        return self.reader.read(data, where)

    def start(self, stack: ExitStack) -> None:
        self.grader = stack.enter_context(Grader(DEFAULT_CHECK_TIMEOUT))

    def run(self, rows: Iterable[Problem], hooks: Hooks) -> Iterator[Output]:
        assert self.grader is not None
        for problem in rows:
            self.counts["problems"] += 1
            hooks.on_row(1)
            rng = random.Random(f"{self.seed}\x1f{problem.id}")
            try:
                if self.fmt == "retry":
                    sol = parse_solution(problem, need_arithmetic=False)
                    made = retry_text(sol, problem, rng, self.retry, self.seed)
                    self.counts["records"] += 1
                    self.counts["retries"] += len(made.mistakes)
                    yield made
                    continue
                solution, mistakes = self._mistakes(problem, rng)
                for mistake in mistakes:
                    self.counts["records"] += 1
                    self.counts[mistake.error_type] += 1
                    yield correction_record(problem, solution, mistake, self.grader, self.seed)
            except Unusable as exc:
                self.skipped[exc.reason] += 1
                yield SetAside(exc.reason, problem)

    def _mistakes(
        self, problem: Problem, rng: random.Random
    ) -> tuple[Solution | LatexSolution, list[Mistake]]:
        """A MATH solution's mistakes are made in its LaTeX (`latex_mistakes`); when that finds
        nothing usable, and for GSM8K, in plain `a op b = c` arithmetic (`mistakes`)."""
        if problem.task == "math":
            try:
                latex = parse_latex_solution(problem)
                return latex, inject_latex(
                    latex, problem.question, self.types, self.per_question, rng
                )
            except Unusable as exc:
                try:
                    sol = parse_solution(problem)
                    return sol, inject(sol, problem.question, self.types, self.per_question, rng)
                except Unusable:
                    raise exc from None
        sol = parse_solution(problem)
        return sol, inject(sol, problem.question, self.types, self.per_question, rng)

    def summary(self, rejects: Rejects) -> str:
        c = self.counts
        made = (
            f"{c['retries']} retries"
            if self.fmt == "retry"
            else ", ".join(f"{t} {c[t]}" for t in self.types)
        )
        return (
            f"inject: {c['problems']} problems, {c['records']} records ({made}); skipped "
            f"{sum(self.skipped.values())}: {by_reason(self.skipped)}; bad rows {rejects.bad_rows}"
        )
