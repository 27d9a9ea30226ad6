"""`lemagen sample`: chain-of-thought samples from one or more reasoners, graded against gold.

`calls` says what to ask (one call per reasoner); the engine sends them; `outcome` grades the
samples of one problem in the caller's thread as rows finish.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from typing import Any

import msgspec

from lemagen.engine import Call, EngineConfig, Generation, RequestFailed, RequestShape, Sampling
from lemagen.math import answers, steps
from lemagen.math.gradebook import GradeBook
from lemagen.math.grading import Grade, checker_info
from lemagen.math.thinking import split_thinking
from lemagen.records import FailedCall, Problem, Provenance, Sample
from lemagen.records.problems import ProblemReader
from lemagen.records.rows import Rejects, SetAside
from lemagen.stage.base import EngineStage, Hooks, Output, fmt_counts
from lemagen.stage.templates import Template
from lemagen.terms import Reason

SAMPLE_VARIABLES = {"question"}
SUMMARY_KEYS = [
    "problems",
    "samples",
    "correct",
    "wrong",
    "duplicate",
    "truncated",
    "no_answer",
    "implicit_answer",
    "check_timeout",
    "no_agreement",
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
        request: RequestShape | None = None,
        thinking: str = "keep",
        min_agreement: float = 0.5,
        explicit_only: bool = False,
    ) -> None:
        super().__init__(config, check_timeout=check_timeout, max_pending=max_pending)
        self.reader = reader
        self.api = config.api
        self.template = template
        self.models = models
        self.n = n
        self.sampling = sampling
        self.keep_all = keep_all
        self.request = request or RequestShape()
        self.thinking = thinking
        self.min_agreement = min_agreement
        self.explicit_only = explicit_only
        self.grades = GradeBook(None)
        # The provenance every sample of the run shares, built once.
        self._meta: dict[str, Any] = {
            "stage": "sample",
            "api": self.api,
            **self.sampling.as_meta(),
            "n": self.n,
            "prompt": self.template.name,
            "prompt_sha256": self.template.sha256,
            **self.request.meta(),
        }
        self._timed_out = False  # a --gold vote comparison of the row being made ran out of time

    def read(self, data: dict[str, Any], where: str) -> Problem:
        return self.reader.read(data, where)

    def calls(self, row: Problem) -> list[Call]:
        prompt = self.template.render(question=row.question)
        return [self.request.call(model, prompt, self.n, self.sampling) for model in self.models]

    def start(self, stack: ExitStack) -> None:
        super().start(stack)
        self.grades = GradeBook(self.config.cache_dir)
        stack.callback(self.grades.close)

    def replay_options(self) -> dict[str, Any]:
        return {
            **self._meta,
            "models": self.models,
            "keep_all": self.keep_all,
            "thinking": self.thinking,
            "min_agreement": self.min_agreement,
            "explicit_only": self.explicit_only,
        }

    def run(self, rows: Iterable[Problem], hooks: Hooks) -> Iterator[Output]:
        return self.made_rows(rows, hooks, self._made, after_batch=self.grades.flush)

    def _made(self, problem: Problem, results: list[Any]) -> tuple[list[Output], bool]:
        """A problem's output, and whether it can be kept (no vote comparison timed out)."""
        self._timed_out = False
        out = list(self.outcome(problem, results))
        self.counts["problems"] += 1
        return out, not self._timed_out

    def _grade(self, problem: Problem, raw: str, text: str) -> Grade:
        """The grade of `text` (the answer part of the sample `raw`). One that needs the
        symbolic checker is kept across runs (`gradebook`): looked up there, else checked
        now and kept; the rest (every GSM8K answer, most MATH ones) cost less to grade
        again than to look up."""
        assert self.grader is not None
        grade = self.grader.grade_fast(problem.task, problem.gold, text)
        if grade is not None:
            return grade
        item = (problem.task, problem.gold, raw)
        grade = self.grades.get_many([item]).get(item)
        if grade is None:
            grade = self.grader.grade(problem.task, problem.gold, text)
            self.grades.add(item, grade)
        return grade

    def outcome(
        self, problem: Problem, results: list[Generation | RequestFailed]
    ) -> Iterator[Output]:
        """The samples of one problem: wrong ones (all with --keep all) to keep; truncated,
        unanswered and failed ones set aside, and with --explicit-answers-only those whose
        answer was not marked as the answer; a model's repeated wrong paths dropped, each
        counted in the `meta.duplicates` of the one kept."""
        assert self.grader is not None
        if not problem.gold:  # --gold vote: the samples' majority answer is the gold
            voted = self.vote(problem, results)
            if isinstance(voted, SetAside):
                self.counts["no_agreement"] += 1
                yield voted
                return
            problem = voted
        kept: dict[tuple[str, str], int] = {}  # (model, path) -> its sample in `out`
        duplicates: Counter[tuple[str, str]] = Counter()
        out: list[Output] = []
        counts = self.counts
        for model, result in zip(self.models, results, strict=True):
            if isinstance(result, RequestFailed):
                counts[result.reason] += 1
                out.append(SetAside(result.reason, FailedCall(problem, model, str(result))))
                continue
            counts["requests"] += result.requests
            for index, choice in enumerate(result.choices):
                counts["samples"] += 1
                thought = split_thinking(choice.text)
                answer = answers.cut_run_on(thought.answer)
                # A completion cut where it ran on into an invented next question holds a
                # whole solution: judged on what came before the cut, never as truncated.
                ran_on = answer != thought.answer
                text = answer.strip()
                grade = self._grade(problem, choice.text, text)
                thinking = None if self.thinking == "drop" else thought.thinking
                chain = text
                if self.thinking == "steps" and thought.thinking:
                    chain = f"{thought.thinking}\n{text}"
                sample = Sample(
                    **problem.parts(),
                    sample_id=_sample_id(problem.id, model, self.template.sha256, index),
                    response=thought.answer,
                    steps=tuple(steps.solution_steps(chain, grade.pred)),
                    pred=grade.pred,
                    extracted_by=grade.extracted_by,
                    verdict=grade.verdict,
                    meta=Provenance(
                        model=model,
                        **self._meta,
                        sample_index=index,
                        finish_reason=choice.finish_reason,
                        usage=dict(result.usage),
                        requests=result.requests,
                        choices_in_usage=len(result.choices),
                        checker=checker_info(problem.task),
                    ),
                    thinking=thinking,
                )
                if choice.finish_reason == "length" and not ran_on:
                    counts["truncated"] += 1
                    out.append(SetAside("truncated", sample))
                elif grade.verdict == "no_answer" or (
                    self.explicit_only and grade.extracted_by not in answers.EXPLICIT_METHODS
                ):
                    reason: Reason = (
                        "no_answer" if grade.verdict == "no_answer" else "implicit_answer"
                    )
                    counts[reason] += 1
                    out.append(SetAside(reason, sample))
                elif grade.verdict == "timeout":
                    counts["check_timeout"] += 1
                    out.append(SetAside("check_timeout", sample))
                elif grade.verdict == "correct":
                    counts["correct"] += 1
                    if self.keep_all:
                        counts["written"] += 1
                        out.append(sample)
                else:
                    key = (model, _path_key(sample.steps))
                    if key in kept:
                        counts["duplicate"] += 1
                        duplicates[key] += 1
                        continue
                    kept[key] = len(out)
                    counts["wrong"] += 1
                    counts["written"] += 1
                    out.append(sample)
        # Deduplicated after counting: the kept sample says how many it stands for.
        for key, dropped in duplicates.items():
            first = out[kept[key]]
            assert isinstance(first, Sample)
            assert isinstance(first.meta, Provenance)
            meta = msgspec.structs.replace(first.meta, duplicates=dropped)
            out[kept[key]] = msgspec.structs.replace(first, meta=meta)
        yield from out

    def vote(
        self, problem: Problem, results: list[Generation | RequestFailed]
    ) -> Problem | SetAside:
        assert self.grader is not None
        grader = self.grader

        def compare(task: str, gold: str, pred: str) -> str:
            verdict = grader.compare(task, gold, pred)
            if verdict == "timeout":  # counted as unequal: a re-run may vote otherwise
                self._timed_out = True
            return verdict

        return _vote(problem, results, compare, self.min_agreement)

    def summary(self, rejects: Rejects) -> str:
        self.counts["bad_rows"] = rejects.bad_rows
        return (
            f"sample: {fmt_counts(self.counts, SUMMARY_KEYS)}; {self.counts['written']} "
            f"written; {self.requests_summary()}"
        )


