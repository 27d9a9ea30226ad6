"""`lemagen art ask` and `lemagen art trust`: training data for ART's Asker and Truster
(methods.md §5; the formats are our design, as the paper's are unpublished).

- `AskStage`: for each graded sample (a prediction), a model writes the sub-questions its
  problem breaks into (our own prompt, `art-ask`; one request per problem, as the request is
  the same for every prediction of it); the record says whether the prediction answers them all,
  labelled by its verdict against gold. Predictions with no verdict are set aside.
- `TrustStage` (no model): each correction becomes a choice between the initial prediction (the
  original solution) and the refined one (the corrected solution), the preferred one labelled
  by gold; pairs where both or neither reach gold are set aside (`no_preference`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from lemagen.art.replies import parse_sub_questions
from lemagen.engine import Call, Generation, RequestFailed
from lemagen.lemma.analyze import reference_text
from lemagen.records import (
    AskerRecord,
    Correction,
    Prediction,
    Sample,
    TrusterRecord,
    read_sample_or_correction,
)
from lemagen.records.art import Preferred
from lemagen.records.rows import Rejects, SetAside
from lemagen.stage.base import (
    Hooks,
    Output,
    PromptedStage,
    Stage,
    fmt_counts,
    one_call_provenance,
)

ASK_VARIABLES = {"question", "reference"}
ASK_KEYS = [
    "predictions",
    "asker_records",
    "answers_all",
    "unparseable",
    "truncated",
    "no_verdict",
    "request_failed",
    "no_choices",
    "budget_exhausted",
    "store_unwritable",
    "bad_rows",
]
TRUST_KEYS = [
    "corrections",
    "truster_records",
    "refined_preferred",
    "initial_preferred",
    "no_preference",
    "unparseable",
    "step_out_of_range",
    "not_a_correction",
    "bad_rows",
]


class AskStage(PromptedStage[Sample]):
    name = "art ask"
    unit = "sample"
    variables = ASK_VARIABLES

    def read(self, data: dict[str, Any], where: str) -> Sample:
        return Sample.from_dict(data, where, strict=True)

    def calls(self, row: Sample) -> list[Call]:
        if row.verdict not in ("correct", "wrong"):
            return []
        problem = row.problem
        query = self.template.render(
            question=problem.question, reference=reference_text(problem)
        ).rstrip()
        return [self.request.call(self.model, query, 1, self.sampling)]

    def run(self, rows: Iterable[Sample], hooks: Hooks) -> Iterator[Output]:
        for sample, results in self.sent(rows, hooks):
            hooks.on_row(1)
            self.counts["predictions"] += 1
            if not results:
                self.counts["no_verdict"] += 1
                yield SetAside("no_verdict", sample, f"verdict {sample.verdict}: no label")
                continue
            result = results[0]
            if isinstance(result, RequestFailed):
                self.counts[result.reason] += 1
                yield SetAside(result.reason, sample, str(result))
                continue
            yield self.asked(sample, result)

    def asked(self, sample: Sample, generation: Generation) -> AskerRecord | SetAside:
        choice = generation.choices[0]
        parsed = parse_sub_questions(choice.text)
        reason, detail = parsed.error, parsed.detail
        if choice.finish_reason == "length":
            reason, detail = "truncated", "the asker's reply was cut at --max-tokens"
        meta = one_call_provenance(
            "art-ask",
            model=self.model,
            api=self.api,
            sampling=self.sampling.as_meta(),
            template=self.template,
            choice=choice,
            generation=generation,
            request=self.request,
        )
        if reason is not None:
            self.counts[reason] += 1
            kept = {"asker_reply": choice.text, "asker": {"meta": meta.to_dict()}}
            return SetAside(reason, {**sample.to_dict(), **kept}, detail)
        assert sample.sample_id is not None
        answers_all = sample.verdict == "correct"
        self.counts["asker_records"] += 1
        self.counts["answers_all"] += answers_all
        return AskerRecord(
            **sample.parts(),
            sample_id=sample.sample_id,
            prediction=Prediction("\n".join(sample.steps), sample.pred, sample.verdict),
            sub_questions=tuple(parsed.questions),
            answers_all=answers_all,
            meta=meta,
        )

    def summary(self, rejects: Rejects) -> str:
        self.counts["bad_rows"] = rejects.bad_rows
        return f"art ask: {fmt_counts(self.counts, ASK_KEYS)}; {self.requests_summary()}"


class TrustStage(Stage[Sample | Correction]):
    name = "art trust"

    def read(self, data: dict[str, Any], where: str) -> Sample | Correction:
        return read_sample_or_correction(data, where)

    def run(self, rows: Iterable[Sample | Correction], hooks: Hooks) -> Iterator[Output]:
        for row in rows:
            hooks.on_row(1)
            if not isinstance(row, Correction):
                self.counts["not_a_correction"] += 1
                continue
            self.counts["corrections"] += 1
            yield self.trusted(row)

    def trusted(self, c: Correction) -> TrusterRecord | SetAside:
        if c.reject_reason:
            self.counts["unparseable"] += 1
            return SetAside("unparseable", c, c.reject_reason)
        k, steps = c.incorrect_step, len(c.original.steps)
        if k is None or not 1 <= k <= steps:  # as filter: no refined solution to weigh
            self.counts["step_out_of_range"] += 1
            return SetAside("step_out_of_range", c, f"incorrect_step {k} of {steps} steps")
        initial = Prediction("\n".join(c.original.steps), c.original.pred, c.original.verdict)
        refined = Prediction("\n".join(c.full_solution()), c.pred, c.verdict)
        right = (initial.verdict == "correct", refined.verdict == "correct")
        if right[0] == right[1]:
            self.counts["no_preference"] += 1
            both = "both reach" if right[0] else "neither reaches"
            return SetAside("no_preference", c, f"{both} the gold answer")
        preferred: Preferred = "initial" if right[0] else "refined"
        self.counts["truster_records"] += 1
        self.counts[f"{preferred}_preferred"] += 1
        return TrusterRecord(
            **c.parts(),
            sample_id=c.sample_id,
            correction_id=c.correction_id,
            initial=initial,
            refined=refined,
            preferred=preferred,
        )

    def summary(self, rejects: Rejects) -> str:
        self.counts["bad_rows"] = rejects.bad_rows
        return f"art trust: {fmt_counts(self.counts, TRUST_KEYS)}"
