"""Analysers, teachers and askers as real models answer, for the loopback server
(`tests/fake_openai.FakeOpenAI`): `MistakeModels` answers `lemagen analyze`, `inject --model`
and `art ask` prompts, and passes every other prompt to a `MathTutor`.

How it answers a question is its *style*: `styles[question]` when the test set one, else one
drawn from the question's CRC (so a run over the examples has a mix). Analysers name the last
step before the answer, with a type drawn from the question's CRC by LEMMA's GSM8K shares
(methods.md §2.2); teachers change the last number of the named step and carry a wrong final
answer; askers ask one sub-question per step of the reference solution.
"""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import dataclass, field

from tests.fake_openai import MathTutor, Reply

ANALYSER_STYLES = {
    # style: what `lemagen analyze` makes of it (None: an analysis record)
    "plain": None,
    "markdown": None,
    "thinking": None,
    "chatty": None,
    "json": None,
    "paper_name": None,
    "lemma_prose": None,
    "out_of_taxonomy": "unknown_error_type",
    "says_correct": "says_correct",
    "malformed": "unparseable",
    "out_of_range": "step_out_of_range",
    "truncated": "truncated",
}
TEACHER_STYLES = {
    "plain": None,
    "markdown": None,
    "thinking": None,
    "chatty": None,
    "json": None,
    "tag": None,
    "respaced": None,  # the steps before the mistake copied with `48/2` for `48 / 2`
    "answer_kept": "answer_unchanged",
    "prefix_changer": "prefix_changed",
    "unchanged": "step_unchanged",
    "malformed": "unparseable",
    "truncated": "truncated",
}
ASKER_STYLES = {
    "numbered": None,
    "markdown": None,
    "json": None,
    "thinking": None,
    "chatty": None,
    "malformed": "unparseable",
}
# LEMMA's GSM8K shares for LLaMA3-8B (methods.md §2.2), in percent.
GSM8K_SHARES = {
    "question_misinterpretation": 41.6,
    "calculation_error": 24.5,
    "confusing_concept": 20.9,
    "missing_step": 6.8,
    "formula_confusion": 6.3,
}
PAPER_NAMES = {
    "question_misinterpretation": "Question Misinterpretation (QM)",
    "calculation_error": "Calculation Error (CA)",
    "confusing_concept": "Confusing Concept (CC)",
    "missing_step": "Missing Step (MS)",
    "formula_confusion": "Formula Confusion (FC)",
}


