"""`lemagen inject --model M`: a teacher model puts one mistake of a given type (LEMMA's
taxonomy) into a given step of a problem's gold solution (methods.md §2.3, step 5; our own
prompt, `inject`).

Types come from `--types` or are drawn, seeded per problem, by the frequencies of an analysed
run (`lemagen analyze` output); the step is drawn among the solution's steps before its final
`The answer is` step. A reply is kept only if it parsed, was not truncated, left the steps
before the named one unchanged, changed the named step, and reaches an answer that is not gold;
otherwise it is set aside with the reason. Kept mistakes are written in `lemagen correct`'s
shape: the original is the injected wrong solution, the correction the gold steps from the
named step on, so `filter` and `export` take them.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

import msgspec

from lemagen.engine import Call, EngineConfig, Generation, RequestFailed, RequestShape, Sampling
from lemagen.lema.formats import lema_correction
from lemagen.lema.gold_cot import render_gsm8k, render_math
from lemagen.lemma.replies import parse_injection
from lemagen.math.grading import checker_info
from lemagen.math.steps import canonical, render_numbered, split_steps
from lemagen.math.thinking import split_thinking
from lemagen.records import BY_ID, Correction, Original, Problem, Provenance
from lemagen.records.problems import ProblemReader
from lemagen.records.rows import Rejects, SetAside
from lemagen.stage.base import (
    Hooks,
    Output,
    PromptedStage,
    fmt_counts,
    one_call_provenance,
)
from lemagen.stage.templates import Template
from lemagen.terms import Reason, Verdict

TEACH_VARIABLES = {"question", "steps", "step", "error_type", "definition"}
SUMMARY_KEYS = [
    "problems",
    "asked",
    "injected",
    "unparseable",
    "truncated",
    "prefix_changed",
    "step_missing",
    "step_unchanged",
    "answer_unchanged",
    "no_answer",
    "check_timeout",
    "no_gold_solution",
    "request_failed",
    "no_choices",
    "budget_exhausted",
    "store_unwritable",
    "bad_rows",
]
_SPACE = re.compile(r"\s+")
# Why an injected solution whose answer is not wrong is set aside, by its verdict.
NOT_WRONG: dict[Verdict, Reason] = {
    "correct": "answer_unchanged",
    "no_answer": "no_answer",
    "timeout": "check_timeout",
}


def gold_steps(problem: Problem) -> list[str]:
    """The problem's gold solution as steps ending with `The answer is X.` (empty: none)."""
    if not problem.reference or not problem.reference.strip():
        return []
    if problem.task == "gsm8k":
        text = render_gsm8k(problem.reference)
        if text is None:
            return []
    else:
        text = render_math(problem.reference, problem.gold)
    return split_steps(text)


def _norm(step: str) -> str:
    """A step compared as text: spacing (`48/2` or `48 / 2`), bold and a final full stop do not
    count."""
    return _SPACE.sub("", step.replace("**", "")).rstrip(".")


class TypeDraw:
    """Error types to ask for: the given ones alike, or by their frequencies in an analysis;
    with `by_problem`, by a problem's own frequencies when it has any (LEMMA samples each
    question's distribution), else by all of them."""

    def __init__(
        self, weights: Counter[str], by_problem: dict[str, Counter[str]] | None = None
    ) -> None:
        self.all = self._table(weights)
        self.by_problem = {k: self._table(v) for k, v in (by_problem or {}).items()}

    @staticmethod
    def _table(weights: Counter[str]) -> tuple[list[str], list[int]]:
        types = sorted(weights)
        return types, [weights[t] for t in types]

    def draw(self, rng: random.Random, problem_id: str) -> str:
        types, weights = self.by_problem.get(problem_id, self.all)
        return rng.choices(types, weights)[0]


