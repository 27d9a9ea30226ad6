"""Mistakes made from MATH solutions (LaTeX), no model needed: the MATH side of `inject`.

The solution is read as equality chains inside its math (`lemagen.math.latex_arith`): in
`$\\frac{-8}{-4}+1 = 2+1 = 3$` the parts `\\frac{-8}{-4}+1`, `2+1` and `3` are equal, so
each `=` between them is a checked equation. One part is altered, as for GSM8K:
- calculation: a result (a bare number after a computation) is off;
- copy: a number of the question is copied wrongly into the first part of a chain;
- operator: one explicit operator of the first part of a chain is swapped (+ and -, times/div).
Every later part whose numbers include a changed value is recomputed (and the inner values of a
recomputed part carry to the rest of its chain: `2 \\cdot 7 + 3 = 14 + 3`), so the wrong
solution stays consistent; the final answer, and its `\\boxed{}`, change. The result is then
read back and checked with exact arithmetic: every chain agrees except, for a calculation
mistake, the one altered equation, and the last `\\boxed{}` holds the new final answer, written
in the gold answer's style (a decimal stays a decimal, a fraction a fraction).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from lemagen.math.answers import find_boxed
from lemagen.math.arith import replace_spans
from lemagen.math.latex_arith import Part, find_parts, latex_value, render, style
from lemagen.math.latex_parse import Leaf
from lemagen.math.steps import split_sentences, split_steps
from lemagen.mistakes.gsm8k import Mistake, Unusable, choose, miscopies, slips
from lemagen.records import Problem

_ANSWER_IS = re.compile(r"\s*The answer is:?\s*[^\n]*\s*$")
_SWAP = {"+": "-", "-": "+", "*": "/", "/": "*"}
_SWAP_TEXT = {"+": "-", "-": "+", "\\times": "\\div", "\\cdot": "\\div", "\\div": "\\times"}
_SWAP_TEXT |= {"*": "/", "/": "\\times "}  # a product in LaTeX, never a bare `*`
_OP_WORDS = {"+": "addition", "-": "subtraction", "*": "multiplication", "/": "division"}
_UNSURE = (Fraction(0), Fraction(1))  # too common to tell a result from a constant


@dataclass
class LatexSolution:
    steps: list[str]  # gold steps; the last is `The answer is X.`
    parts: list[Part]  # every numeric part, in text order
    prev: dict[int, int]  # a part -> the part before it in its chain, when the two are equal
    final: int  # the computed part whose value is the final answer
    gold: Fraction
    gold_text: str
    disagree: int  # adjacent numeric parts of a chain that differ (a misread, not arithmetic)
    boxed: bool  # the solution boxes its final answer
    share: bool = False  # the answer is a probability or a fraction of a whole: stays in (0, 1)


def math_steps(body: str) -> list[str]:
    """Lines, each cut into sentences (never inside math: `$...$` spanning lines, display math,
    `\\begin{...}...\\end{...}` environments); an `[asy]` figure stays one step."""
    out: list[str] = []
    figure: list[str] = []
    for line in _joined_inline_math(split_steps(body)):
        if not figure and "[asy]" in line and not line.startswith("[asy]"):
            cut = line.index("[asy]")
            out += split_sentences(line[:cut], latex=True)
            line = line[cut:]
        if figure or line.startswith("[asy]"):
            figure.append(line)
            if "[/asy]" in line:
                out.append("\n".join(figure))
                figure = []
            continue
        out += split_sentences(line, latex=True)
    if figure:
        out.append("\n".join(figure))
    return out


def _joined_inline_math(lines: list[str]) -> list[str]:
    """Lines, a `$...$` that goes on over a line break joined into one (in LaTeX a bare `$` is
    always math; a dollar sign is `\\$`)."""
    out: list[str] = []
    for line in lines:
        if out and _INLINE_DOLLAR.sub("", out[-1]).count("$") % 2:
            out[-1] += "\n" + line
        else:
            out.append(line)
    return out


_INLINE_DOLLAR = re.compile(r"\\\$|\$\$")  # what is not an inline-math `$`


def analyse(steps: list[str]) -> tuple[list[Part], dict[int, int], int]:
    """The numeric parts of `steps`, which equal their predecessor, how many do not."""
    parts: list[Part] = []
    prev: dict[int, int] = {}
    disagree = 0
    chains = 0
    for i, step in enumerate(steps):
        found = find_parts(step, i, chains)
        chains += len(found)
        for chain in found:
            last: int | None = None
            for part in chain:
                if part is None:
                    last = None
                    continue
                parts.append(part)
                if last is not None:
                    if parts[last].value == part.value:
                        prev[len(parts) - 1] = last
                    else:
                        disagree += 1
                last = len(parts) - 1
    return parts, prev, disagree


def parse_latex_solution(problem: Problem) -> LatexSolution:
    reference = problem.reference
    if reference is None or not reference.strip():
        raise Unusable("no_gold_solution")
    body = _ANSWER_IS.sub("", reference.strip()).rstrip()
    lines = math_steps(body)
    if not lines:
        raise Unusable("no_gold_solution")
    gold = latex_value(problem.gold)
    if gold is None:
        raise Unusable("gold_not_numeric")
    parts, prev, disagree = analyse(lines)
    computed = set(prev) | set(prev.values())
    if not computed:
        raise Unusable("no_equations")
    finals = [i for i in sorted(computed) if parts[i].value == gold]
    if not finals:
        raise Unusable("answer_not_computed")
    boxed = find_boxed(body)
    return LatexSolution(
        [*lines, f"The answer is {problem.gold}."],
        parts,
        prev,
        finals[-1],
        gold,
        problem.gold,
        disagree,
        boxed is not None and latex_value(boxed) == gold,
        0 < gold < 1 and _SHARE.search(problem.question) is not None,
    )


_SHARE = re.compile(r"probability|chance|what fraction|percent", re.IGNORECASE)


def _question_numbers(question: str) -> set[Fraction]:
    values = {Fraction(m) for m in re.findall(r"\d+(?:\.\d+)?", question)}
    values |= {Fraction(int(a), int(b)) for a, b in re.findall(r"frac\{(\d+)\}\{(\d+)\}", question)}
    return values


def candidates(sol: LatexSolution, question: str, types: tuple[str, ...]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    heads = sorted(set(sol.prev.values()) - set(sol.prev))  # the first part of each chain
    if "calculation" in types:
        for i, before in sorted(sol.prev.items()):
            part = sol.parts[i]
            if part.literal and not sol.parts[before].literal and part.value not in _UNSURE:
                text = part.text
                wrong = (
                    slips(part.value, text)
                    if part.value > 0
                    else [-v for v in slips(-part.value, text)]
                )
                out += [("calculation", (i, v)) for v in wrong]
    given = _question_numbers(question)
    for head in heads:
        part = sol.parts[head]
        if "copy" in types:
            earlier = {abs(v) for p in sol.parts[:head] for v in (p.value, *p.trace)}
            for pos, leaf in enumerate(part.leaves):
                if leaf.value in given and leaf.value not in earlier:
                    out += [("copy", (head, pos, v)) for v in miscopies(leaf.value)]
        if "operator" in types:
            out += [("operator", (head, pos)) for pos in range(len(part.ops))]
    return out


def _plausible(old: Fraction, new: Fraction) -> bool:
    """A changed quantity keeps its sign, and stays whole if it was whole."""
    return (new < 0) == (old < 0) and (old.denominator != 1 or new.denominator == 1)


Edits = dict[int, list[tuple[int, int, str]]]


def _leaf_edits(
    part: Part, values: list[Fraction], edits: Edits, texts: list[str | None] | None = None
) -> None:
    """Write each changed leaf (`texts`: how to write it, when not from its value)."""
    for i, (leaf, new) in enumerate(zip(part.leaves, values, strict=True)):
        text = texts[i] if texts is not None else None
        if new != leaf.value or text is not None:
            if text is None:
                text = render(new, leaf.text, tight=leaf.tight, in_sum=leaf.start > part.start)
            edits.setdefault(part.step, []).append((leaf.start, leaf.end, text))


def _propagate(
    sol: LatexSolution, index: int, values: list[Fraction], ops: list[str], forced: Fraction | None
) -> tuple[list[str], Fraction, Fraction] | None:
    """Apply the change to part `index` and recompute every later part that uses a changed
    value: (the wrong steps without the answer step, the new final answer, the part's new
    value), or None when something becomes implausible or the final answer stays."""
    part = sol.parts[index]
    edits: Edits = {}
    if forced is not None:  # a miscalculated result: the bare number itself is off
        new, trace = forced, [forced]
        sign = 1 if part.value == part.leaves[0].value else -1
        _leaf_edits(part, [forced * sign], edits)
    else:
        result = part.evaluate(values, ops)
        if result is None:
            return None
        new, trace = result
        wrong = _part_text(part, sol, values, ops)
        edits[part.step] = [(part.start, part.end, wrong)]
    if part.value in _UNSURE or new == part.value or not _plausible(part.value, new):
        return None
    computed = sol.parts[sol.prev[index]] if forced is not None else part
    if any(leaf.value == part.value for leaf in computed.leaves):
        return None  # `2^1 = 2`: a later 2 may be the result or the operand; do not guess
    leaves = zip(values, part.leaves, strict=True)
    if new in _UNSURE or any(v in _UNSURE and v != leaf.value for v, leaf in leaves):
        return None  # a result or number turned into 0 or 1 reads as a different step
    changed = {part.value: new}
    local = _pairs(part.trace, trace) if forced is None else {}
    results = {index: new}
    chain = part.chain
    for j in range(index + 1, len(sol.parts)):
        later = sol.parts[j]
        if later.chain != chain:
            chain, local = later.chain, {}
        olds = [leaf.value for leaf in later.leaves]
        mapped = [_mapped_leaf(leaf, local, changed) for leaf in later.leaves]
        news = [value for value, _ in mapped]
        if news == olds:
            continue
        result = later.evaluate(news, later.ops)
        if result is None:
            return None
        value, trace = result
        if not _plausible(later.value, value) or (value in _UNSURE and value != later.value):
            return None
        _leaf_edits(later, news, edits, [text for _, text in mapped])
        local |= _pairs(later.trace, trace)
        if value != later.value:
            if later.value in _UNSURE or changed.get(later.value, value) != value:
                return None
            changed[later.value] = value
            results[j] = value
    final = results.get(sol.final, sol.gold)
    if final == sol.gold:
        return None
    steps = [replace_spans(s, edits.get(i, [])) for i, s in enumerate(sol.steps[:-1])]
    return steps, final, new


def _mapped(
    value: Fraction, local: dict[Fraction, Fraction], changed: dict[Fraction, Fraction]
) -> Fraction:
    if value in _UNSURE:
        return value
    if value in local:
        return local[value]
    if value in changed:
        return changed[value]
    if -value in changed:
        return -changed[-value]
    return value


def _mapped_leaf(
    leaf: Leaf, local: dict[Fraction, Fraction], changed: dict[Fraction, Fraction]
) -> tuple[Fraction, str | None]:
    """A leaf's new value; a fraction whose numerator or denominator changed is written with
    the new ones (`\\frac{34}{100}` -> `\\frac{32}{100}`, not reduced)."""
    value = _mapped(leaf.value, local, changed)
    if value != leaf.value or leaf.fraction is None:
        return value, None
    num, den = (_mapped(v, local, changed) for v in leaf.fraction)
    if (num, den) == leaf.fraction or den == 0 or num.denominator != 1 or den.denominator != 1:
        return value, None
    command = re.match(r"\\[dt]?frac", leaf.text)
    name = command.group(0) if command else "\\frac"
    return num / den, f"{name}{{{num}}}{{{den}}}"


def _pairs(old: list[Fraction], new: list[Fraction]) -> dict[Fraction, Fraction]:
    if len(old) != len(new):
        return {}
    return {a: b for a, b in zip(old, new, strict=True) if a != b and a not in _UNSURE}


def _checked(sol: LatexSolution, steps: list[str], final: Fraction, kind: str) -> str | None:
    """The final answer as written, if the wrong steps read back consistently: every chain
    agrees but for the one altered equation of a calculation mistake, and the last box holds
    the new answer. None otherwise."""
    _, _, disagree = analyse(steps)
    if disagree != sol.disagree + (kind == "calculation"):
        return None
    if not sol.boxed:
        answer = render(final, sol.gold_text)
    else:
        boxed = find_boxed("\n".join(steps))
        if boxed is None or latex_value(boxed) != final:
            return None
        answer = boxed
    if style(answer) != style(sol.gold_text):
        return None  # a decimal stays a decimal, a fraction a fraction, an integer an integer
    return answer


def make(sol: LatexSolution, kind: str, spec: Any) -> Mistake | None:
    """The mistake one candidate describes, or None if it is implausible or does not read
    back."""
    part = sol.parts[spec[0]]
    values = [leaf.value for leaf in part.leaves]
    ops = list(part.ops)
    forced = spec[1] if kind == "calculation" else None
    if kind == "copy":
        values[spec[1]] = spec[2]
    elif kind == "operator":
        ops[spec[1]] = _SWAP[ops[spec[1]]]
    made = _propagate(sol, spec[0], values, ops, forced)
    if made is None:
        return None
    steps, final, new = made
    if sol.share and not 0 < final < 1:
        return None  # a probability of 81/2
    answer = _checked(sol, steps, final, kind)
    if answer is None:
        return None
    k = part.step + 1
    old_shown = render(part.value, part.text)
    new_shown = render(new, part.text)
    if kind == "calculation":
        before = sol.parts[sol.prev[spec[0]]]
        explanation = (
            f"Step {k} computes ${before.text}$ as ${new_shown}$, but "
            f"${before.text} = {old_shown}$."
        )
    else:
        wrong = _part_text(part, sol, values, ops)
        if kind == "copy":
            leaf = part.leaves[spec[1]]
            miscopied = render(spec[2], leaf.text)
            explanation = (
                f"Step {k} copies ${leaf.text}$ from the question as ${miscopied}$, "
                f"so it computes ${wrong} = {new_shown}$ instead of ${part.text} = {old_shown}$."
            )
        else:
            pos = spec[1]
            explanation = (
                f"Step {k} uses {_OP_WORDS[ops[pos]]} where the step needs "
                f"{_OP_WORDS[part.ops[pos]]}: ${wrong} = {new_shown}$, but it should be "
                f"${part.text} = {old_shown}$."
            )
    steps.append(f"The answer is {answer}.")
    return Mistake(kind, part.step, steps, final, explanation, answer)


def _part_text(part: Part, sol: LatexSolution, values: list[Fraction], ops: list[str]) -> str:
    """The part written with other leaf values and operators (a product as the solution writes
    one: `\\cdot` if it uses it, else `\\times`)."""
    step = sol.steps[part.step]
    cdot = any("\\cdot" in s for s in sol.steps)
    edits: Edits = {}
    _leaf_edits(part, values, edits)
    spans = edits.get(part.step, [])
    for pos, (start, end) in enumerate(part.op_spans):
        if ops[pos] != part.ops[pos]:
            swapped = _SWAP_TEXT[step[start:end]]
            if swapped == "\\times " and cdot:
                swapped = "\\cdot "
            spans.append((start, end, swapped))
    return replace_spans(part.text, [(s - part.start, e - part.start, t) for s, e, t in spans])


def inject_latex(
    sol: LatexSolution,
    question: str,
    types: tuple[str, ...],
    per_question: int,
    rng: random.Random,
) -> list[Mistake]:
    """Up to `per_question` distinct mistakes for one MATH solution, spread over the types."""
    pool = candidates(sol, question, types)
    return choose(pool, lambda k, s: make(sol, k, s), types, per_question, rng)
