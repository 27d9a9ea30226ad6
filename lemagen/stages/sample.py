"""`lemagen sample`: chain-of-thought samples from one or more reasoners, graded against gold.

`calls` says what to ask (one call per reasoner); the engine sends them; `outcome` grades the
samples of one problem in the caller's thread as rows finish.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from typing import Any

from lemagen.engine import Call, EngineConfig, Generation, RequestFailed, Sampling
from lemagen.math import answers, steps
from lemagen.math.grading import checker_info
from lemagen.records import FailedCall, Problem, Provenance, Sample
from lemagen.records.problems import ProblemReader
from lemagen.records.rows import Rejects, SetAside
from lemagen.stages.base import EngineStage, Hooks, Output, fmt_counts
from lemagen.stages.templates import Template

SAMPLE_VARIABLES = {"question"}
SUMMARY_KEYS = [
    "problems",
    "samples",
    "correct",
    "wrong",
    "duplicate",
    "truncated",
    "no_answer",
    "check_timeout",
    "request_failed",
    "no_choices",
    "budget_exhausted",
    "store_unwritable",
    "bad_rows",
]


class SampleStage(EngineStage[Problem]):
    name = "sample"
    unit = "problem"

    def __init__(
        self,
        reader: ProblemReader,
        config: EngineConfig,
        *,
        template: Template,
        models: list[str],
        n: int,
        sampling: Sampling,
        keep_all: bool,
        check_timeout: float,
        max_pending: int,
    ) -> None:
        super().__init__(config, check_timeout=check_timeout, max_pending=max_pending)
        self.reader = reader
        self.api = config.api
        self.template = template
        self.models = models
        self.n = n
        self.sampling = sampling
        self.keep_all = keep_all

    def read(self, data: dict[str, Any], where: str) -> Problem:
        return self.reader.read(data, where)

    def calls(self, row: Problem) -> list[Call]:
        prompt = self.template.render(question=row.question)
        return [Call(model, prompt, self.n, self.sampling) for model in self.models]

    def run(self, rows: Iterable[Problem], hooks: Hooks) -> Iterator[Output]:
        for problem, results in self.sent(rows, hooks):
            yield from self.outcome(problem, results)
            self.counts["problems"] += 1
            hooks.on_row(1)

    def outcome(
        self, problem: Problem, results: list[Generation | RequestFailed]
    ) -> Iterator[Output]:
        """The samples of one problem: wrong ones (all with --keep all) to keep; truncated,
        unanswered and failed ones set aside; repeated wrong paths dropped."""
        assert self.grader is not None
        seen: set[str] = set()
        counts = self.counts
        for model, result in zip(self.models, results, strict=True):
            if isinstance(result, RequestFailed):
                counts[result.reason] += 1
                yield SetAside(result.reason, FailedCall(problem, model, str(result)))
                continue
            counts["requests"] += result.requests
            for index, choice in enumerate(result.choices):
                counts["samples"] += 1
                text = answers.cut_run_on(choice.text).strip()
                grade = self.grader.grade(problem.task, problem.gold, text)
                sample = Sample(
                    problem=problem,
                    sample_id=_sample_id(problem.id, model, self.template.sha256, index),
                    response=choice.text,
                    steps=tuple(steps.solution_steps(text, grade.pred)),
                    pred=grade.pred,
                    verdict=grade.verdict,
                    meta=Provenance(
                        stage="sample",
                        model=model,
                        api=self.api,
                        **self.sampling.as_meta(),
                        n=self.n,
                        sample_index=index,
                        prompt=self.template.name,
                        prompt_sha256=self.template.sha256,
                        finish_reason=choice.finish_reason,
                        usage=dict(result.usage),
                        requests=result.requests,
                        choices_in_usage=len(result.choices),
                        checker=checker_info(problem.task),
                    ),
                )
                if choice.finish_reason == "length":
                    counts["truncated"] += 1
                    yield SetAside("truncated", sample)
                elif grade.verdict in ("no_answer", "timeout"):
                    reason = "no_answer" if grade.verdict == "no_answer" else "check_timeout"
                    counts[reason] += 1
                    yield SetAside(reason, sample)
                elif grade.verdict == "correct":
                    counts["correct"] += 1
                    if self.keep_all:
                        counts["written"] += 1
                        yield sample
                else:
                    key = _path_key(sample.steps)
                    if key in seen:
                        counts["duplicate"] += 1
                        continue
                    seen.add(key)
                    counts["wrong"] += 1
                    counts["written"] += 1
                    yield sample

    def summary(self, rejects: Rejects) -> str:
        self.counts["bad_rows"] = rejects.bad_rows
        return (
            f"sample: {fmt_counts(self.counts, SUMMARY_KEYS)}; {self.counts['written']} "
            f"written; {self.requests_summary()}"
        )


def _sample_id(problem_id: str, model: str, prompt_sha: str, index: int) -> str:
    digest = hashlib.sha256(
        f"{problem_id}\x1f{model}\x1f{prompt_sha}\x1f{index}".encode()
    ).hexdigest()
    return f"{problem_id}-{digest[:10]}"


def _path_key(path: tuple[str, ...]) -> str:
    return re.sub(r"\s+", " ", " ".join(path)).strip().lower()
