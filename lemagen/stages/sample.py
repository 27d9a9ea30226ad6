"""`lemagen sample`: chain-of-thought samples from one or more reasoners, graded against gold.

`Sampler.calls` says what to ask (one call per reasoner); the engine sends them; the grading
half (`Sampler.records`) runs in the caller's thread as rows finish.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from lemagen.engine import Call, Generation, RequestFailed, Sampling
from lemagen.math import answers, steps
from lemagen.math.grading import Grader, checker_info
from lemagen.records.rows import problem_part, provenance
from lemagen.stages.templates import Template

SAMPLE_VARIABLES = {"question"}


@dataclass
class SampleOutcome:
    """What became of one problem: records to write, rows to set aside, and counts."""

    keep: list[dict[str, Any]] = field(default_factory=list)
    set_aside: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    usage: Counter[str] = field(default_factory=Counter)


@dataclass
class Sampler:
    api: str
    template: Template
    models: list[str]
    n: int
    sampling: Sampling
    keep_all: bool = False

    def calls(self, problem: dict[str, Any]) -> list[Call]:
        prompt = self.template.render(question=problem["question"])
        return [Call(model, prompt, self.n, self.sampling) for model in self.models]

    def records(
        self,
        problem: dict[str, Any],
        results: list[Generation | RequestFailed],
        grader: Grader,
    ) -> SampleOutcome:
        outcome = SampleOutcome()
        seen: set[str] = set()
        task = problem["task"]
        for model, result in zip(self.models, results, strict=True):
            if isinstance(result, RequestFailed):
                outcome.counts[result.reason] += 1
                outcome.set_aside.append(
                    (
                        result.reason,
                        {**problem_part(problem), "model": model, "error": str(result)},
                    )
                )
                continue
            outcome.usage.update(result.usage)
            outcome.counts["requests"] += result.requests
            for index, choice in enumerate(result.choices):
                outcome.counts["samples"] += 1
                text = answers.cut_run_on(choice.text).strip()
                grade = grader.grade(task, problem["gold"], text)
                record = {
                    **problem_part(problem),
                    "sample_id": _sample_id(problem["id"], model, self.template.sha256, index),
                    "response": choice.text,
                    "steps": steps.solution_steps(text, grade.pred),
                    "pred": grade.pred,
                    "verdict": grade.verdict,
                    "meta": provenance(
                        stage="sample",
                        model=model,
                        api=self.api,
                        sampling=self.sampling.as_meta(),
                        n=self.n,
                        index=index,
                        prompt_name=self.template.name,
                        prompt_sha256=self.template.sha256,
                        finish_reason=choice.finish_reason,
                        usage=result.usage,
                        requests=result.requests,
                        choices=len(result.choices),
                        checker=checker_info(task),
                    ),
                }
                if choice.finish_reason == "length":
                    outcome.counts["truncated"] += 1
                    outcome.set_aside.append(("truncated", record))
                elif grade.verdict in ("no_answer", "timeout"):
                    reason = "no_answer" if grade.verdict == "no_answer" else "check_timeout"
                    outcome.counts[reason] += 1
                    outcome.set_aside.append((reason, record))
                elif grade.verdict == "correct":
                    outcome.counts["correct"] += 1
                    if self.keep_all:
                        outcome.keep.append(record)
                else:
                    key = _path_key(record["steps"])
                    if key in seen:
                        outcome.counts["duplicate"] += 1
                        continue
                    seen.add(key)
                    outcome.counts["wrong"] += 1
                    outcome.keep.append(record)
        return outcome


def _sample_id(problem_id: str, model: str, prompt_sha: str, index: int) -> str:
    digest = hashlib.sha256(
        f"{problem_id}\x1f{model}\x1f{prompt_sha}\x1f{index}".encode()
    ).hexdigest()
    return f"{problem_id}-{digest[:10]}"


def _path_key(path: list[str]) -> str:
    return re.sub(r"\s+", " ", " ".join(path)).strip().lower()
