"""The JSON shapes of the records whose JSON is flatter than their type (a sample's problem
fields sit at its top level). A record type's `from_dict` converts the decoded line to its shape
(`common.check`, in C by msgspec), then builds itself from it. Types whose JSON is their own
shape (`meta.Provenance`, `meta.InjectMeta`, `meta.RetryMeta`) are checked directly.
"""

from __future__ import annotations

from typing import Any

import msgspec

from lemagen.records.common import PotVerdict, Task, Verdict
from lemagen.records.meta import RetryMeta


class ProblemShape(msgspec.Struct, kw_only=True):
    id: str
    task: Task
    question: str
    gold: str
    reference: str | None = None
    source: dict[str, Any] | None = None
    gold_vote: dict[str, Any] | None = None


class OriginalShape(msgspec.Struct, kw_only=True):
    sample_id: str | None = None
    response: str | None = None
    thinking: str | None = None
    steps: tuple[str, ...]
    pred: str | None = None
    extracted_by: str | msgspec.UnsetType | None = msgspec.UNSET
    verdict: Verdict = "wrong"
    meta: dict[str, Any] | None = None


class SampleShape(ProblemShape, kw_only=True):
    sample_id: str
    response: str | None = None
    thinking: str | None = None
    steps: tuple[str, ...]
    pred: str | None = None
    extracted_by: str | msgspec.UnsetType | None = msgspec.UNSET
    verdict: Verdict
    meta: dict[str, Any] | None = None
    # Written by `lemagen crosscheck`:
    pot_program: str | None = None
    pot_answer: str | None = None
    pot_verdict: PotVerdict | None = None
    pot_meta: dict[str, Any] | None = None


class CorrectionShape(ProblemShape, kw_only=True):
    sample_id: str
    correction_id: str
    original: dict[str, Any]
    response: str | None = None
    # Required (null only in a correction whose reply could not be read, with its
    # reject_reason): a record without it would be read as "no step" and dropped downstream.
    incorrect_step: int | None
    explanation: str | None = None
    corrected_from: int | None = None
    elided: bool | None = None
    corrected_steps: tuple[str, ...]
    pred: str | None = None
    verdict: Verdict
    reject_reason: str | None = None
    meta: dict[str, Any] | None = None
    # Written by `lemagen crosscheck`:
    pot_program: str | None = None
    pot_answer: str | None = None
    pot_verdict: PotVerdict | None = None
    pot_meta: dict[str, Any] | None = None


class RetryTextShape(ProblemShape, kw_only=True):
    solution: str
    mistakes: tuple[str, ...]
    meta: RetryMeta


class RejectShape(msgspec.Struct, kw_only=True):
    reason: str
    detail: str | None = None
    where: str | None = None
    record: dict[str, Any] | None = None


class PromptCompletionShape(msgspec.Struct, kw_only=True):
    prompt: str
    completion: str
    id: str | None = None
    kind: str | None = None


class AlpacaShape(msgspec.Struct, kw_only=True):
    instruction: str
    input: str = ""
    output: str


class PreferenceShape(msgspec.Struct, kw_only=True):
    prompt: str
    chosen: str
    rejected: str
