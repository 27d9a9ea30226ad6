"""LEMMA trajectories (methods.md §2.3): a wrong solution cut right after its first incorrect
step, a reflection, then either the fix and the rest of the solution (Fix & Continue) or a
fresh solution from the start (Fresh & Restart). The transition phrases are our own words.

A trajectory is one unnumbered text, so the explanation's step numbers ("Step 3 multiplies
...", "found in Step 1") are rewritten to read there: the incorrect step becomes "this step",
an earlier one "an earlier step", a later one "a later step" (any case, `Step 2` or `step
two`).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from lemagen.lema.gold_cot import gold_cot
from lemagen.records import Correction

DEFAULT_RESTART_RATE = 0.5  # LEMMA applies both strategies to every error (§2.3 step 8)

# Fix & Continue: doubt the step just written, then fix it.
TRANSITIONS = (
    "Hold on, that step does not look right. Let me check it again.",
    "Wait, I should double-check that last step.",
    "Hmm, let me go back over that calculation.",
    "Let me pause and verify the step I just wrote.",
    "Actually, that does not add up. Let me redo it carefully.",
    "One moment: I want to make sure that step is correct.",
    "Let me look at that again before going on.",
    "That result seems off. Let me recheck the work.",
    "Before continuing, let me verify what I just did.",
    "Wait, something went wrong there. Let me fix it.",
    "I think I made a slip in that step. Let me reconsider.",
    "Let me re-examine that step more carefully.",
)
# Fresh & Restart: give up on the attempt and solve it again from the start.
RESTARTS = (
    "This approach has gone wrong. Let me start over and solve it another way.",
    "Rather than patch this attempt, I will solve the problem again from the beginning.",
    "Let me set this attempt aside and work through the problem afresh.",
    "I should restart with a cleaner approach.",
    "Let me begin again from the question itself.",
    "Starting over is simpler than repairing this. Here is a fresh solution.",
    "Let me rethink the whole problem from scratch.",
    "This line of work is unreliable now, so I will solve the problem anew.",
)

_NUMBER_WORDS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_NUMBER = r"(?:\d{1,9}|" + "|".join(_NUMBER_WORDS) + r")\b"
_REF = re.compile(
    r"\b(?P<word>steps?)\s+(?P<first>" + _NUMBER + r")"
    r"(?P<more>(?:\s*(?:,|and|or|-|\u2013|to|through)\s*" + _NUMBER + r")*)",
    re.IGNORECASE,
)


def _step_number(word: str) -> int:
    word = word.lower()
    return int(word) if word.isdigit() else _NUMBER_WORDS.index(word) + 1


def unnumbered(text: str, incorrect: int) -> str:
    """`text` with its step numbers rewritten for a trajectory that has none."""

    def name(match: re.Match[str]) -> str:
        found = re.findall(_NUMBER, match.group("first") + " " + match.group("more"), re.I)
        numbers = [_step_number(n) for n in found]
        if numbers == [incorrect]:
            words = "this step"
        elif all(n < incorrect for n in numbers):
            words = "an earlier step" if len(numbers) == 1 else "the earlier steps"
        elif all(n > incorrect for n in numbers):
            words = "a later step" if len(numbers) == 1 else "the later steps"
        else:
            words = "these steps"
        before = text[: match.start()].rstrip()
        if not before or before.endswith((".", "!", "?", ":")):
            words = words[0].upper() + words[1:]
        return words

    out = _REF.sub(name, text)
    # `in this step` for the step just written reads better as `in the step above`; its
    # possessive (`in Step 2's sum`) as `in that step's sum`.
    out = re.sub(r"\b(in|at|of) this step(?=['\u2019]s\b)", r"\1 that step", out)
    return re.sub(r"\b(in|at|of) this step\b(?!['\u2019])", r"\1 the step above", out)


@dataclass(frozen=True)
class Trajectory:
    """One trajectory: its kind (`fix` or `restart`) and its text."""

    kind: str
    text: str


def restart_solution(record: Correction) -> list[str]:
    """What Fresh & Restart solves with: the problem's own solution when it has one (a
    different route from the wrong attempt's, as LEMMA restarts from a reference), else the
    whole corrected solution."""
    cot = gold_cot(record.problem)
    if cot is not None:
        return [cot.completion]
    return record.full_solution()


def trajectory(record: Correction, seed: int, restart_rate: float) -> Trajectory:
    """Fix & Continue or, with probability `restart_rate`, Fresh & Restart; the choice and the
    phrase depend only on the seed and the correction (the same bytes on every run)."""
    k = record.incorrect_step or 1
    prefix = tuple(record.original.steps[:k])
    sep = " " if record.task == "gsm8k" else "\n"
    explanation = unnumbered((record.explanation or "").strip(), k)
    restart = random.Random(f"{seed}\x1frestart\x1f{record.correction_id}").random() < restart_rate
    rng = random.Random(f"{seed}\x1f{record.correction_id}")
    middle = f"{rng.choice(TRANSITIONS)} {explanation}".strip()
    if restart:
        middle = f"{middle} {rng.choice(RESTARTS)}"
        continuation = tuple(restart_solution(record))
    else:
        continuation = tuple(record.full_solution()[k - 1 :])
    kind = "restart" if restart else "fix"
    return Trajectory(kind, sep.join([*prefix, middle, *continuation]))
