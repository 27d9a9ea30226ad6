"""`lemagen correct`: ask a corrector for the incorrect step, an explanation and a fix.

The query is the LEMA layout (methods.md §1.4): the four-shot prompt, then
`Question: ...\\nOriginal Solution:\\n{\\nStep 1: ...\\n}\\nIncorrect Step:`. Replies are read by
`lemagen.lema.replies` (the LEMA layout and the variants models write).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, get_args

from lemagen.engine import (
    Call,
    EngineConfig,
    Generation,
    RequestFailed,
    RequestShape,
    Sampling,
    run_rows,
)
from lemagen.lema.replies import JSON_SCHEMA, ParsedReply, parse_json_reply, parse_reply
from lemagen.math.grading import checker_info
from lemagen.math.steps import canonical, render_numbered
from lemagen.math.thinking import split_thinking
from lemagen.records import Correction, Provenance, Sample, Verdict
from lemagen.records.common import Task
from lemagen.records.rows import Rejects, SetAside
from lemagen.stage import templates
from lemagen.stage.base import EngineStage, Hooks, Output, fmt_counts
from lemagen.stage.templates import Template

__all__ = ["CorrectStage", "ParsedReply", "parse_reply"]

CORRECT_VARIABLES = {"question", "steps"}
SUMMARY_KEYS = [
    "wrong_samples",
    "corrections",
    "reach_gold",
    "unparseable",
    "asked_again",
    "still_unparseable",
    "passed_through",
    "request_failed",
    "no_choices",
    "budget_exhausted",
    "store_unwritable",
    "bad_rows",
]
# `--json`: the body parameter that asks for the correction as a JSON object.
RESPONSE_FORMAT: dict[str, Any] = {
    "response_format": {"type": "json_schema", "json_schema": JSON_SCHEMA}
}


@dataclass
class _Reask:
    """A wrong sample whose last `todo` replies could not be parsed: `asked` samples so far."""

    sample: Sample
    asked: int
    todo: int

    def call(self, stage: CorrectStage) -> Call:
        return stage.call(self.sample, self.asked + self.todo)


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
        reask: int = 0,
        json_mode: bool = False,
        request: RequestShape | None = None,
    ) -> None:
        super().__init__(config, check_timeout=check_timeout, max_pending=max_pending)
        self.api = config.api
        self.model = model
        self.prompt_name = prompt_name
        self.n = n
        self.sampling = sampling
        self.reask = reask
        self.json_mode = json_mode
        self.request = request or RequestShape()
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
            question=sample.problem.question, steps=render_numbered(sample.steps)
        )
        return rendered.rstrip()  # the model continues right after `Incorrect Step:`

    def call(self, sample: Sample, n: int) -> Call:
        extra = RESPONSE_FORMAT if self.json_mode else None
        return self.request.call(self.model, self.query(sample), n, self.sampling, extra)

    def calls(self, row: Sample) -> list[Call]:
        if row.verdict != "wrong":
            return []
        return [self.call(row, self.n)]

    def parse(self, text: str) -> ParsedReply:
        """A reply read as the JSON object `--json` asks for or, from an endpoint that answered
        in the prompt's layout instead, as LEMA text."""
        text = split_thinking(text).answer  # a reasoning corrector's thinking is not its reply
        if not self.json_mode:
            return parse_reply(text)
        parsed = parse_json_reply(text)
        if parsed.error == "not a JSON object":
            as_text = parse_reply(text)
            if as_text.error is None:
                return as_text
        return parsed

    def replay_options(self) -> dict[str, Any]:
        return {
            "stage": "correct",
            "api": self.api,
            "model": self.model,
            "prompts": {
                task: (self.template(task).name, self.template(task).sha256)
                for task in get_args(Task)
            },
            "n": self.n,
            **self.sampling.as_meta(),
            "reask": self.reask,
            "json": self.json_mode,
            **self.request.meta(),
        }

    def run(self, rows: Iterable[Sample], hooks: Hooks) -> Iterator[Output]:
        counts = self.counts
        reasks: list[_Reask] = []

        def made(sample: Sample, results: list[Any]) -> tuple[list[Output], bool]:
            if not results:
                counts["passed_through"] += 1
                return [sample], True
            counts["wrong_samples"] += 1
            waiting = len(reasks)
            out = list(self.read_result(sample, results[0], 0, self.n, reasks))
            # Not kept: a row with replies to ask again (its output is not complete), or
            # whose check ran out of time (a re-run checks again).
            complete = len(reasks) == waiting and not any(
                isinstance(item, Correction) and item.verdict == "timeout" for item in out
            )
            return out, complete

        yield from self.made_rows(rows, hooks, made)
        # --reask: ask again, as new sample indices (the store keeps every reply), for the
        # replies that could not be parsed, up to `reask` more times each.
        for _ in range(self.reask):
            if not reasks or self.engine.stopped:
                break
            jobs, reasks = reasks, []
            for job in jobs:
                counts["asked_again"] += job.todo
            for job, results in run_rows(
                self.engine,
                jobs,
                lambda job: [job.call(self)],
                max_pending=self.max_pending,
                on_wait=hooks.on_wait,
            ):
                n = job.asked + job.todo
                yield from self.read_result(job.sample, results[0], job.asked, n, reasks)

    def read_result(
        self,
        sample: Sample,
        result: Generation | RequestFailed,
        first: int,
        n: int,
        reasks: list[_Reask],
    ) -> Iterator[Output]:
        """The corrections in replies `first`.. of a call for `n` samples; a sample whose
        replies could not all be parsed goes into `reasks`."""
        counts = self.counts
        if isinstance(result, RequestFailed):
            counts[result.reason] += 1
            yield SetAside(result.reason, sample, str(result))
            return
        unparseable = 0
        for correction in self.corrections(sample, result, first, n):
            counts["corrections"] += 1
            if correction.reject_reason:
                counts["unparseable"] += 1
                if first:  # a reply asked for again
                    counts["still_unparseable"] += 1
                unparseable += 1
            elif correction.verdict == "correct":
                counts["reach_gold"] += 1
            yield correction
        if unparseable and self.reask:
            reasks.append(_Reask(sample, n, unparseable))

    def corrections(
        self, sample: Sample, generation: Generation, first: int = 0, n: int | None = None
    ) -> list[Correction]:
        assert self.grader is not None
        problem = sample.problem
        template = self.template(problem.task)
        original = sample.as_original()
        extra = {"response_format": "json_schema"} if self.json_mode else {}
        mode = "\x1fjson" if self.json_mode else ""  # a --json reply is another correction
        out = []
        for index, choice in enumerate(generation.choices[first:], first):
            parsed = self.parse(choice.text)
            pred: str | None = None
            verdict: Verdict = "no_answer"
            corrected = parsed.corrected_steps
            if parsed.error is None:
                grade = self.grader.grade(problem.task, problem.gold, "\n".join(corrected))
                pred, verdict = grade.pred, grade.verdict
                corrected = canonical(corrected, pred)  # the reply as it came is `response`
            digest = hashlib.sha256(
                f"{sample.sample_id}\x1f{self.model}\x1f{template.sha256}\x1f{index}{mode}".encode()
            ).hexdigest()
            assert sample.sample_id is not None
            out.append(
                Correction(
                    **problem.parts(),
                    sample_id=sample.sample_id,
                    correction_id=f"{sample.sample_id}-c{digest[:8]}",
                    original=original,
                    response=choice.text,
                    incorrect_step=parsed.incorrect_step,
                    explanation=parsed.explanation,
                    corrected_from=parsed.corrected_from,
                    elided=parsed.elided,
                    corrected_steps=tuple(corrected),
                    pred=pred,
                    verdict=verdict,
                    reject_reason=None if parsed.error is None else f"unparseable: {parsed.error}",
                    meta=Provenance(
                        stage="correct",
                        model=self.model,
                        api=self.api,
                        **self.sampling.as_meta(),
                        n=self.n if n is None else n,
                        sample_index=index,
                        prompt=template.name,
                        prompt_sha256=template.sha256,
                        finish_reason=choice.finish_reason,
                        usage=dict(generation.usage),
                        requests=generation.requests,
                        choices_in_usage=len(generation.choices),
                        checker=checker_info(problem.task),
                        **self.request.meta(),
                        extra=extra,
                    ),
                    extra=dict(sample.extra),  # the user's own fields travel on
                )
            )
        return out

    def summary(self, rejects: Rejects) -> str:
        self.counts["bad_rows"] = rejects.bad_rows
        return f"correct: {fmt_counts(self.counts, SUMMARY_KEYS)}; {self.requests_summary()}"