def crc(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


def true_type(question: str) -> str:
    """The type the fake analyser names for a question: by LEMMA's shares, from its CRC."""
    x = crc(question) % 1000 / 10
    for name, share in GSM8K_SHARES.items():
        if x < share:
            return name
        x -= share
    return "calculation_error"


def _between(text: str, start: str, end: str) -> str:
    return text.rsplit(start, 1)[1].split(end, 1)[0]


def _steps(block: str) -> list[str]:
    return re.findall(r"(?m)^Step \d+: (.*)$", block)


def _numbered(steps: list[str], bold: bool = False) -> str:
    label = "**Step {}:**" if bold else "Step {}:"
    return "\n".join(f"{label.format(i)} {s}" for i, s in enumerate(steps, 1))


@dataclass
class MistakeModels:
    tutor: MathTutor
    styles: dict[str, str] = field(default_factory=dict)
    asked: dict[str, int] = field(default_factory=dict)  # prompts seen, by role

    def style(self, question: str, styles: dict[str, str | None]) -> str:
        chosen = self.styles.get(question)
        if chosen is not None:
            return chosen
        good = [s for s, outcome in styles.items() if outcome is None]
        return good[crc(question) % len(good)]

    def __call__(self, prompt: str, n: int) -> list[Reply]:
        for role, marker, answer in (
            ("analyser", "Student's solution:", self.analyse),
            ("teacher", "Solution with the mistake:", self.teach),
            ("asker", "Break the math problem below", self.ask),
        ):
            if marker in prompt:
                self.asked[role] = self.asked.get(role, 0) + 1
                return [answer(prompt) for _ in range(n)]
        return self.tutor(prompt, n)

    # ------------------------------------------------------------ analyser

    def analyse(self, prompt: str) -> Reply:
        question = _between(prompt, "Now the problem to check\n\nProblem:\n", "\n\nReference")
        steps = _steps(prompt.rsplit("Student's solution:\n", 1)[1])
        k = max(1, len(steps) - 1)
        kind = true_type(question)
        why = f"Step {k} gets the amount wrong."
        plain = f"First wrong step: {k}\nError type: {kind}\nExplanation: {why}"
        style = self.style(question, dict(ANALYSER_STYLES))
        text = {
            "plain": plain,
            "markdown": f"### Analysis\n\n**First wrong step:** Step {k}\n\n"
            f"**Error type:** `{kind}`\n\n**Explanation:** {why}",
            "thinking": f"<think>Step 1 looks fine. Let me check step {k}... that is off."
            f"</think>\n{plain}",
            "chatty": f"Sure! Let me go through the solution step by step.\n\n{plain}\n\n"
            "I hope this helps! Let me know if you have other questions.",
            "json": "```json\n"
            + json.dumps({"first_error_step": k, "error_type": kind, "explanation": why})
            + "\n```",
            "paper_name": f"- First erroneous step: {k}\n- Error type: {PAPER_NAMES[kind]}\n"
            f"- Explanation: {why}",
            "lemma_prose": f"The solution is incorrect, the first wrong step is step {k} because "
            f"the amount is wrong, so the wrong type is {kind}.",
            "out_of_taxonomy": f"First wrong step: {k}\nError type: logical_fallacy\n"
            f"Explanation: {why}",
            "says_correct": "After checking every step, the solution is correct.",
            "malformed": f"Hmm, step {k} looks off to me, but I am not sure why.",
            "out_of_range": f"First wrong step: {len(steps) + 4}\nError type: {kind}",
            "truncated": f"<think>Let me check step 1. Then step 2. Then step {k}",
        }[style]
        return text, "length" if style == "truncated" else "stop"

    # ------------------------------------------------------------ teacher

    def teach(self, prompt: str) -> Reply:
        question = _between(prompt, "Now yours\n\nProblem:\n", "\n\nCorrect solution:")
        k = int(_between(prompt, "made in Step ", ","))
        gold = _steps(_between(prompt, "Correct solution:\n", "\n\nSolution with the mistake:"))
        style = self.style(question, dict(TEACHER_STYLES))
        steps = list(gold)
        numbers = list(re.finditer(r"\d+", steps[k - 1]))
        step = steps[k - 1]
        if numbers:
            last = numbers[-1]
            step = f"{step[: last.start()]}{int(last.group()) + 3}{step[last.end() :]}"
        else:
            step = f"{step} (and 3 more)"
        if style != "unchanged":
            steps[k - 1] = step
        final = re.search(r"The answer is (.*?)\.?$", steps[-1])
        if final and style not in ("answer_kept", "unchanged"):
            steps[-1] = (
                f"The answer is {final.group(1)} + 3."
                if "\\" in final.group(1)
                else (f"The answer is {_plus(final.group(1))}.")
            )
        if style == "prefix_changer":
            steps[0] = "We begin by reading the problem again. " + steps[0]
        if style == "respaced":
            steps[: k - 1] = [re.sub(r" ([-+*/=]) ", r"\1", s) for s in steps[: k - 1]]
        why = f"Step {k} is off by 3."
        plain = f"{_numbered(steps)}\nExplanation: {why}"
        text = {
            "plain": plain,
            "markdown": f"### Solution with the mistake\n\n{_numbered(steps, bold=True)}\n\n"
            f"**Explanation:** {why}",
            "thinking": f"<think>I will change Step {k}.</think>\n{plain}",
            "chatty": f"Sure! Here is the solution with the mistake:\n\n{plain}\n\n"
            "I hope this helps!",
            "json": json.dumps({"steps": steps, "explanation": why}),
            "tag": f"{_numbered(steps)}\n<explanation>{why}</explanation>",
            "respaced": plain,
            "answer_kept": plain,
            "prefix_changer": plain,
            "unchanged": plain,
            "malformed": "I'm sorry, but I can't help with writing wrong solutions on purpose.",
            "truncated": _numbered(steps[:k]),
        }[style]
        return text, "length" if style == "truncated" else "stop"

    # ------------------------------------------------------------ asker

    def ask(self, prompt: str) -> Reply:
        tail = prompt.rsplit("Now yours\n\nProblem:\n", 1)[1]
        question = tail.split("\n\nReference solution:", 1)[0].strip()
        style = self.style(question, dict(ASKER_STYLES))
        words = re.findall(r"[A-Za-z]+", question)[:3]
        questions = [
            f"What is given about {' '.join(words)}?",
            "What has to be computed first?",
            "What is the final answer the problem asks for?",
        ]
        numbered = "\n".join(f"{i}. {q}" for i, q in enumerate(questions, 1))
        text = {
            "numbered": numbered,
            "markdown": "\n".join(
                f"- **Sub-question {i}:** {q}" for i, q in enumerate(questions, 1)
            ),
            "json": json.dumps({"sub_questions": questions}),
            "thinking": f"<think>What does the problem need?</think>\n{numbered}",
            "chatty": f"Here are the sub-questions:\n\n{numbered}\n\nHope this helps!",
            "malformed": "The problem is straightforward and needs no sub-questions.",
        }[style]
        return text, "stop"


def _plus(value: str) -> str:
    try:
        return str(int(float(value.replace(",", ""))) + 3)
    except ValueError:
        return f"{value} + 3"
