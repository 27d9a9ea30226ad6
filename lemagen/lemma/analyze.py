"""`lemagen analyze`: an analyser model labels each wrong sample with its first erroneous step
and the type of its error, from LEMMA's taxonomy (methods.md §2.2; our own prompt, `analyze`).

Replies are read by `lemagen.lemma.replies.parse_analysis`. A reply that cannot be
read, that names a type outside the taxonomy, that finds no error, or names a step the sample
does not have is set aside with its reason and the reply (the request store keeps it too).
Samples that are not wrong pass through unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from lemagen.engine import Call, Generation, RequestFailed
from lemagen.lemma.replies import parse_analysis
from lemagen.math.grading import checker_info
from lemagen.math.steps import render_numbered
from lemagen.records import TAXONOMY, Analysis, Problem, Sample
from lemagen.records.rows import Rejects, SetAside
from lemagen.stage.base import (
    Hooks,
    Output,
    PromptedStage,
    fmt_counts,
    one_call_provenance,
)

ANALYZE_VARIABLES = {"question", "gold", "reference", "steps", "taxonomy"}
SUMMARY_KEYS = [
    "wrong_samples",
    "analysed",
    "unparseable",
    "unknown_error_type",
    "says_correct",
    "step_out_of_range",
    "truncated",
    "passed_through",
    "request_failed",
    "no_choices",
    "budget_exhausted",
    "store_unwritable",
    "bad_rows",
]


def taxonomy_text() -> str:
    """The taxonomy as the prompt lists it: `- identifier (Name): definition`."""
    return "\n".join(f"- {t.id} ({t.name}): {t.definition}" for t in TAXONOMY)


def reference_text(problem: Problem) -> str:
    """The gold solution block of a prompt, or nothing when the problem has none."""
    if not problem.reference:
        return ""
    return f"\nReference solution:\n{problem.reference.strip()}\n"


class AnalyzeStage(PromptedStage[Sample]):
    name = "analyze"
    unit = "sample"
    variables = ANALYZE_VARIABLES
    _taxonomy = taxonomy_text()

    def read(self, data: dict[str, Any], where: str) -> Sample:
        return Sample.from_dict(data, where, strict=True)

    def query(self, sample: Sample) -> str:
        problem = sample.problem
        return self.template.render(
            question=problem.question,
            gold=problem.gold,
            reference=reference_text(problem),
            steps=render_numbered(sample.steps),
            taxonomy=self._taxonomy,
        ).rstrip()

    def calls(self, row: Sample) -> list[Call]:
        if row.verdict != "wrong":
            return []
        return [self.request.call(self.model, self.query(row), 1, self.sampling)]

    def run(self, rows: Iterable[Sample], hooks: Hooks) -> Iterator[Output]:
        for sample, results in self.sent(rows, hooks):
            hooks.on_row(1)
            if not results:
                self.counts["passed_through"] += 1
                yield sample
                continue
            self.counts["wrong_samples"] += 1
            result = results[0]
            if isinstance(result, RequestFailed):
                self.counts[result.reason] += 1
                yield SetAside(result.reason, sample, str(result))
                continue
            yield self.analysed(sample, result)

    def analysed(self, sample: Sample, generation: Generation) -> Analysis | SetAside:
        choice = generation.choices[0]
        parsed = parse_analysis(choice.text)
        reason, detail = parsed.error, parsed.detail
        if choice.finish_reason == "length":
            reason, detail = "truncated", "the analyser's reply was cut at --max-tokens"
        elif reason is None and not 1 <= (parsed.step or 0) <= len(sample.steps):
            reason = "step_out_of_range"
            detail = f"step {parsed.step} of a {len(sample.steps)}-step solution"
        problem = sample.problem
        assert sample.sample_id is not None
        meta = one_call_provenance(
            "analyze",
            model=self.model,
            api=self.api,
            sampling=self.sampling.as_meta(),
            template=self.template,
            choice=choice,
            generation=generation,
            request=self.request,
            checker=checker_info(problem.task),
        )
        if reason is not None:
            self.counts[reason] += 1
            kept = {"reply": choice.text, "meta": meta.to_dict()}
            return SetAside(reason, {**sample.to_dict(), "analysis": kept}, detail)
        assert parsed.step is not None
        assert parsed.error_type is not None
        self.counts["analysed"] += 1
        self.counts[f"type:{parsed.error_type}"] += 1
        return Analysis(
            **problem.parts(),
            sample_id=sample.sample_id,
            original=sample.as_original(),
            response=choice.text,
            first_error_step=parsed.step,
            error_type=parsed.error_type,
            explanation=parsed.explanation,
            meta=meta,
            extra=dict(sample.extra),
        )

    def summary(self, rejects: Rejects) -> str:
        self.counts["bad_rows"] = rejects.bad_rows
        types = ", ".join(
            f"{k[5:]} {v}" for k, v in self.counts.most_common() if k.startswith("type:")
        )
        return (
            f"analyze: {fmt_counts(self.counts, SUMMARY_KEYS)}; error types: {types or 'none'}; "
            f"{self.requests_summary()}"
        )
