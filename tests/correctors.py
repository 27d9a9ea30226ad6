"""Corrector replies as real models write them, one builder per kind of corrector.

`reply(kind, k, original, fixed)` is what a corrector of that kind answers for an original
solution whose step `k` is the first wrong one, with `fixed` the right steps from `k` on. The
table test of `parse_reply` (`tests/test_replies.py`) and the loopback correctors
(`tests/test_correctors.py`) use the same texts.
"""

from __future__ import annotations

import re
import threading
from collections import Counter

from tests.fake_openai import MathTutor, Reply

EXPLANATION = "The total was added up wrongly."
CHATTER = "I hope this helps! Let me know if you have any other questions."

KINDS = (
    "lema",
    "markdown",
    "preamble",
    "fenced",
    "no_elision",
    "chatty",
    "formatted",
    "prefix_changer",
    "step_keeper",
    "unparseable",
)
# The kinds whose reply is a good correction, read to the same parts as the LEMA layout (the
# steps once `lemagen.math.steps.canonical` has put them in LEMA's form, as `correct` does).
GOOD = ("lema", "markdown", "preamble", "fenced", "no_elision", "chatty", "formatted")


def numbered(steps: list[str], start: int, *, bold: bool = False) -> str:
    label = "**Step {}:**" if bold else "Step {}:"
    return "\n".join(f"{label.format(start + i)} {text}" for i, text in enumerate(steps))


def reply(kind: str, k: int, original: list[str], fixed: list[str]) -> str:
    """The reply of a corrector of `kind` (continuing after the prompt's `Incorrect Step:`)."""
    lema_body = "...\n" + numbered(fixed, k) if k > 1 else numbered(fixed, k)
    head = f" Step {k}.\nExplanation: {EXPLANATION}\nCorrect Solution:\n"
    if kind == "lema":
        return f"{head}{{\n{lema_body}\n}}"
    if kind == "markdown":
        return (
            f"\n\n### Incorrect Step\nStep {k}\n\n**Explanation:** {EXPLANATION}\n\n"
            f"### Correct Solution\n\n...\n{numbered(fixed, k, bold=True)}\n"
        )
    if kind == "preamble":
        before = (
            "Step 1 is correct."
            if k == 2
            else "Steps " + " and ".join(str(i) for i in range(1, k)) + " are correct."
        )
        return f" {before} Incorrect Step: Step {k}.\nExplanation: {EXPLANATION}\n" + (
            f"Correct Solution:\n{{\n{lema_body}\n}}"
        )
    if kind == "fenced":  # and a remark after the fence that restates the answer
        last = fixed[-1]
        return f"{head}```text\n{lema_body}\n```\nWith this fix, t{last[1:]}"
    if kind == "no_elision":  # starts at Step k with no `...`
        return f"{head}{{\n{numbered(fixed, k)}\n}}"
    if kind == "chatty":  # no braces, chatter after the solution
        return f"{head}{lema_body}\n\n{CHATTER}"
    if kind == "formatted":  # markdown inside the steps, the answer stated twice and boxed
        *body, last = fixed
        answer = last.removeprefix("The answer is ").rstrip(".")
        steps = [_emphasised(step) for step in body]
        steps.append(f"Therefore, {answer} is the answer. **Final Answer:** $\\boxed{{{answer}}}$")
        return (
            f"\n\n### Incorrect Step\nStep {k}\n\n**Explanation:** {EXPLANATION}\n\n"
            f"### Correct Solution\n\n...\n{numbered(steps, k, bold=True)}\n\n{CHATTER}"
        )
    if kind == "prefix_changer":  # rewrites step 1 too, un-elided
        prefix = numbered(["We start again from the top.", *original[1 : k - 1]], 1)
        return f"{head}{{\n{prefix}\n{numbered(fixed, k)}\n}}"
    if kind == "step_keeper":  # names step k but keeps it as it was and fixes the next one
        kept = [original[k - 1], *fixed[1:]]
        return f"{head}{{\n...\n{numbered(kept, k)}\n}}"
    if kind == "unparseable":
        return " I could not find any error in this solution."
    raise ValueError(kind)


def _emphasised(step: str) -> str:
    """The step's last number in bold, as markdown correctors write it."""
    return re.sub(r"(\$?\d[\d,.]*\d|\$?\d)(?=\.?$)", r"**\1**", step)


K = 2  # MathTutor's wrong samples: "We work through it." / "The total comes to W." / answer W


def original_steps(prompt: str) -> list[str]:
    query = prompt.rsplit("Original Solution:\n{\n", 1)[1].split("\n}", 1)[0]
    return re.findall(r"(?m)^Step \d+: (.*)$", query)


def fixed_steps(gold: str) -> list[str]:
    return [f"The total comes to {gold}.", f"The answer is {gold}."]


class Corrector:
    """Answers sampling prompts as MathTutor and correction prompts as a corrector of `kind`;
    with `first`, the first reply for each question is that kind's instead (for --reask)."""

    def __init__(self, tutor: MathTutor, kind: str, first: str | None = None) -> None:
        self.tutor, self.kind, self.first = tutor, kind, first
        self.asked: Counter[str] = Counter()
        self.lock = threading.Lock()

    def __call__(self, prompt: str, n: int) -> list[Reply]:
        if "Original Solution:" not in prompt:
            return self.tutor(prompt, n)
        question = prompt.rsplit("Question: ", 1)[1].split("\nOriginal Solution:", 1)[0]
        gold = self.tutor.answers[question][1]
        out = []
        for _ in range(n):
            with self.lock:
                self.asked[question] += 1
                kind = self.first if self.first and self.asked[question] == 1 else self.kind
            out.append((reply(kind, K, original_steps(prompt), fixed_steps(gold)), "stop"))
        return out
