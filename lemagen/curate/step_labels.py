"""Step-level labels for process reward models (`export -f prm`, `-f math-shepherd`).

A kept correction says which step of its original solution is the first incorrect one: the
steps before it are labelled good, that step bad, and nothing is said about the steps after it,
so the row stops there. A correct solution (a correct sample, or a kept correction's whole
corrected solution) is good at every step.

* `prm`: TRL's stepwise supervision (`PRMTrainer`): `{"prompt", "completions", "labels"}`.
* `math-shepherd`: Math-Shepherd's `{"input", "label", "task"}`: the question, then one
  `Step k: ...` line per step ending with the step tag ` ки` (a step's own line breaks become
  spaces); `label` is that text with each tag replaced by `+` or `-`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from lemagen.records import ShepherdRow, StepLabels, TrainingRow

STEP_FORMATS = ("prm", "math-shepherd")
STEP_TAG = "ки"  # Math-Shepherd's step tag: where the step score is predicted


def wrong_prefix(steps: Sequence[str], incorrect_step: int) -> tuple[list[str], list[bool]]:
    """The steps through the first incorrect one (1-based), labelled."""
    kept = list(steps[:incorrect_step])
    return kept, [True] * (len(kept) - 1) + [False]


def step_row(
    fmt: str, task: str, question: str, steps: Sequence[str], labels: Sequence[bool]
) -> TrainingRow:
    """One labelled solution in `fmt` (`prm` or `math-shepherd`)."""
    if fmt == "prm":
        return StepLabels(question, tuple(steps), tuple(labels))
    lines = [f"Step {i}: {_one_line(step)}" for i, step in enumerate(steps, 1)]
    tagged = "\n".join(f"{line} {STEP_TAG}" for line in lines)
    marked = "\n".join(
        f"{line} {'+' if good else '-'}" for line, good in zip(lines, labels, strict=True)
    )
    name = "GSM8K" if task == "gsm8k" else "MATH"
    return ShepherdRow(f"{question} {tagged}", f"{question} {marked}", name)


def _one_line(step: str) -> str:
    """A step on one line (a MATH step may hold an `align*` block or a figure): its line
    breaks, with the spaces around them, become one space."""
    return re.sub(r"\s*\n\s*", " ", step.strip())
