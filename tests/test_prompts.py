"""Every shipped prompt renders with exactly its stage's variables, and every worked example in
the corrector prompts is right: its incorrect step is the first wrong one, the steps before it
are right, and its corrected solution is right and reaches the gold answer."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import pytest

from lemagen.art.art import ASK_VARIABLES
from lemagen.cotnpot.crosscheck import CROSSCHECK_VARIABLES
from lemagen.errors import PromptError
from lemagen.lema.correct import CORRECT_VARIABLES, parse_reply
from lemagen.lema.evolve import EVOLVE_VARIABLES
from lemagen.lema.formats import LEMA_COT_PROMPT
from lemagen.lema.sample import SAMPLE_VARIABLES
from lemagen.lemma.analyze import ANALYZE_VARIABLES
from lemagen.lemma.smooth import SMOOTH_VARIABLES
from lemagen.lemma.teacher import TEACH_VARIABLES
from lemagen.math import answers, arith
from lemagen.math.grading import Grader
from lemagen.math.steps import is_answer_step
from lemagen.stage import templates

STAGE_VARIABLES = {
    "sample": SAMPLE_VARIABLES,
    "gsm8k-fewshot": SAMPLE_VARIABLES,
    "math-fewshot": SAMPLE_VARIABLES,
    "correct.gsm8k": CORRECT_VARIABLES,
    "correct.math": CORRECT_VARIABLES,
    "evolve": EVOLVE_VARIABLES,
    "crosscheck": CROSSCHECK_VARIABLES,
    "analyze": ANALYZE_VARIABLES,
    "inject": TEACH_VARIABLES,
    "art-ask": ASK_VARIABLES,
    "smooth": SMOOTH_VARIABLES,
}


def test_every_shipped_prompt_is_known() -> None:
    assert set(templates.shipped_names()) == set(STAGE_VARIABLES)


@pytest.mark.parametrize("name", sorted(STAGE_VARIABLES))
def test_shipped_prompt_uses_exactly_its_stage_variables(name: str) -> None:
    template = templates.load(name)
    assert template.variables() == STAGE_VARIABLES[name]
    template.check(STAGE_VARIABLES[name])
    values = {v: f"<{v} with $x^2$ and {{braces}}>" for v in STAGE_VARIABLES[name]}
    rendered = template.render(**values)
    assert "{{" not in rendered.replace("{{braces}}", "")
    for value in values.values():
        assert value in rendered


def test_sample_prompt_is_the_lema_cot_prompt() -> None:
    rendered = templates.load("sample").render(question="What is 2 + 2?")
    assert rendered == LEMA_COT_PROMPT.format(question="What is 2 + 2?")


def test_crosscheck_prompt_ends_with_the_solution() -> None:
    rendered = templates.load("crosscheck").render(question="Q?", solution="Step 1: 2 + 2 = 4.")
    assert rendered.rstrip().endswith("Problem:\nQ?\n\nSolution:\nStep 1: 2 + 2 = 4.")
    assert "```python" in rendered


@pytest.mark.parametrize("name", ["correct.gsm8k", "correct.math"])
def test_corrector_query_ends_at_incorrect_step(name: str) -> None:
    rendered = templates.load(name).render(
        question="Q?", steps="Step 1: a\nStep 2: The answer is 1."
    )
    assert rendered.rstrip().endswith(
        "Question: Q?\nOriginal Solution:\n{\nStep 1: a\nStep 2: The answer is 1.\n}\n"
        "Incorrect Step:"
    )


def test_user_prompt_errors_name_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "mine.txt"
    path.write_text("Solve it.\nQuestion: {{question}} in {{ langauge }}\n", encoding="utf-8")
    with pytest.raises(PromptError, match=r"mine.txt:2:27: unknown variable \{\{langauge\}\}"):
        templates.load(str(path)).check(SAMPLE_VARIABLES)
    with pytest.raises(PromptError, match="unknown prompt 'nope'"):
        templates.load("nope")


# ---------------------------------------------------------------- worked examples


@dataclass(frozen=True)
class Truth:
    """True values, computed here independently, of what each step claims."""

    before: list[str]  # steps 1..k-1 of the original solution
    at_k: str  # what step k should have found
    corrected: list[str]  # corrected steps k.. (last: the final answer)


def _f(x: Fraction | int) -> str:
    return answers.format_number(Fraction(x))


TRUTHS = {
    "A farmer collects": Truth([_f(36 // 12)], _f(3 * 7), [_f(3 * 7), _f(21 * 4), _f(84)]),
    "Maya buys": Truth(
        [_f(3 * Fraction("2.75")), _f(2 * Fraction("1.40"))],
        _f(3 * Fraction("2.75") + 2 * Fraction("1.40")),
        [_f(Fraction("11.05")), _f(20 - Fraction("11.05")), _f(Fraction("8.95"))],
    ),
    "A library has": Truth(
        [], _f((240 - 240 // 4) // 3), [_f(240 // 4), _f(240 - 60), _f(180 // 3), _f(60)]
    ),
    "A tank holds": Truth([_f(35 - 15)], _f(20 * 6), [_f(20 * 6), _f(500 - 120), _f(380)]),
    "What is the sum": Truth(["x^2 - 5x - 14"], "-2", ["-2", "5", "5"]),
    "The legs of": Truth(["10", "24"], "12", ["12", str(24 // 12), "2"]),
    "What is the $y$": Truth([], "2", ["2", str(-3 - 2 * 2), "-7"]),
    "What is the remainder": Truth(
        [str(pow(3, 6, 7)), "6", "3^4"], str(pow(3, 4, 7)), [str(pow(3, 4, 7)), str(pow(3, 100, 7))]
    ),
}

EXAMPLE = re.compile(
    r"Question: (?P<question>.+)\nOriginal Solution:\n\{\n(?P<original>(?:Step \d+: .+\n)+)\}\n"
    r"Incorrect Step:(?P<reply> Step \d+\.\nExplanation: .+\nCorrect Solution:\n\{\n"
    r"(?:\.\.\.\n)?(?:Step \d+: .+\n)+\})(?:\n\n|$)"
)


def _examples(name: str) -> list[re.Match[str]]:
    text = templates.load(name).text
    body = text.split("\n\n", 1)[1].rsplit("\n\nQuestion: {{question}}", 1)[0] + "\n\n"
    found = list(EXAMPLE.finditer(body))
    assert "".join(m.group(0) for m in found) == body, "an example breaks the LEMA layout"
    return found


def _claim(task: str, step: str) -> str | None:
    """What a step asserts: the final answer, or the value after its last `=` / `\\equiv`."""
    if is_answer_step(step):
        return answers.extract(task, step)
    maths = re.findall(r"\$([^$]+)\$", step)
    segment = maths[-1] if maths else step
    segment = re.sub(r"\\pmod\{\d+\}", "", segment)
    parts = re.split(r"=|\\equiv", segment)
    if len(parts) == 1 and not maths:
        return None  # prose with no equation claims nothing checkable
    return parts[-1].strip(" .")


@pytest.mark.parametrize(("name", "task"), [("correct.gsm8k", "gsm8k"), ("correct.math", "math")])
def test_worked_examples_are_right(name: str, task: str, grader: Grader) -> None:
    examples = _examples(name)
    assert len(examples) == 4
    ks = []
    for example in examples:
        truth = next(t for prefix, t in TRUTHS.items() if example["question"].startswith(prefix))
        original = re.findall(r"Step (\d+): (.+)", example["original"])
        assert [int(i) for i, _ in original] == list(range(1, len(original) + 1))
        steps = [s for _, s in original]
        parsed = parse_reply(example["reply"])
        assert parsed.error is None
        k = parsed.incorrect_step
        assert k is not None
        ks.append(k)
        assert parsed.elided == (k > 1), "`...` stands for steps 1..k-1 exactly when k > 1"
        assert parsed.corrected_from == k
        # Steps before k are right; step k is wrong.
        assert len(truth.before) == k - 1
        for step, value in zip(steps, truth.before, strict=False):
            claim = _claim(task, step)
            assert claim is not None
            assert grader.compare(task, value, claim) == "correct", step
        claim_k = _claim(task, steps[k - 1])
        assert claim_k is not None
        assert grader.compare(task, truth.at_k, claim_k) == "wrong", steps[k - 1]
        # Every corrected step is right, and the corrected final answer is the gold answer.
        assert len(parsed.corrected_steps) == len(truth.corrected)
        for step, value in zip(parsed.corrected_steps, truth.corrected, strict=True):
            claim = _claim(task, step)
            assert claim is not None
            assert grader.compare(task, value, claim) == "correct", step
        gold = truth.corrected[-1]
        original_answer = answers.extract(task, steps[-1])
        assert original_answer is not None
        assert grader.compare(task, gold, original_answer) == "wrong"
    assert 1 in ks, "at least one example with k = 1 (no `...` line)"


# ---------------------------------------------------------------- few-shot sampling prompts

FEWSHOT = re.compile(
    r"Question: (?P<question>[^\n]+)\nAnswer: Let's think step by step\. (?P<solution>[^\n]+)"
    r"(?:\n\n|$)"
)
HEADER = "Please solve the following math problem.\n"
QUERY = "Question: {{question}}\nAnswer: Let's think step by step."


def _fewshot(name: str) -> list[re.Match[str]]:
    """The worked examples of a few-shot prompt, checked to be in the LEMA CoT layout:
    `Question: q\nAnswer: Let's think step by step. <one paragraph> The answer is N.`"""
    text = templates.load(name).text
    assert text.startswith(HEADER)
    assert text.endswith("\n\n" + QUERY), "a base model must continue with the solution"
    body = text[len(HEADER) : -len(QUERY)]
    found = list(FEWSHOT.finditer(body))
    assert "".join(m.group(0) for m in found) == body, "an example breaks the LEMA CoT layout"
    assert len(found) == 4
    for m in found:
        assert "\\boxed" not in m["solution"]
        assert re.search(r"\. The answer is \S.*\.$", m["solution"]), m["solution"]
    return found


# The right final answers, computed here independently of the prompt text.
FEWSHOT_TRUTHS = {
    "A baker fills": _f(6 * 24 - (97 + 38)),
    "Tomas earns": _f((3 + 3 * 2) * 15 - 27),
    "A bottle holds": _f(Fraction("1.5") - 4 * Fraction("0.25")),
    "A jacket costs": _f(100 - (80 - 80 * Fraction(25, 100))),
    "A bag holds": f"\\frac{{{4 + 3}}}{{{4 + 5 + 3}}}",
    "Solve the inequality": f"({(7 + 3) // 2}, \\infty)",
    "A right triangle": "2\\sqrt{13}",  # sqrt(4^2 + 6^2) = sqrt(52) = sqrt(4 * 13)
    "Let $f(x)": str((lambda f: f(f(2)))(lambda x: x * x - 3 * x + 1)),
}


def test_gsm8k_fewshot_arithmetic_is_right() -> None:
    """Every `a op b = c` in the GSM8K examples evaluates exactly to c, and the stated answer
    is the one computed here."""
    for example in _fewshot("gsm8k-fewshot"):
        solution = example["solution"]
        sentences = solution.split(". ")
        for i, sentence in enumerate(sentences):
            found = arith.find_equations(sentence, i)
            assert len(found) == sentence.count("="), f"wrong arithmetic in: {sentence}"
        truth = next(t for p, t in FEWSHOT_TRUTHS.items() if example["question"].startswith(p))
        assert answers.extract_gsm8k_how(solution) == (truth, "answer_is")


def test_math_fewshot_mathematics_is_right(grader: Grader) -> None:
    """Every chain `a = b = c` of numbers in the MATH examples holds (checked with sympy), and
    the stated answer is equivalent to the one computed here."""
    from math_verify import parse

    for example in _fewshot("math-fewshot"):
        solution = example["solution"]
        for span in re.findall(r"\$([^$]+)\$", solution):
            values = []
            for side in span.split("="):
                parsed = [p for p in parse(f"${side}$") if hasattr(p, "is_number")]
                if parsed and parsed[0].is_number:
                    values.append(parsed[0])
            assert all(abs(float(v - values[0])) < 1e-12 for v in values), span
        truth = next(t for p, t in FEWSHOT_TRUTHS.items() if example["question"].startswith(p))
        pred, how = answers.extract_math_how(solution)
        assert how == "answer_is"
        assert pred is not None
        assert grader.compare("math", truth, pred) == "correct", (truth, pred)


@pytest.mark.parametrize("newlines", ["\n\n", "\n"])
@pytest.mark.parametrize(("name", "task"), [("gsm8k-fewshot", "gsm8k"), ("math-fewshot", "math")])
def test_base_model_run_on_is_cut_at_the_invented_question(
    name: str, task: str, newlines: str, grader: Grader
) -> None:
    """A base model continues the prompt with the solution, then invents the next item; the
    invented item (with its own answer) is cut before grading."""
    prompt = templates.load(name).render(question="Ann has 3 pens and buys 4 more. How many?")
    completion = (
        " Ann has 3 + 4 = 7 pens. The answer is 7."
        f"{newlines}Question: Bo has 5 cats and 6 dogs. How many pets does he have?\n"
        "Answer: Let's think step by step. Bo has 5 + 6 = 11 pets. The answer is 11."
    )
    assert prompt.endswith("How many?\nAnswer: Let's think step by step.")
    assert answers.cut_run_on(completion) == " Ann has 3 + 4 = 7 pens. The answer is 7."
    result = grader.grade(task, "7", completion)
    assert (result.pred, result.verdict, result.extracted_by) == ("7", "correct", "answer_is")


def test_render_fills_every_placeholder_as_a_substitution_would() -> None:
    """`render` splits a prompt once; what it writes is what substituting each placeholder
    in place writes (the request store's keys hash the prompt), for every shipped prompt,
    with values that look like regex replacement syntax."""
    from lemagen.stage.templates import _PLACEHOLDER, load, shipped_names

    for name in shipped_names():
        template = load(name)
        values = {key: f"<{key} \\1 \\g<0> $&>" for key in template.variables()}
        expected = _PLACEHOLDER.sub(functools.partial(_fill, values), template.text)
        assert template.render(**values) == expected, name
        assert template.render(**values) == expected  # the split is kept, not redone wrongly


def _fill(values: dict[str, str], match: re.Match[str]) -> str:
    return values[match.group(1)]
