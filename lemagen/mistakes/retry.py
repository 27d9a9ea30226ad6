"""Retry data (Physics of Language Models 2.2): a mistaken step, a `[BACK]` marker, then the
right step, inside one training text.

At each step boundary after the first, with probability `rate` (again with rate², rate³, at
most 3 in a row), a mistake is inserted before the next gold step: either a real one (that
step with one injected error: a miscalculation, a miscopied number or a swapped operator) or,
with `fake`, the opening clause of a strictly later step (the "retry_weak" fake mistake, which
teaches not to skip steps). Removing each `mistake + " " + marker + " "` gives back the gold
solution exactly.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

from lemagen.mistakes.gsm8k import Solution, candidates, make
from lemagen.records import Problem, RetryMeta, RetryText

DEFAULT_RETRY_RATE = 0.15
DEFAULT_MARKER = "[BACK]"
MAX_REPEATS = 3
REAL_TYPES = ("calculation", "copy", "operator")


def _real_mistake(
    sol: Solution, pool: list[tuple[str, Any]], step: int, rng: random.Random
) -> str | None:
    """Step `step` with one injected error, from the solution's candidate `pool`."""
    pool = [(kind, spec) for kind, spec in pool if sol.equations[spec[0]].step == step]
    rng.shuffle(pool)
    for kind, spec in pool:
        made = make(sol, kind, spec)
        if made is not None:
            return made.steps[step]
    return None


def _fake_mistake(sol: Solution, step: int, rng: random.Random) -> str | None:
    later = sol.steps[step + 1 :]  # strictly later steps; `The answer is` = answering too early
    if not later:
        return None
    chosen = rng.choice(later)
    opening = re.split(r"[\d$]", chosen, maxsplit=1)[0].strip(" ,")
    return opening if len(opening.split()) >= 2 else chosen


def retry_solution(
    sol: Solution,
    question: str,
    rng: random.Random,
    *,
    rate: float = DEFAULT_RETRY_RATE,
    fake: bool = False,
    marker: str = DEFAULT_MARKER,
) -> tuple[str, list[str]]:
    """(the solution text with retries, the inserted mistakes in order)."""
    parts: list[str] = [sol.steps[0]]
    mistakes: list[str] = []
    pool = [] if fake else candidates(sol, question, REAL_TYPES)
    for step in range(1, len(sol.steps)):
        repeats = 0
        while repeats < MAX_REPEATS and rng.random() < rate:
            mistake = _fake_mistake(sol, step, rng) if fake else _real_mistake(sol, pool, step, rng)
            if mistake is None:
                break
            parts.append(f"{mistake} {marker}")
            mistakes.append(mistake)
            repeats += 1
        parts.append(sol.steps[step])
    return " ".join(parts), mistakes


@dataclass(frozen=True)
class RetryOptions:
    rate: float = DEFAULT_RETRY_RATE
    fake: bool = False
    marker: str = DEFAULT_MARKER


def retry_text(
    sol: Solution, problem: Problem, rng: random.Random, options: RetryOptions, seed: int
) -> RetryText:
    """The retry-data record of one problem."""
    solution, mistakes = retry_solution(
        sol, problem.question, rng, rate=options.rate, fake=options.fake, marker=options.marker
    )
    meta = RetryMeta(retry_rate=options.rate, fake=options.fake, marker=options.marker, seed=seed)
    return RetryText.of(problem, solution, tuple(mistakes), meta)
