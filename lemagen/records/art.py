"""The records `lemagen art` writes: training data for ART's Asker and Truster (methods.md §5).
The paper does not publish its formats; these are our design (docs/art.md).

- `AskerRecord`: a problem, one prediction (a model's solution), the sub-questions the problem
  breaks into (written by a model), and whether the prediction answers them all, labelled by
  the prediction's verdict against gold (`correct` -> true, `wrong` -> false).
- `TrusterRecord`: a problem, an initial prediction and a refined one, and which of the two to
  trust, labelled by gold (`preferred`: `initial` or `refined`).
"""

from __future__ import annotations

from typing import Literal

import msgspec

from lemagen.records.common import Verdict
from lemagen.records.meta import Provenance
from lemagen.records.schema import ProblemRecord
from lemagen.records.shape import OrNull, Shape

Preferred = Literal["initial", "refined"]


class Prediction(Shape, frozen=True):
    """A prediction as ART records carry it: its text (the steps, one a line), answer and
    verdict against gold."""

    text: str
    pred: str | None
    verdict: Verdict


class AskerRecord(ProblemRecord, frozen=True, kw_only=True, tag="asker"):
    sample_id: str
    prediction: Prediction
    sub_questions: tuple[str, ...]
    answers_all: bool
    meta: OrNull[Provenance] = msgspec.field(default_factory=Provenance)


class TrusterRecord(ProblemRecord, frozen=True, kw_only=True, tag="truster"):
    sample_id: str
    correction_id: str
    initial: Prediction
    refined: Prediction
    preferred: Preferred
