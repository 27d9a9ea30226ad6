"""`lemagen correct`: ask a corrector for the incorrect step, an explanation and a fix.

The query is the LEMA layout (methods.md §1.4): the four-shot prompt, then
`Question: ...\\nOriginal Solution:\\n{\\nStep 1: ...\\n}\\nIncorrect Step:`. Replies are parsed
whether or not the model repeats the `Incorrect Step:` label and with or without braces around
the corrected solution; `...` stands for the unchanged steps before the first corrected one.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from lemagen.engine import Call, Generation, Sampling
from lemagen.math import answers
from lemagen.math.grading import Grader, checker_info
from lemagen.math.steps import render_numbered
from lemagen.records.rows import problem_part, provenance
from lemagen.stages.templates import Template

CORRECT_VARIABLES = {"question", "steps"}

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


def full_solution(original: list[str], parsed: ParsedReply) -> list[str]:
    """The whole corrected chain of thought: the original steps the `...` stands for, then the
    corrected steps."""
    if not parsed.elided or parsed.corrected_from is None:
        return list(parsed.corrected_steps)
    return original[: parsed.corrected_from - 1] + parsed.corrected_steps


@dataclass
class Corrector:
    api: str
    template: Template
    model: str
    n: int
    sampling: Sampling

    def query(self, sample: dict[str, Any]) -> str:
        rendered = self.template.render(
            question=sample["question"], steps=render_numbered(sample["steps"])
        )
        return rendered.rstrip()  # the model continues right after `Incorrect Step:`

    def call(self, sample: dict[str, Any]) -> Call:
        return Call(self.model, self.query(sample), self.n, self.sampling)

    def records(
        self, sample: dict[str, Any], generation: Generation, grader: Grader
    ) -> list[dict[str, Any]]:
        original = {k: v for k, v in sample.items() if k not in problem_part(sample)}
        out = []
        for index, choice in enumerate(generation.choices):
            parsed = parse_reply(choice.text)
            pred: str | None = None
            verdict = "no_answer"
            if parsed.error is None:
                grade = grader.grade(
                    sample["task"], sample["gold"], "\n".join(parsed.corrected_steps)
                )
                pred, verdict = grade.pred, grade.verdict
            digest = hashlib.sha256(
                f"{sample['sample_id']}\x1f{self.model}\x1f{self.template.sha256}\x1f{index}".encode()
            ).hexdigest()
            out.append(
                {
                    **problem_part(sample),
                    "sample_id": sample["sample_id"],
                    "correction_id": f"{sample['sample_id']}-c{digest[:8]}",
                    "original": original,
                    "response": choice.text,
                    "incorrect_step": parsed.incorrect_step,
                    "explanation": parsed.explanation,
                    "corrected_from": parsed.corrected_from,
                    "elided": parsed.elided,
                    "corrected_steps": parsed.corrected_steps,
                    "pred": pred,
                    "verdict": verdict,
                    "reject_reason": None
                    if parsed.error is None
                    else f"unparseable: {parsed.error}",
                    "meta": provenance(
                        stage="correct",
                        model=self.model,
                        api=self.api,
                        sampling=self.sampling.as_meta(),
                        n=self.n,
                        index=index,
                        prompt_name=self.template.name,
                        prompt_sha256=self.template.sha256,
                        finish_reason=choice.finish_reason,
                        usage=generation.usage,
                        requests=generation.requests,
                        choices=len(generation.choices),
                        checker=checker_info(sample["task"]),
                    ),
                }
            )
        return out
