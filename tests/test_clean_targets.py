"""Clean targets (issue 23 point 1): whatever layout a model writes its solution in, every
training target holds LEMA steps ending in one `The answer is X.`.

A table of real replies (SmolLM2-135M-Instruct through llama.cpp's server, and the layouts of
common chat and reasoning models) with the steps expected; and the loopback server answering in
each style of `tests.fake_openai.STYLES` through sample, correct, filter and every export that
writes a solution, with no target holding what `tests.clean.dirt` looks for.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lemagen.math import answers
from lemagen.math.steps import canonical, solution_steps
from lemagen.math.thinking import split_thinking
from tests.clean import dirt, solutions
from tests.conftest import EXAMPLES, endpoint, records, run
from tests.correctors import Corrector
from tests.fake_openai import STYLES, FakeOpenAI, MathTutor

# (reply, steps): real replies (the first four from SmolLM2-135M-Instruct, Apache-2.0, to GSM8K
# test problems through `lemagen sample`), then layouts common chat and reasoning models write.
REAL = [
    pytest.param(
        "Let's break down the problem step by step.\nStep 1: The cost of the pastries is $55.\n"
        "Step 2: The cost of the donuts is half of that, so they are $3 in total.\n"
        "Step 3: So the total cost is $68 + $9 = $158.\n\nThe answer is $158.",
        "gsm8k",
        [
            "The cost of the pastries is $55.",
            "The cost of the donuts is half of that, so they are $3 in total.",
            "So the total cost is $68 + $9 = $158.",
            "The answer is 158.",
        ],
        id="smollm2-preamble-before-step-markers",
    ),
    pytest.param(
        "1. First, calculate the downloads in the first month: 60 downloads.\n"
        "2. Next, multiply this by 3: 60 * 3 = 180.\n3. So the total is 60 + 180 = 240.",
        "gsm8k",
        [
            "First, calculate the downloads in the first month: 60 downloads.",
            "Next, multiply this by 3: 60 * 3 = 180.",
            "So the total is 60 + 180 = 240.",
            "The answer is 240.",
        ],
        id="smollm2-numbered-list",
    ),
    pytest.param(
        "Let's break this problem down step by step.\n\n"
        "1. **April sales:** Natalia sold 48 clips.\n2. **May sales:**\n"
        "   - She sold half as many: 48 / 2 = 24 clips.\n"
        "3. **Total:** 48 + 24 = 72 clips.\n\nTherefore, 72 is the answer. The answer is 72.\n\n"
        "**Final Answer:** 72",
        "gsm8k",
        [
            "Natalia sold 48 clips.",
            "She sold half as many: 48 / 2 = 24 clips.",
            "48 + 24 = 72 clips.",
            "The answer is 72.",
        ],
        id="markdown-list-bold-titles-answer-three-times",
    ),
    pytest.param(
        "Sure! Here's how to solve it.\n\n* Betty has 100 / 2 = $50.\n"
        "* Her parents give $15.\n* Her grandparents give 15 * 2 = $30.\n"
        "* She still needs 100 - 50 - 15 - 30 = $5, so the answer is 5.\n\n"
        "I hope this helps! Let me know if you have any other questions.",
        "gsm8k",
        [
            "Betty has 100 / 2 = $50.",
            "Her parents give $15.",
            "Her grandparents give 15 * 2 = $30.",
            "She still needs 100 - 50 - 15 - 30 = $5.",
            "The answer is 5.",
        ],
        id="chatty-bullets-answer-clause",
    ),
    pytest.param(
        "We have $f(-2) = \\frac{-8}{-4} = 2$.\nThen $f(-1) + f(0) = \\frac{5}{3} + 1$.\n"
        "So the sum is $\\frac{14}{3}$.\n\n"
        "Final Answer: The final answer is $\\boxed{\\frac{14}{3}}$. I hope it is correct.",
        "math",
        [
            "We have $f(-2) = \\frac{-8}{-4} = 2$.",
            "Then $f(-1) + f(0) = \\frac{5}{3} + 1$.",
            "So the sum is $\\frac{14}{3}$.",
            "The answer is \\frac{14}{3}.",
        ],
        id="minerva-final-answer-boxed",
    ),
    pytest.param(
        "<think>196 = 2^2 * 7^2, so (2+1)(2+1) = 9.</think>\n\n## Solution\n\n"
        "First prime factorize $196=2^2\\cdot7^2$.\nThere are $3\\times 3=9$ choices.\n\n"
        "### Final Answer\n$$\\boxed{9}$$",
        "math",
        [
            "First prime factorize $196=2^2\\cdot7^2$.",
            "There are $3\\times 3=9$ choices.",
            "The answer is 9.",
        ],
        id="reasoning-model-heading-display-boxed",
    ),
    pytest.param(
        "Thus $x = \\boxed{5}$.",
        "math",
        ["Thus $x = 5$.", "The answer is 5."],
        id="boxed-inside-a-step-keeps-the-step",
    ),
]


@pytest.mark.parametrize(("reply", "task", "expected"), REAL)
def test_real_replies_become_lema_steps(reply: str, task: str, expected: list[str]) -> None:
    text = split_thinking(reply).answer
    steps = solution_steps(text, answers.extract(task, text))
    assert steps == expected
    assert not dirt("\n".join(steps))
    assert canonical(steps, answers.extract(task, text)) == steps  # already canonical


def test_lema_steps_stay_as_they_are() -> None:
    steps = ["Natalia sold 48 / 2 = 24 clips in May.", "The answer is 72."]
    assert canonical(steps, "72") == steps
    assert canonical(["$x = 2$.", "The answer is $2$."], "2") == ["$x = 2$.", "The answer is $2$."]


FORMATS = ("lema", "cot", "lemma", "prm", "math-shepherd", "dpo")


@pytest.mark.parametrize("task", ["gsm8k", "math"])
@pytest.mark.parametrize("style", sorted(STYLES))
def test_every_target_is_clean(fake: FakeOpenAI, tmp_path: Path, style: str, task: str) -> None:
    """sample --keep all, correct (a markdown corrector), filter --with-cot and the exports:
    every solution written is clean, and there is one of each kind."""
    assert isinstance(fake.responder, MathTutor)
    fake.responder.style = style
    if task == "gsm8k":
        fake.responder = Corrector(fake.responder, "formatted")
    problems = EXAMPLES / f"{task}.jsonl"
    sampled = run("sample", str(problems), "-m", "r", "-n", "2", "--keep", "all", *endpoint(fake))
    assert sampled.exit_code == 0, sampled.stderr
    corrected = run("correct", "-m", "c", *endpoint(fake), input=sampled.stdout)
    assert corrected.exit_code == 0, corrected.stderr
    written: dict[str, list[tuple[str, bool]]] = {}
    filtered = run("filter", "-", "--with-cot", input=corrected.stdout)
    assert filtered.exit_code == 0, filtered.stderr
    written["filter"] = [s for row in records(filtered) for s in solutions("filter", row)]
    for fmt in FORMATS:
        mix = [] if fmt == "dpo" else ["--mix"]  # with the correct samples' CoT records
        # Fix & Continue only: Fresh & Restart continues with the dataset's gold solution
        fix = ["--restart-rate", "0"] if fmt == "lemma" else []
        exported = run("export", "-", "-f", fmt, *mix, *fix, input=corrected.stdout)
        assert exported.exit_code == 0, exported.stderr
        written[fmt] = [s for row in records(exported) for s in solutions(fmt, row)]
    for fmt, targets in written.items():
        assert targets, fmt
        for text, closed in targets:
            assert dirt(text, closed=closed) == set(), (fmt, text)
