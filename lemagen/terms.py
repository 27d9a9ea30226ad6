"""The words lemagen writes into its records, each declared once here as a `Literal` type: the
tasks, the verdicts, the stage that made a record, the commands and the kinds of record.

Everything that writes one of these words takes the type, so mypy rejects a word that is not
here. This module imports nothing of lemagen's: `lemagen.errors` and the records use it.
"""

from __future__ import annotations

from typing import Literal, get_args

Task = Literal["gsm8k", "math"]
# A chain of thought's final answer against gold.
Verdict = Literal["correct", "wrong", "no_answer", "timeout"]
# `lemagen crosscheck`: the program written from a chain of thought against its answer.
PotVerdict = Literal["agree", "disagree", "error", "timeout"]
# `meta.stage`: what made a record (`art-ask`: `lemagen art ask`).
StageName = Literal["sample", "correct", "inject", "analyze", "art-ask", "crosscheck"]
# The commands that run a stage, as their summary names them.
Command = Literal[
    "sample",
    "correct",
    "filter",
    "export",
    "grade",
    "stats",
    "inject",
    "analyze",
    "smooth",
    "crosscheck",
    "evolve",
    "art ask",
    "art trust",
]
# What a versioned record is (its `kind`, written from schema version 3 on).
Kind = Literal["sample", "correction", "analysis", "asker", "truster", "reject", "retry"]

TASKS: tuple[Task, ...] = get_args(Task)
VERDICTS: tuple[Verdict, ...] = get_args(Verdict)
POT_VERDICTS: tuple[PotVerdict, ...] = get_args(PotVerdict)
KINDS: tuple[Kind, ...] = get_args(Kind)