def _vote(
    problem: Problem,
    results: list[Generation | RequestFailed],
    compare: Callable[[str, str, str], str],
    min_agreement: float,
) -> Problem | SetAside:
    """The problem with the samples' majority answer as gold (answers that grade as equal count
    together), or set aside when no answer reaches `min_agreement` of the samples or two tie."""
    groups: list[list[str]] = []
    samples = 0
    for result in results:
        if isinstance(result, RequestFailed):
            continue
        for choice in result.choices:
            samples += 1
            text = answers.cut_run_on(split_thinking(choice.text).answer)
            pred = answers.extract(problem.task, text)
            if pred is None:
                continue
            for group in groups:
                if compare(problem.task, group[0], pred) == "correct":
                    group.append(pred)
                    break
            else:
                groups.append([pred])
    groups.sort(key=len, reverse=True)
    counts = {group[0]: len(group) for group in groups}
    top = len(groups[0]) if groups else 0
    agreement = round(top / samples, 4) if samples else 0.0
    tie = len(groups) > 1 and len(groups[1]) == top
    if not groups or tie or agreement < min_agreement:
        why = "a tie" if tie else f"agreement {agreement} < {min_agreement}"
        detail = f"no gold by vote ({why}): answers {counts or 'none'} of {samples} samples"
        return SetAside("no_agreement", problem, detail)
    gold = max(set(groups[0]), key=groups[0].count)  # the most frequent spelling of the answer
    vote = {"votes": top, "samples": samples, "agreement": agreement, "answers": counts}
    return msgspec.structs.replace(problem, gold=gold, gold_vote=vote)


def _sample_id(problem_id: str, model: str, prompt_sha: str, index: int) -> str:
    digest = hashlib.sha256(
        f"{problem_id}\x1f{model}\x1f{prompt_sha}\x1f{index}".encode()
    ).hexdigest()
    return f"{problem_id}-{digest[:10]}"


def _path_key(path: tuple[str, ...]) -> str:
    return _SPACES.sub(" ", " ".join(path)).strip().lower()


_SPACES = re.compile(r"\s+")
