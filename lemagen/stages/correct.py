"""`lemagen correct`: ask a corrector for the incorrect step, an explanation and a fix.

The query is the LEMA layout (methods.md §1.4): the four-shot prompt, then
`Question: ...\\nOriginal Solution:\\n{\\nStep 1: ...\\n}\\nIncorrect Step:`. Replies are read by
`lemagen.stages.replies` (the LEMA layout and the variants models write).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from typing import Any

from lemagen.engine import Call, EngineConfig, Generation, RequestFailed, Sampling
from lemagen.math.grading import checker_info
from lemagen.math.steps import render_numbered
from lemagen.records.rows import Rejects, SetAside
from lemagen.records.schema import Correction, Provenance, Sample, Verdict
from lemagen.stages import templates
from lemagen.stages.base import EngineStage, Hooks, Output, fmt_counts
from lemagen.stages.replies import ParsedReply, parse_reply
from lemagen.stages.templates import Template

__all__ = ["CorrectStage", "ParsedReply", "parse_reply"]

CORRECT_VARIABLES = {"question", "steps"}
SUMMARY_KEYS = [
    "wrong_samples",
    "corrections",
    "reach_gold",
    "unparseable",
    "passed_through",
    "request_failed",
    "budget_exhausted",
    "bad_rows",
]

class CorrectStage(EngineStage[Sample]):
    """Wrong samples become corrector calls; other samples pass through unchanged."""

    name = "correct"
    unit = "sample"

    def __init__(
        self,
        config: EngineConfig,
        *,
        model: str,
        prompt_name: str | None,
        n: int,
        sampling: Sampling,
        check_timeout: float,
        max_pending: int,
    ) -> None:
        super().__init__(config, check_timeout=check_timeout, max_pending=max_pending)
        self.api = config.api
        self.model = model
        self.prompt_name = prompt_name
        self.n = n
        self.sampling = sampling
        self._templates: dict[str, Template] = {}
        if prompt_name:
            self.template("gsm8k")  # a broken prompt file fails before anything is read

    def template(self, task: str) -> Template:
        if task not in self._templates:
            template = templates.load(self.prompt_name or f"correct.{task}")
            template.check(CORRECT_VARIABLES)
            self._templates[task] = template
        return self._templates[task]

    def read(self, data: dict[str, Any], where: str) -> Sample:
        sample = Sample.from_dict(data, where, strict=True)
        self.template(sample.task)  # a broken prompt fails before any request
        return sample

    def query(self, sample: Sample) -> str:
        rendered = self.template(sample.task).render(
            question=sample.the_problem.question, steps=render_numbered(sample.steps)
        )
        return rendered.rstrip()  # the model continues right after `Incorrect Step:`

    def calls(self, row: Sample) -> list[Call]:
        if row.verdict != "wrong":
            return []
        return [Call(self.model, self.query(row), self.n, self.sampling)]

    def run(self, rows: Iterable[Sample], hooks: Hooks) -> Iterator[Output]:
        counts = self.counts
        for sample, results in self.sent(rows, hooks):
            hooks.on_row(1)
            if not results:
                counts["passed_through"] += 1
                yield sample
                continue
            counts["wrong_samples"] += 1
            result = results[0]
            if isinstance(result, RequestFailed):
                counts[result.reason] += 1
                yield SetAside(result.reason, sample, str(result))
                continue
            for correction in self.corrections(sample, result):
                counts["corrections"] += 1
                if correction.reject_reason:
                    counts["unparseable"] += 1
                elif correction.verdict == "correct":
                    counts["reach_gold"] += 1
                yield correction

    def corrections(self, sample: Sample, generation: Generation) -> list[Correction]:
        assert self.grader is not None
        problem = sample.the_problem
        template = self.template(problem.task)
        original = sample.as_original()
        out = []
        for index, choice in enumerate(generation.choices):
            parsed = parse_reply(choice.text)
            pred: str | None = None
            verdict: Verdict = "no_answer"
            if parsed.error is None:
                grade = self.grader.grade(
                    problem.task, problem.gold, "\n".join(parsed.corrected_steps)
                )
                pred, verdict = grade.pred, grade.verdict
            digest = hashlib.sha256(
                f"{sample.sample_id}\x1f{self.model}\x1f{template.sha256}\x1f{index}".encode()
            ).hexdigest()
            assert sample.sample_id is not None
            out.append(
                Correction(
                    problem=problem,
                    sample_id=sample.sample_id,
                    correction_id=f"{sample.sample_id}-c{digest[:8]}",
                    original=original,
                    response=choice.text,
                    incorrect_step=parsed.incorrect_step,
                    explanation=parsed.explanation,
                    corrected_from=parsed.corrected_from,
                    elided=parsed.elided,
                    corrected_steps=tuple(parsed.corrected_steps),
                    pred=pred,
                    verdict=verdict,
                    reject_reason=None if parsed.error is None else f"unparseable: {parsed.error}",
                    meta=Provenance(
                        stage="correct",
                        model=self.model,
                        api=self.api,
                        **self.sampling.as_meta(),
                        n=self.n,
                        sample_index=index,
                        prompt=template.name,
                        prompt_sha256=template.sha256,
                        finish_reason=choice.finish_reason,
                        usage=dict(generation.usage),
                        requests=generation.requests,
                        choices_in_usage=len(generation.choices),
                        checker=checker_info(problem.task),
                    ),
                )
            )
        return out

    def summary(self, rejects: Rejects) -> str:
        self.counts["bad_rows"] = rejects.bad_rows
        return f"correct: {fmt_counts(self.counts, SUMMARY_KEYS)}; {self.requests_summary()}"
