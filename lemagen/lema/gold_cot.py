"""Gold chain-of-thought records: the dataset's own solutions rendered as LEMA trains on them.

GSM8K (methods.md §0.3, verified by diffing LEMA's files against GSM8K): calculator annotations
deleted, the rationale's lines joined with single spaces (a line without a final `.` gets one),
single spaces around `+ - * / =`, and `#### 2,125` replaced by `The answer is 2125.`; double
spaces in the question collapsed. MATH (our rendering: LEMA does not print one): the solution
as written, with a trailing `The answer is: X` removed, then `The answer is X.` on its own line,
X the gold answer (the last `\\boxed{}`).
"""

from __future__ import annotations

import re

from lemagen.lema.formats import cot_prompt
from lemagen.records import Problem, PromptCompletion

_ANNOTATION = re.compile(r"<<[^<>]*>>")
_FINAL = re.compile(r"(?m)^\s*####\s*(.*)$")
_OPERATOR = re.compile(r"\s*([+\-*/=])\s*")
_SPACES = re.compile(r" {2,}")
_MATH_ANSWER_IS = re.compile(r"\s*The answer is:?\s*[^\n]*\s*$")


def render_gsm8k(reference: str) -> str | None:
    """A GSM8K rationale in LEMA's one-paragraph form, or None without a `####` line."""
    final = _FINAL.search(reference)
    if final is None:
        return None
    answer = final.group(1).strip().replace(",", "")
    body = _ANNOTATION.sub("", reference[: final.start()])
    lines = [line.strip() for line in body.splitlines() if line.strip()]
    lines = [line if line.endswith(".") else line + "." for line in lines]
    text = " ".join(lines)
    text = _OPERATOR.sub(r" \1 ", text)
    text = _SPACES.sub(" ", text).strip()
    return f"{text} The answer is {answer}."


def render_math(reference: str, gold: str) -> str:
    solution = _MATH_ANSWER_IS.sub("", reference.strip()).rstrip()
    return f"{solution}\nThe answer is {gold}."


def gold_cot(problem: Problem) -> PromptCompletion | None:
    """The problem's own solution as a LEMA CoT record, or None when it has none."""
    if problem.reference is None:
        return None
    if problem.task == "gsm8k":
        completion = render_gsm8k(problem.reference)
        if completion is None:
            return None
    else:
        completion = render_math(problem.reference, problem.gold)
    question = _SPACES.sub(" ", problem.question)
    return PromptCompletion(cot_prompt(question), completion)
