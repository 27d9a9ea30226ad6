"""Fine-tuning record formats. LEMA's are reproduced exactly as methods.md §1.7 prints them."""

from __future__ import annotations

from collections.abc import Sequence

from lemagen.math.steps import render_numbered
from lemagen.records import Correction, PromptCompletion, Sample

LEMA_COT_PROMPT = (
    "Please solve the following math problem.\nQuestion: {question}\n"
    "Answer: Let's think step by step.\n"
)
LEMA_CORRECTION_INSTRUCTION = (
    "For the following math problem, the original solution is incorrect. Please identify the "
    "incorrect step, explain why it is incorrect, and correct the original solution starting from "
    "the incorrect step."
)


def lema_correction(record: Correction) -> PromptCompletion:
    """`{"prompt", "completion"}` for a correction record (methods.md §1.7)."""
    prompt = (
        f"{LEMA_CORRECTION_INSTRUCTION}\nQuestion: {record.question}\nOriginal Solution:\n"
        f"{{\n{render_numbered(record.original.steps)}\n}}\nIncorrect Step:"
    )
    start = record.corrected_from or 1
    elision = "...\n" if record.elided or start > 1 else ""  # steps 1..start-1 unchanged
    corrected = render_numbered(record.corrected_steps, start=start)
    completion = (
        f" Step {record.incorrect_step}.\nExplanation: {record.explanation}\n"
        f"Correct Solution:\n{{\n{elision}{corrected}\n}}"
    )
    return PromptCompletion(prompt, completion)


def cot_text(task: str, steps: Sequence[str]) -> str:
    """A rationale as one paragraph (GSM8K, as LEMA renders it) or one step per line (MATH)."""
    return (" " if task == "gsm8k" else "\n").join(steps)


def cot_prompt(question: str) -> str:
    return LEMA_COT_PROMPT.format(question=question)


def lema_cot(record: Sample) -> PromptCompletion:
    """`{"prompt", "completion"}` CoT record for a correct sample (methods.md §1.7)."""
    return PromptCompletion(cot_prompt(record.question), cot_text(record.task, record.steps))