class TeachStage(PromptedStage[Problem]):
    name = "inject"
    unit = "problem"
    variables = TEACH_VARIABLES

    def __init__(
        self,
        config: EngineConfig,
        *,
        reader: ProblemReader,
        model: str,
        template: Template,
        types: TypeDraw,
        per_question: int,
        seed: int,
        sampling: Sampling,
        check_timeout: float,
        max_pending: int,
        request: RequestShape | None = None,
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
        self.reader = reader
        self.types = types
        self.per_question = per_question
        self.seed = seed

    def read(self, data: dict[str, Any], where: str) -> Problem:
        return self.reader.read(data, where)

    def plan(self, problem: Problem) -> list[tuple[str, int]]:
        """The distinct (error type, step number) pairs to ask for, seeded per problem."""
        steps = gold_steps(problem)
        if len(steps) < 2:
            return []
        rng = random.Random(f"{self.seed}\x1f{problem.id}")
        pairs: dict[tuple[str, int], None] = {}
        for _ in range(8 * self.per_question):
            if len(pairs) == self.per_question:
                break
            pairs[(self.types.draw(rng, problem.id), rng.randrange(1, len(steps)))] = None
        return list(pairs)

    def query(self, problem: Problem, error_type: str, step: int) -> str:
        kind = BY_ID[error_type]
        return self.template.render(
            question=problem.question,
            steps=render_numbered(gold_steps(problem)),
            step=str(step),
            error_type=kind.id,
            definition=kind.definition,
        ).rstrip()

    def calls(self, row: Problem) -> list[Call]:
        return [
            self.request.call(self.model, self.query(row, t, k), 1, self.sampling)
            for t, k in self.plan(row)
        ]

    def run(self, rows: Iterable[Problem], hooks: Hooks) -> Iterator[Output]:
        for problem, results in self.sent(rows, hooks):
            hooks.on_row(1)
            self.counts["problems"] += 1
            if not results:
                self.counts["no_gold_solution"] += 1
                yield SetAside("no_gold_solution", problem, "no gold solution of two steps or more")
                continue
            for (error_type, step), result in zip(self.plan(problem), results, strict=True):
                self.counts["asked"] += 1
                if isinstance(result, RequestFailed):
                    self.counts[result.reason] += 1
                    yield SetAside(result.reason, problem, str(result))
                    continue
                yield self.injected(problem, error_type, step, result)

    def injected(
        self, problem: Problem, error_type: str, k: int, generation: Generation
    ) -> Correction | SetAside:
        assert self.grader is not None
        choice = generation.choices[0]
        gold = gold_steps(problem)
        parsed = parse_injection(choice.text)
        steps = parsed.steps
        reason, detail = parsed.error, parsed.detail
        pred: str | None = None
        if choice.finish_reason == "length":
            reason, detail = "truncated", "the teacher's reply was cut at --max-tokens"
        elif reason is None and len(steps) < k:
            reason, detail = "step_missing", f"the reply stops before Step {k}"
        elif reason is None and [_norm(s) for s in steps[: k - 1]] != [
            _norm(s) for s in gold[: k - 1]
        ]:
            reason, detail = "prefix_changed", f"a step before Step {k} was changed"
        elif reason is None and _norm(steps[k - 1]) == _norm(gold[k - 1]):
            reason, detail = "step_unchanged", f"Step {k} is as it was"
        elif reason is None:
            steps = gold[: k - 1] + steps[k - 1 :]  # the unchanged steps exactly as given
            graded = self.grader.grade(problem.task, problem.gold, "\n".join(steps))
            pred = graded.pred
            steps = steps[: k - 1] + canonical(steps[k - 1 :], pred)  # the teacher's own text
            if graded.verdict != "wrong":
                reason = NOT_WRONG[graded.verdict]
                detail = f"the injected solution's answer {graded.pred!r} is not wrong"
        meta = one_call_provenance(
            "inject",
            model=self.model,
            api=self.api,
            # `seed` is inject's own (--seed: which types and steps were drawn); no sampling
            # seed is sent to the teacher.
            sampling={**self.sampling.as_meta(), "seed": self.seed},
            template=self.template,
            choice=choice,
            generation=generation,
            request=self.request,
            checker=checker_info(problem.task),
            extra={"injected_error_type": error_type, "injected_step": k},
        )
        if reason is not None:
            self.counts[reason] += 1
            kept = {
                "reply": choice.text,
                "error_type": error_type,
                "step": k,
                "meta": meta.to_dict(),
            }
            return SetAside(reason, {**problem.to_dict(), "injection": kept}, detail)
        self.counts["injected"] += 1
        self.counts[f"type:{error_type}"] += 1
        return self.record(problem, error_type, k, steps, pred, parsed.explanation, meta, choice)

    def record(
        self,
        problem: Problem,
        error_type: str,
        k: int,
        steps: list[str],
        pred: str | None,
        explanation: str | None,
        meta: Provenance,
        choice: Any,
    ) -> Correction:
        assert self.grader is not None
        gold = gold_steps(problem)
        digest = hashlib.sha256(
            "\x1f".join([problem.id, self.model, error_type, str(k), *steps]).encode()
        ).hexdigest()
        sample_id = f"{problem.id}-t{digest[:10]}"
        corrected = tuple(gold[k - 1 :])
        graded = self.grader.grade(problem.task, problem.gold, corrected[-1])
        name = BY_ID[error_type].name.lower()
        record = Correction(
            **problem.parts(),
            sample_id=sample_id,
            correction_id=f"{sample_id}-c0",
            original=Original(
                response=split_thinking(choice.text).answer,
                steps=tuple(steps),
                pred=pred,
                verdict="wrong",
                meta=meta,
            ),
            response="",
            incorrect_step=k,
            explanation=explanation or f"Step {k} makes a {name}.",
            corrected_from=k,
            elided=k > 1,
            corrected_steps=corrected,
            pred=graded.pred,
            verdict=graded.verdict,
            reject_reason=None,
            meta=meta,
        )
        return msgspec.structs.replace(record, response=lema_correction(record).completion)

    def summary(self, rejects: Rejects) -> str:
        self.counts["bad_rows"] = rejects.bad_rows
        types = ", ".join(
            f"{k[5:]} {v}" for k, v in self.counts.most_common() if k.startswith("type:")
        )
        return (
            f"inject: {fmt_counts(self.counts, SUMMARY_KEYS)}; error types: {types or 'none'}; "
            f"{self.requests_summary()}"
        )
