"""`lemagen crosscheck`: CoTnPoT (methods.md §4). A coder model rewrites a record's chain of
thought as a Python program that prints its final answer (our own prompt, `crosscheck.txt`);
the program runs in the sandbox (`lemagen.cotnpot.sandbox`) and what it printed is compared with
the chain of thought's answer by the grader. The record gains `pot_program`, `pot_answer`,
`pot_verdict` (agree, disagree, error, timeout) and `pot_meta`.

The chain of thought is a sample's steps or a correction's whole corrected solution, and its
answer the record's `pred`. By default only records whose verdict is `correct` are checked
(those that can become training data or the chosen side of a pair); `check_all` checks every
record with an answer. Others pass through unchanged.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from typing import Any

import msgspec

from lemagen.cotnpot import sandbox
from lemagen.cotnpot.programs import extract_program, printed_answer
from lemagen.engine import Call, EngineConfig, Generation, RequestFailed, RequestShape, Sampling
from lemagen.math.steps import render_numbered
from lemagen.math.thinking import split_thinking
from lemagen.records import (
    Correction,
    Pot,
    PotVerdict,
    Provenance,
    Sample,
    read_sample_or_correction,
)
from lemagen.records.rows import Rejects, SetAside
from lemagen.stage.base import Hooks, Output, PromptedStage, fmt_counts
from lemagen.stage.templates import Template

CROSSCHECK_VARIABLES = {"question", "solution"}
SUMMARY_KEYS = [
    "checked",
    "agree",
    "disagree",
    "error",
    "timeout",
    "passed_through",
    "request_failed",
    "budget_exhausted",
    "bad_rows",
]
Record = Sample | Correction


def chain_of_thought(record: Record, check_all: bool) -> tuple[list[str], str] | None:
    """The steps and answer to cross-check, or None when the record is not checked."""
    if record.pred is None or (not check_all and record.verdict != "correct"):
        return None
    if isinstance(record, Correction):
        if record.reject_reason:
            return None
        return record.full_solution(), record.pred
    return list(record.steps), record.pred


class CrosscheckStage(PromptedStage[Record]):
    name = "crosscheck"
    unit = "record"
    variables = CROSSCHECK_VARIABLES

    def __init__(
        self,
        config: EngineConfig,
        *,
        model: str,
        template: Template,
        sampling: Sampling,
        check_timeout: float,
        max_pending: int,
        limits: sandbox.Limits | None = None,
        check_all: bool = False,
        request: RequestShape | None = None,
        workers: int = 1,
    ) -> None:
        super().__init__(
            config,
            model=model,
            template=template,
            sampling=sampling,
            check_timeout=check_timeout,
            max_pending=max_pending,
            request=request,
        )
        self.workers = workers
        self.limits = limits or sandbox.Limits()
        self.check_all = check_all
        sandbox.bwrap()  # no sandbox, no run: fail before any request is paid for

    def read(self, data: dict[str, Any], where: str) -> Record:
        return read_sample_or_correction(data, where)

    def calls(self, row: Record) -> list[Call]:
        cot = chain_of_thought(row, self.check_all)
        if cot is None:
            return []
        steps = render_numbered(cot[0])
        query = self.template.render(question=row.question, solution=steps).rstrip()
        return [self.request.call(self.model, query, 1, self.sampling)]

    def run(self, rows: Iterable[Record], hooks: Hooks) -> Iterator[Output]:
        """Each finished row's program runs in one of `workers` sandboxes at once (each is a
        process: the threads only wait on it); rows are written in the order they finished."""
        pending: deque[Future[tuple[Output, tuple[str, ...]]]] = deque()
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            for group in self.sent_batches(rows, hooks):
                for record, results in group:
                    pending.append(pool.submit(self._one, record, results))
                while pending and (pending[0].done() or len(pending) > 2 * self.workers):
                    yield self._done(pending.popleft(), hooks)
            while pending:
                yield self._done(pending.popleft(), hooks)

    def _done(self, future: Future[tuple[Output, tuple[str, ...]]], hooks: Hooks) -> Output:
        item, counted = future.result()
        hooks.on_row(1)
        self.counts.update(counted)
        return item

    def _one(self, record: Record, results: list[Any]) -> tuple[Output, tuple[str, ...]]:
        """What a finished row gives, and the counts it adds to (counted by the caller: this
        runs in a worker thread)."""
        if not results:
            return record, ("passed_through",)
        result = results[0]
        if isinstance(result, RequestFailed):
            return SetAside(result.reason, record, str(result)), (result.reason,)
        checked = self.checked(record, result)
        assert checked.pot is not None
        return checked, ("checked", checked.pot.verdict)

    def checked(self, record: Record, generation: Generation) -> Record:
        """`record` with the program the coder wrote, what it printed and the verdict."""
        assert self.grader is not None
        cot = chain_of_thought(record, self.check_all)
        assert cot is not None
        choice = generation.choices[0]
        program = extract_program(split_thinking(choice.text).answer)
        answer: str | None = None
        verdict: PotVerdict
        detail: str | None
        if choice.finish_reason == "length":
            verdict, detail = "error", "the coder's reply was truncated"
        elif program is None:
            verdict, detail = "error", "no program in the coder's reply"
        else:
            outcome = sandbox.run(program, self.limits)
            detail = outcome.detail
            if outcome.status != "ok":
                verdict = outcome.status
            else:
                answer = printed_answer(outcome.stdout)
                if answer is None:
                    verdict, detail = "error", "the program printed nothing"
                else:
                    same = self.grader.compare(record.task, cot[1], answer)
                    verdict = "agree" if same == "correct" else "disagree"
                    if same == "timeout":
                        verdict, detail = "error", "comparing the answers timed out"
        meta = Provenance(
            stage="crosscheck",
            model=self.model,
            api=self.api,
            **self.sampling.as_meta(),
            n=1,
            prompt=self.template.name,
            prompt_sha256=self.template.sha256,
            finish_reason=choice.finish_reason,
            usage=dict(generation.usage),
            requests=generation.requests,
            **self.request.meta(),
        ).to_dict()
        meta["sandbox"] = {k: v for k, v in asdict(self.limits).items() if k != "audit_hook"}
        meta["detail"] = detail
        pot = Pot(program, answer, verdict, meta)
        return msgspec.structs.replace(record, **pot.fields())

    def summary(self, rejects: Rejects) -> str:
        self.counts["bad_rows"] = rejects.bad_rows
        return f"crosscheck: {fmt_counts(self.counts, SUMMARY_KEYS)}; {self.requests_summary()}"
