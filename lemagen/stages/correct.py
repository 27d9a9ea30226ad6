"""`lemagen correct`: ask a corrector for the incorrect step, an explanation and a fix.

The query is the LEMA layout (methods.md §1.4): the four-shot prompt, then
`Question: ...\\nOriginal Solution:\\n{\\nStep 1: ...\\n}\\nIncorrect Step:`. Replies are parsed
whether or not the model repeats the `Incorrect Step:` label and with or without braces around
the corrected solution; `...` stands for the unchanged steps before the first corrected one.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from lemagen.engine import Call, EngineConfig, Generation, RequestFailed, Sampling
from lemagen.math import answers
from lemagen.math.grading import checker_info
from lemagen.math.steps import render_numbered
from lemagen.records import Correction, Provenance, Sample, Verdict
from lemagen.records.rows import Rejects, SetAside
from lemagen.stages import templates
from lemagen.stages.base import EngineStage, Hooks, Output, fmt_counts
from lemagen.stages.templates import Template

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

_LEAD = re.compile(
    r"^\s*(?:incorrect\s+step\s*[:\uff1a]?\s*)?\{?\s*(?:step\s*)?(\d+)\b", re.IGNORECASE
)
_LABELLED = re.compile(r"incorrect\s+step\s*[:\uff1a]\s*\{?\s*(?:step\s*)?(\d+)\b", re.IGNORECASE)
_EXPLANATION = re.compile(r"(?im)^[ \t]*explanation\s*[:\uff1a][ \t]*")
_CORRECT_SOLUTION = re.compile(r"(?im)^[ \t]*correct(?:ed)?\s+solution\s*[:\uff1a][ \t]*")
_STEP_LINE = re.compile(r"^step\s*(\d+)\s*[:.]\s*(.*)$", re.IGNORECASE)
_ELISION = re.compile(r"^(?:\.\.\.|…)$")


@dataclass
class ParsedReply:
    incorrect_step: int | None = None
    explanation: str | None = None
    corrected_from: int | None = None
    corrected_steps: list[str] = field(default_factory=list)
    elided: bool = False
    error: str | None = None


def parse_reply(reply: str) -> ParsedReply:
    """Parse a corrector reply (the text after `Incorrect Step:`)."""
    text = answers.cut_run_on(reply).replace("**", "").replace("```", "")
    out = ParsedReply()
    lead = _LEAD.match(text) or _LABELLED.search(text)
    if lead is None:
        out.error = "no incorrect step number"
        return out
    out.incorrect_step = int(lead.group(1))
    solution = _CORRECT_SOLUTION.search(text)
    explanation = _EXPLANATION.search(text)
    if explanation is not None:
        end = solution.start() if solution and solution.start() > explanation.end() else len(text)
        out.explanation = text[explanation.end() : end].strip() or None
    if out.explanation is None:
        out.error = "no explanation"
        return out
    if solution is None:
        out.error = "no 'Correct Solution:' block"
        return out
    body = text[solution.end() :].strip()
    if body.startswith("{"):
        close = re.search(r"(?m)^[ \t]*\}[ \t]*$", body)
        body = body[1 : close.start()] if close else body[1:]
    _read_steps(body, out)
    if not out.corrected_steps:
        out.error = "empty 'Correct Solution:' block"
    return out


def _read_steps(body: str, out: ParsedReply) -> None:
    numbered: list[tuple[int, str]] = []
    loose: list[str] = []
    for raw in body.split("\n"):
        line = raw.strip()
        if not line:
            continue
        if _ELISION.match(line):
            if not numbered and not loose:
                out.elided = True
            continue
        step = _STEP_LINE.match(line)
        if step:
            numbered.append((int(step.group(1)), step.group(2).strip()))
        elif numbered:
            index, previous = numbered[-1]
            numbered[-1] = (index, f"{previous}\n{line}")
        else:
            loose.append(line)
    if numbered:
        out.corrected_from = numbered[0][0]
        out.corrected_steps = [text for _, text in numbered]
    elif loose:
        out.corrected_from = out.incorrect_step if out.elided else 1
        out.corrected_steps = loose


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
