"""LEMMA's error taxonomy (methods.md §2.2) and the record `lemagen analyze` writes: a wrong
sample with its first erroneous step and the type of its error.

The identifiers are the paper's names in snake case; the definitions are our own words. The
repository's identifiers and the paper's two-letter codes are accepted as aliases when replies
are read (`lemagen.lemma.replies`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import msgspec

from lemagen.errors import InputError, LemagenError
from lemagen.records.jsonl import read_records
from lemagen.records.meta import Provenance
from lemagen.records.schema import Original, ProblemRecord
from lemagen.records.shape import OrNull, record_kind


class ErrorType(msgspec.Struct, frozen=True):
    id: str
    code: str  # the paper's abbreviation
    name: str  # the paper's name
    definition: str  # our own words
    aliases: tuple[str, ...] = ()  # other names models and the LEMMA repository use


TAXONOMY: tuple[ErrorType, ...] = (
    ErrorType(
        "calculation_error",
        "CA",
        "Calculation Error",
        "the right numbers and operation are used, but the arithmetic result is wrong",
        ("arithmetic_error", "computation_error", "computational_error"),
    ),
    ErrorType(
        "counting_error",
        "CO",
        "Counting Error",
        "things are counted wrongly (days in a span, items in a list, terms of a sequence)",
    ),
    ErrorType(
        "context_value_error",
        "CV",
        "Context Value Error",
        "a number given in the problem is copied into the work with the wrong value",
        ("referencing_context_value_error", "copy_error"),
    ),
    ErrorType(
        "hallucination",
        "HA",
        "Hallucination",
        "a fact or number that the problem does not give, or that contradicts it, is made up",
        ("adding_irrelevant_information",),
    ),
    ErrorType(
        "unit_conversion_error",
        "UC",
        "Unit Conversion Error",
        "a quantity is converted between units with the wrong factor",
    ),
    ErrorType(
        "operator_error",
        "OP",
        "Operator Error",
        "one operation is swapped for another (adding where it should subtract, ...)",
    ),
    ErrorType(
        "formula_confusion",
        "FC",
        "Formula Confusion",
        "a formula of the right kind but the wrong one is applied (perimeter for area, ...)",
        ("confusing_formula_error", "formula_error"),
    ),
    ErrorType(
        "missing_step",
        "MS",
        "Missing Step",
        "a step the solution needs is left out; putting it in would set the solution right",
    ),
    ErrorType(
        "contradictory_step",
        "CS",
        "Contradictory Step",
        "a step disagrees with a result the solution reached earlier",
        ("referencing_previous_step_value_error",),
    ),
    ErrorType(
        "question_misinterpretation",
        "QM",
        "Question Misinterpretation",
        "a condition or concept of the problem is misread or ignored, so another question "
        "is answered",
        ("question_understanding_error", "misinterpretation"),
    ),
    ErrorType(
        "confusing_concept",
        "CC",
        "Confusing Concept",
        "two related concepts are mixed up (profit and revenue, all and the remaining, ...)",
        ("confusing_concept_error", "concept_confusion"),
    ),
    ErrorType(
        "nonsensical_output",
        "NO",
        "Nonsensical Output",
        "the text is incoherent or has nothing to do with the problem",
        ("nonsense_output_error", "nonsense"),
    ),
)
TAXONOMY_IDS: tuple[str, ...] = tuple(t.id for t in TAXONOMY)
BY_ID: dict[str, ErrorType] = {t.id: t for t in TAXONOMY}


class Analysis(ProblemRecord, frozen=True, kw_only=True, tag="analysis"):
    """A wrong sample (`original`, with its reasoner's `meta`) labelled by an analyser model:
    its first erroneous step (1-based) and the type of that error, with the analyser's reply
    and provenance."""

    sample_id: str
    original: Original
    response: str
    first_error_step: int
    error_type: str
    explanation: str | None = None
    meta: OrNull[Provenance] = msgspec.field(default_factory=Provenance)

    @property
    def reasoner(self) -> str:
        """The model that wrote the wrong sample."""
        return self.original.meta.model or "unknown"

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], where: str, *, prefix: str = "", hint: str = ""
    ) -> Analysis:
        a = super().from_dict(data, where, prefix=prefix, hint=hint)
        if a.error_type not in BY_ID:
            raise InputError(
                f"{where}: field 'error_type' must be one of {', '.join(TAXONOMY_IDS)}, "
                f"not {a.error_type!r}",
                reason="bad_row",
            )
        if a.first_error_step < 1:
            raise InputError(f"{where}: field 'first_error_step' must be >= 1", reason="bad_row")
        return a


def error_type_counts(path: str) -> dict[str, Counter[str]]:
    """How often each error type occurs in an analysis file (`lemagen analyze` output), by
    problem id; a bad line is a `file:line` error, a file with no analysis an error naming the
    file."""
    counts: dict[str, Counter[str]] = {}
    for lineno, data in read_records(path):
        if isinstance(data, InputError):
            raise data
        if record_kind(data) == "analysis":  # samples `analyze` passed through are not counted
            analysis = Analysis.from_dict(data, f"{path}:{lineno}")
            counts.setdefault(analysis.id, Counter())[analysis.error_type] += 1
    if not counts:
        raise LemagenError(f"{path}: no analysis records (is this `lemagen analyze` output?)")
    return counts
