"""The records `lemagen art` writes: training data for ART's Asker and Truster (methods.md §5).
The paper does not publish its formats; these are our design (README, "ART data").

- `AskerRecord`: a problem, one prediction (a model's solution), the sub-questions the problem
  breaks into (written by a model), and whether the prediction answers them all, labelled by
  the prediction's verdict against gold (`correct` -> true, `wrong` -> false).
- `TrusterRecord`: a problem, an initial prediction and a refined one, and which of the two to
  trust, labelled by gold (`preferred`: `initial` or `refined`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import msgspec

from lemagen.records.common import JSON, Verdict, check, unknown_keys, versioned, with_extra
from lemagen.records.meta import Provenance, read_meta
from lemagen.records.schema import Problem
from lemagen.records.shapes import ProblemShape

Preferred = Literal["initial", "refined"]


class Prediction(msgspec.Struct, frozen=True):
    """A prediction as ART records carry it: its text (the steps, one a line), answer and
    verdict against gold."""

    text: str
    pred: str | None
    verdict: Verdict

    def to_dict(self) -> JSON:
        return {"text": self.text, "pred": self.pred, "verdict": self.verdict}


class AskerShape(ProblemShape, kw_only=True):
    sample_id: str
    prediction: Prediction
    sub_questions: tuple[str, ...]
    answers_all: bool
    meta: dict[str, Any] | None = None


class AskerRecord(msgspec.Struct, frozen=True):
    problem: Problem
    sample_id: str
    prediction: Prediction
    sub_questions: tuple[str, ...]
    answers_all: bool
    meta: Provenance = msgspec.field(default_factory=Provenance)
    extra: dict[str, Any] = msgspec.field(default_factory=dict)

    _KEYS: ClassVar[frozenset[str]] = frozenset(AskerShape.__struct_fields__) | {"schema_version"}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> AskerRecord:
        a = check(data, AskerShape, where)
        meta = read_meta(a.meta, where)
        assert isinstance(meta, Provenance)
        return cls(
            Problem.of(a),
            a.sample_id,
            a.prediction,
            a.sub_questions,
            a.answers_all,
            meta,
            unknown_keys(data, cls._KEYS),
        )

    def to_dict(self) -> JSON:
        out = self.problem.to_dict()
        out["sample_id"] = self.sample_id
        out["prediction"] = self.prediction.to_dict()
        out["sub_questions"] = list(self.sub_questions)
        out["answers_all"] = self.answers_all
        out["meta"] = self.meta.to_dict()
        with_extra(out, self.extra)
        return versioned(out)


class TrusterShape(ProblemShape, kw_only=True):
    sample_id: str
    correction_id: str
    initial: Prediction
    refined: Prediction
    preferred: Preferred


class TrusterRecord(msgspec.Struct, frozen=True):
    problem: Problem
    sample_id: str
    correction_id: str
    initial: Prediction
    refined: Prediction
    preferred: Preferred
    extra: dict[str, Any] = msgspec.field(default_factory=dict)

    _KEYS: ClassVar[frozenset[str]] = frozenset(TrusterShape.__struct_fields__) | {"schema_version"}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> TrusterRecord:
        t = check(data, TrusterShape, where)
        return cls(
            Problem.of(t),
            t.sample_id,
            t.correction_id,
            t.initial,
            t.refined,
            t.preferred,
            unknown_keys(data, cls._KEYS),
        )

    def to_dict(self) -> JSON:
        out = self.problem.to_dict()
        out["sample_id"] = self.sample_id
        out["correction_id"] = self.correction_id
        out["initial"] = self.initial.to_dict()
        out["refined"] = self.refined.to_dict()
        out["preferred"] = self.preferred
        with_extra(out, self.extra)
        return versioned(out)
