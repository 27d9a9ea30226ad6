"""Mistakes made from gold solutions, no model needed (for `lemagen inject` and retry data).

A gold solution (GSM8K rationale, or any solution whose steps carry `a op b = c` arithmetic) is
read as a chain of equations. One is altered, and every later equation that uses its result is
recomputed, so the wrong solution is internally consistent and reaches a wrong final answer (a
step's result stated in its words changes with it; a mistake is not made when a changed step's
words state another value it changes, `needs 15 packs so 5*35 = 175`):
- calculation: a computed result is off (a digit slip, off by one, a wrong carry; a decimal's
  wrong last digit; a fraction's numerator or denominator off);
- copy: a number from the question is copied wrongly into a step;
- operator: one operator swapped (+ and -, * and /);
- skip: a later step moved up before a step it depends on (the fake mistake of Physics of LMs
  2.2: its content is right, it comes too early, so its final answer is the gold one).
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from lemagen.math.answers import format_number
from lemagen.math.arith import (
    Equation,
    evaluate,
    find_equations,
    render_like,
    replace_spans,
    show,
    to_fraction,
)
from lemagen.math.steps import is_answer_step, split_steps
from lemagen.records import Problem
from lemagen.terms import Reason

ERROR_TYPES = ("calculation", "copy", "operator", "skip")
DEFAULT_TYPES = ("calculation", "copy", "operator")
_OP_WORDS = {"+": "addition", "-": "subtraction", "*": "multiplication", "/": "division"}
_SWAP = {"+": "-", "-": "+", "*": "/", "/": "*"}


class Unusable(Exception):
    """The problem cannot be used; `reason` is a short tag, counted in the summary."""

    def __init__(self, reason: Reason) -> None:
        super().__init__(reason)
        self.reason: Reason = reason


@dataclass
class Solution:
    steps: list[str]  # gold steps; the last is `The answer is N.`
    equations: list[Equation]
    final: int  # index of the equation whose result is the final answer
    gold: Fraction


@dataclass
class Mistake:
    error_type: str
    step: int  # 0-based index of the incorrect step
    steps: list[str]  # the wrong solution
    answer: Fraction
    explanation: str
    answer_text: str | None = None  # the final answer as written (LaTeX), when not a number


def parse_solution(problem: Problem, *, need_arithmetic: bool = True) -> Solution:
    """The gold solution as steps and equations. Retry data can use a solution without
    arithmetic (`need_arithmetic=False`); injected errors cannot."""
    reference = problem.reference
    if reference is None or not reference.strip():
        raise Unusable("no_gold_solution")
    body = re.sub(r"<<[^<>]*>>", "", reference)
    body = re.sub(r"(?m)^\s*####.*$", "", body).strip()
    lines = split_steps(body)
    if lines and is_answer_step(lines[-1]):
        lines.pop()  # a plain solution's own `The answer is N.`: we write it back below
    if not lines:
        raise Unusable("no_gold_solution")
    try:
        gold = Fraction(problem.gold)
    except (ValueError, ZeroDivisionError):
        raise Unusable("gold_not_numeric") from None
    equations = [eq for i, line in enumerate(lines) for eq in find_equations(line, i)]
    finals = [i for i, eq in enumerate(equations) if eq.result.value == gold]
    if need_arithmetic and not equations:
        raise Unusable("no_equations")
    if need_arithmetic and not finals:
        raise Unusable("answer_not_computed")
    final = finals[-1] if finals else -1
    return Solution([*lines, f"The answer is {problem.gold}."], equations, final, gold)


# ---------------------------------------------------------------- value changes


def slips(value: Fraction, like: str = "") -> list[Fraction]:
    """Plausible miscalculations of a positive result written as `like`: for a whole number,
    off by one, a digit slip, a wrong carry; for a decimal, a wrong last digit, a digit slip or
    a wrong carry among its decimals; for a fraction, its numerator or denominator off by one or
    with a digit slip (written in lowest terms, so the slip is what is written). A result that
    is not whole stays not whole, and a proper fraction (a probability, a share) stays proper."""
    out: list[Fraction]
    if value.denominator == 1:  # in ints: hashing Fractions was a tenth of `inject`'s time
        n = value.numerator
        whole = [n + 1, n - 1, *_digit_slips(n)]
        for k in range(1, len(str(abs(n)))):
            whole += [n + 10**k, n - 10**k]
        return [Fraction(v) for v in dict.fromkeys(whole) if v != n and v > 0]
    places = re.search(r"\d?\.(\d+)", like)
    if places:
        last = Fraction(1, 10 ** len(places.group(1)))
        out = [value + last * d for d in (-2, -1, 1, 2)]
        out += [value + last * d * 10**k for k in range(1, len(places.group(1))) for d in (-1, 1)]
        if value > 2:
            out += [value + 1, value - 1]
    else:
        num, den = value.numerator, value.denominator
        out = [Fraction(n, den) for n in (num + 1, num - 1, *_digit_slips(num)) if n > 0]
        out += [
            Fraction(num, d)
            for d in (den + 1, den - 1, *_digit_slips(den))
            if d > 1 and math.gcd(num, d) == 1
        ]
        out = [v for v in out if _lowest(v, num, den)]
    proper = value < 1
    return [
        v
        for v in dict.fromkeys(out)
        if v != value and v > 0 and v.denominator != 1 and (not proper or v < 1)
    ]


def _lowest(v: Fraction, num: int, den: int) -> bool:
    """`v` is written with the slipped numerator or denominator itself (not reduced away)."""
    return v.numerator == num or v.denominator == den


def _digit_slips(n: int) -> list[int]:
    """`n` with one digit off by one or two (no new leading zero)."""
    digits = str(abs(n))
    out = []
    for pos in range(len(digits)):
        for delta in (-2, -1, 1, 2):
            d = int(digits[pos]) + delta
            if not 0 <= d <= 9 or (pos == 0 and d == 0 and len(digits) > 1):
                continue
            out.append(int(digits[:pos] + str(d) + digits[pos + 1 :]))
    return out


def miscopies(value: Fraction) -> list[Fraction]:
    """Plausible wrong copies of a number: two digits swapped, one digit off by one."""
    if value.denominator != 1:
        return [v for v in (value + 1, value - 1) if v > 0]
    digits = str(value.numerator)
    out = []
    for i in range(len(digits) - 1):
        swapped = digits[:i] + digits[i + 1] + digits[i] + digits[i + 2 :]
        if swapped[0] != "0":
            out.append(Fraction(int(swapped)))
    out += [value + 1, value - 1]
    return [v for v in dict.fromkeys(out) if v != value and v > 0]


def _edit_operands(
    eq: Equation, values: list[Fraction], edits: dict[int, list[tuple[int, int, str]]]
) -> bool:
    """Queue a text edit for each operand of `eq` whose value changes to the one in `values`;
    False if a new value cannot be written in the style of the old one."""
    for old, new in zip(eq.operands, values, strict=True):
        if old.value != new:
            text = render_like(new, old.text)
            if text is None:
                return False
            edits.setdefault(eq.step, []).append((old.start, old.end, text))
    return True


def _propagate(
    sol: Solution,
    index: int,
    values: list[Fraction],
    ops: list[str],
    op_text: dict[int, str],
    forced: Fraction | None = None,
) -> tuple[list[str], Fraction] | None:
    """Apply new operand values / operators to equation `index` (or force its result to
    `forced`, a miscalculation), recompute every later equation that uses a changed result,
    and rewrite the text. None if anything becomes implausible (negative, division by zero,
    not writable exactly) or the final answer does not change."""
    eq = sol.equations[index]
    edits: dict[int, list[tuple[int, int, str]]] = {}
    new_value = forced if forced is not None else evaluate(values, ops)
    if new_value is None or not _plausible(eq.result.value, new_value):
        return None
    if new_value == eq.result.value:
        return None
    changed = {eq.result.value: new_value}
    if not _edit_operands(eq, values, edits):
        return None
    for pos, symbol in op_text.items():
        start, end = eq.op_spans[pos]
        edits.setdefault(eq.step, []).append((start, end, symbol))
    results: dict[int, Fraction] = {index: new_value}
    for j in range(index + 1, len(sol.equations)):
        later = sol.equations[j]
        new_values = [changed.get(o.value, o.value) for o in later.operands]
        if new_values == [o.value for o in later.operands]:
            continue
        value = evaluate(new_values, later.ops)
        if value is None or not _plausible(later.result.value, value):
            return None
        if not _edit_operands(later, new_values, edits):
            return None
        changed[later.result.value] = value
        results[j] = value
    for j, value in results.items():
        result = sol.equations[j].result
        text = render_like(value, result.text)
        if text is None:
            return None
        edits.setdefault(sol.equations[j].step, []).append((result.start, result.end, text))
    final = results.get(sol.final, sol.gold)
    if final == sol.gold:
        return None
    for i in list(edits):
        # The words of a changed step must agree with its equations. A number in words that
        # is this step's own result (`He eats 48 pieces because 32 + 16 = 48`) changes with
        # it; any other changed value in words (`needs 15 4-packs so ... 5*15`: 15 may be the
        # packs or another quantity that equals it) means the mistake is not made.
        own = {
            sol.equations[j].result.value: value
            for j, value in results.items()
            if sol.equations[j].step == i
        }
        for match in _prose_numbers(sol, i):
            old = to_fraction(match.group())
            if old not in changed:
                continue
            if own.get(old) != changed[old]:
                return None
            text = render_like(changed[old], match.group())
            if text is None:
                return None
            edits[i].append((match.start(), match.end(), text))
    steps = [replace_spans(s, edits.get(i, [])) for i, s in enumerate(sol.steps[:-1])]
    return [*steps, f"The answer is {format_number(final)}."], final


def _prose_numbers(sol: Solution, step: int) -> list[re.Match[str]]:
    """The numbers step `step` states outside its equations (`he needs 15 4-packs`)."""
    spans = [(eq.operands[0].start, eq.result.end) for eq in sol.equations if eq.step == step]
    return [
        m
        for m in _PROSE_NUMBER.finditer(sol.steps[step])
        if not any(start <= m.start() < end for start, end in spans)
    ]


_PROSE_NUMBER = re.compile(r"(?<![\w.,$])\$?\d+(?:,\d{3})*(?:\.\d+)?%?")


def _plausible(old: Fraction, new: Fraction) -> bool:
    """A changed quantity stays non-negative, and whole if it was whole (no 23.5 clips)."""
    return new >= 0 and (old.denominator != 1 or new.denominator == 1)


def candidates(sol: Solution, question: str, types: tuple[str, ...]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    question_numbers = {m.replace(",", "") for m in re.findall(r"\d[\d,]*(?:\.\d+)?", question)}
    computed: set[Fraction] = set()
    for i, eq in enumerate(sol.equations):
        if "calculation" in types:
            out += [("calculation", (i, v)) for v in slips(eq.result.value, eq.result.text)]
        if "copy" in types:
            for pos, operand in enumerate(eq.operands):
                plain = operand.text.replace("$", "").replace(",", "")
                if plain in question_numbers and operand.value not in computed:
                    out += [("copy", (i, pos, v)) for v in miscopies(operand.value)]
        if "operator" in types:
            out += [("operator", (i, pos)) for pos in range(len(eq.ops))]
        computed.add(eq.result.value)
    if "skip" in types:
        for later in sol.equations:
            for earlier in sol.equations:
                if earlier.step < later.step and any(
                    o.value == earlier.result.value for o in later.operands
                ):
                    out.append(("skip", (earlier.step, later.step, earlier)))
    return out


def make(sol: Solution, kind: str, spec: Any) -> Mistake | None:
    """The mistake described by one candidate, or None if it is implausible."""
    if kind == "skip":
        first, moved, source = spec
        steps = list(sol.steps)
        steps.insert(first, steps.pop(moved))
        value = show(source.result.value, source.result.text)
        explanation = (
            f"Step {first + 1} uses {value} before it is computed: {value} comes from "
            f"{source.expression()} = {value}, which has to be worked out first."
        )
        return Mistake("skip", first, steps, sol.gold, explanation)
    eq = sol.equations[spec[0]]
    values = [o.value for o in eq.operands]
    ops = list(eq.ops)
    op_text: dict[int, str] = {}
    if kind == "calculation":
        wrong = spec[1]
        result = _propagate(sol, spec[0], values, ops, {}, forced=wrong)
        if result is None:
            return None
        explanation = (
            f"Step {eq.step + 1} computes {eq.expression()} as {show(wrong, eq.result.text)}, but "
            f"{eq.expression()} = {show(eq.result.value, eq.result.text)}."
        )
        return Mistake(kind, eq.step, result[0], result[1], explanation)
    pos = spec[1]
    if kind == "copy":
        values[pos] = spec[2]
    else:  # operator
        ops[pos] = _SWAP[eq.ops[pos]]
        start, end = eq.op_spans[pos]
        original = sol.steps[eq.step][start:end]
        symbol = original.strip()
        shown = {"*": "x", "/": "/"}[ops[pos]] if symbol in ("x", "\u00d7", "\u00f7") else ops[pos]
        op_text[pos] = original.replace(symbol, shown)
    wrong_value = evaluate(values, ops)
    if wrong_value is None:
        return None
    wrong_shown = show(wrong_value, eq.result.text)
    right = f"{eq.expression()} = {show(eq.result.value, eq.result.text)}"
    if kind == "copy":
        operand = eq.operands[pos]
        explanation = (
            f"Step {eq.step + 1} copies {operand.text.lstrip('$')} from the question as "
            f"{show(spec[2], operand.text)}, so it computes {eq.expression(values)} = "
            f"{wrong_shown} instead of {right}."
        )
    else:
        explanation = (
            f"Step {eq.step + 1} uses {_OP_WORDS[ops[pos]]} where the step needs "
            f"{_OP_WORDS[eq.ops[pos]]}: {eq.expression(ops=ops)} = {wrong_shown}, "
            f"but it should be {right}."
        )
    result = _propagate(sol, spec[0], values, ops, op_text)
    if result is None:
        return None
    return Mistake(kind, eq.step, result[0], result[1], explanation)


def inject(
    sol: Solution, question: str, types: tuple[str, ...], per_question: int, rng: random.Random
) -> list[Mistake]:
    """Up to `per_question` distinct mistakes for one solution, spread over the error types."""
    pool = candidates(sol, question, types)
    return choose(pool, lambda k, s: make(sol, k, s), types, per_question, rng)


def choose(
    pool: list[tuple[str, Any]],
    made_by: Callable[[str, Any], Mistake | None],
    types: tuple[str, ...],
    per_question: int,
    rng: random.Random,
) -> list[Mistake]:
    """Up to `per_question` distinct mistakes from the candidates, spread over their types
    (`made_by` turns a candidate into a mistake, or None when it is implausible)."""
    rng.shuffle(pool)
    by_type: dict[str, list[Any]] = {}
    for kind, spec in pool:
        by_type.setdefault(kind, []).append(spec)
    order = [t for t in types if t in by_type]
    rng.shuffle(order)
    out: list[Mistake] = []
    seen: set[tuple[str, ...]] = set()
    while order and len(out) < per_question:
        for kind in list(order):
            made = None
            while by_type[kind] and made is None:
                made = made_by(kind, by_type[kind].pop())
                if made is not None and tuple(made.steps) in seen:
                    made = None
            if made is None:
                order.remove(kind)
                continue
            seen.add(tuple(made.steps))
            out.append(made)
            if len(out) == per_question:
                break
    if not out:
        raise Unusable("no_valid_mistake")
    return out
