"""The words lemagen writes into its records, each declared once here as a `Literal` type: the
tasks, the verdicts, the stage that made a record, the commands, the kinds of record, and the
reasons a row is set aside, with what each reason means (`REASONS`: the table of reasons
in docs/records.md is generated from it, `reasons_table`, and tests/test_reasons.py keeps the
two equal).

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

Reason = Literal[
    # input rows
    "bad_json",
    "bad_csv",
    "missing_field",
    "bad_row",
    "bad_gold",
    "unknown_task",
    "bad_record",
    # model calls
    "request_failed",
    "no_choices",
    "store_unwritable",
    "budget_exhausted",
    "batch_pending",
    # replies and answers
    "truncated",
    "no_answer",
    "check_timeout",
    "implicit_answer",
    "no_agreement",
    "unparseable",
    # filter, export
    "step_out_of_range",
    "step_mismatch",
    "prefix_changed",
    "wrong_answer",
    "unchanged",
    "step_unchanged",
    "duplicate",
    "uncorrected_sample",
    "correct_sample",
    "contaminated",
    "pot_disagree",
    "pot_error",
    "pot_timeout",
    "pot_unchecked",
    # inject
    "no_gold_solution",
    "gold_not_numeric",
    "no_equations",
    "answer_not_computed",
    "no_valid_mistake",
    # inject --model
    "step_missing",
    "answer_unchanged",
    # analyze
    "unknown_error_type",
    "says_correct",
    # art
    "no_verdict",
    "no_preference",
    # smooth
    "smooth_wrong_answer",
    "smooth_changed_values",
]

TASKS: tuple[Task, ...] = get_args(Task)
VERDICTS: tuple[Verdict, ...] = get_args(Verdict)
POT_VERDICTS: tuple[PotVerdict, ...] = get_args(PotVerdict)
KINDS: tuple[Kind, ...] = get_args(Kind)
# A call collected for a provider batch fails with it inside the engine's collection pass,
# whose output is discarded (lemagen.engine.batching): never written, so not documented.
INTERNAL: frozenset[Reason] = frozenset({"batch_pending"})
# `filter --require-pot-agreement`: the reason for each verdict but `agree`.
POT_REASONS: dict[PotVerdict, Reason] = {
    "disagree": "pot_disagree",
    "error": "pot_error",
    "timeout": "pot_timeout",
}

_INPUT = "any command (`--skip-bad-rows`)"
_CALLS = "every command that calls a model"
_FILTER = "filter, export, smooth"  # `filter`'s judgement of a correction (`Keep`)
_POT = "filter, export `--require-pot-agreement`"
# Each reason lemagen writes: the commands that set a row aside for it, and why.
REASONS: dict[Reason, tuple[str, str]] = {
    "bad_json": (_INPUT, "the line is not a JSON object (or not UTF-8)"),
    "bad_csv": (_INPUT, "a CSV row that cannot be read"),
    "missing_field": (_INPUT, "the row lacks a field the command needs"),
    "bad_row": (_INPUT, "a field of the wrong type or value"),
    "bad_gold": (_INPUT, "the gold answer cannot be read"),
    "unknown_task": (_INPUT, "a task other than gsm8k and math"),
    "bad_record": (_INPUT, "not a record the command reads"),
    "request_failed": (_CALLS, "the call failed for good (after its retries)"),
    "no_choices": (_CALLS, "the server answered with no choices"),
    "store_unwritable": (_CALLS, "the request store cannot be written: the call was not sent"),
    "budget_exhausted": (_CALLS, "`--max-cost` was reached: the call was not sent"),
    "batch_pending": ("(never written)", "a call waiting for a provider batch"),
    "truncated": (
        "sample, filter, export, smooth, inject `--model`, analyze, art ask",
        "the reply ran past `--max-tokens`",
    ),
    "no_answer": (
        "sample, filter, export, smooth, inject `--model`",
        "no final answer could be read",
    ),
    "check_timeout": (
        "sample, filter, export, smooth, inject `--model`",
        "checking the answer against gold timed out",
    ),
    "implicit_answer": (
        "sample `--explicit-answers-only`",
        "the answer was not marked as the answer",
    ),
    "no_agreement": (
        "sample `--gold vote`, evolve",
        "too few samples agree on one answer (`--min-agreement`)",
    ),
    "unparseable": (
        "filter, export, smooth, inject `--model`, analyze, art ask, art trust",
        "the model's reply cannot be read",
    ),
    "step_out_of_range": (
        "filter, export, smooth, analyze, art trust",
        "the named step is not a step of the solution",
    ),
    "step_mismatch": (_FILTER, "an elided correction does not continue from the named step"),
    "prefix_changed": (
        "filter, export, smooth, inject `--model`",
        "a step before the named one was changed",
    ),
    "wrong_answer": (_FILTER, "the corrected answer is not gold"),
    "unchanged": (_FILTER, "the correction is the original solution"),
    "step_unchanged": (
        "filter, export, smooth, inject `--model`",
        "the named step was left as it was",
    ),
    "duplicate": (_FILTER, "the same training row was written already"),
    "uncorrected_sample": (_FILTER, "a wrong sample without a correction"),
    "correct_sample": (_FILTER, "a correct sample, without `--with-cot`"),
    "contaminated": ("filter `--decontaminate`", "it overlaps a held-out test set"),
    "pot_disagree": (_POT, "its program's answer differs from the chain of thought's"),
    "pot_error": (_POT, "its program failed"),
    "pot_timeout": (_POT, "its program timed out"),
    "pot_unchecked": (_POT, "it was never cross-checked (`lemagen crosscheck`)"),
    "no_gold_solution": (
        "inject, inject `--model`, export `--gold-cot`",
        "the problem has no gold solution to use (inject: none of two steps or more)",
    ),
    "gold_not_numeric": ("inject", "the gold answer is not a number"),
    "no_equations": ("inject", "the gold solution has no equation to change"),
    "answer_not_computed": ("inject", "the gold solution's equations do not compute its answer"),
    "no_valid_mistake": ("inject", "no mistake changes the answer"),
    "step_missing": ("inject `--model`", "the teacher's reply stops before the step"),
    "answer_unchanged": ("inject `--model`", "the injected solution's answer is still gold"),
    "unknown_error_type": ("analyze", "an error type that is not in the taxonomy"),
    "says_correct": ("analyze", "the analyser found no error"),
    "no_verdict": ("art ask", "a prediction neither correct nor wrong: no label"),
    "no_preference": (
        "art trust",
        "the initial and the refined prediction both reach gold, or neither",
    ),
    "smooth_wrong_answer": ("smooth", "the rewritten solution's answer is not gold"),
    "smooth_changed_values": ("smooth", "the rewrite lost a value of the solution"),
}


def reasons_table() -> str:
    """The table of reasons in docs/records.md (between `<!-- reasons:start -->` and `end`)."""
    rows = ["| reason | set aside by | why |", "|---|---|---|"]
    for reason, (where, why) in REASONS.items():
        if reason not in INTERNAL:
            rows.append(f"| `{reason}` | {where} | {why} |")
    return "\n".join(rows)
