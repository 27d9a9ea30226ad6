"""Arithmetic in solution text: find `a op b = c` equations, evaluate them exactly, rewrite them.

Never calls eval(): expressions are tokenised here and evaluated with Fractions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

from lemagen.math.answers import format_number, too_long

_NUM = r"\$?\d+(?:,\d{3})*(?:\.\d+)?%?"
# Unit words between a number and the next operator: `140 girls / 2 girls/boy = 70`.
_UNIT = r"(?:\s+(?!x\s)[A-Za-z][A-Za-z/'-]*){0,4}"
_OP = r"(?:\s*[-+*/\u00d7\u00f7]\s*|\s+x\s+|(?<=\d)x(?=\d))"
EQUATION = re.compile(
    rf"(?<![\w.,$])({_NUM}{_UNIT}(?:{_OP}{_NUM}{_UNIT})+)\s*=\s*({_NUM})(?![\d,]*\.?\d)"
)
_TOKEN = re.compile(rf"({_NUM}){_UNIT}|({_OP})")
OPERATORS = {"+": "+", "-": "-", "*": "*", "/": "/", "x": "*", "\u00d7": "*", "\u00f7": "/"}


@dataclass
class Number:
    value: Fraction
    start: int  # span in the step text
    end: int
    text: str


@dataclass
class Equation:
    step: int  # 0-based step index
    operands: list[Number]
    ops: list[str]  # normalised: + - * /
    op_spans: list[tuple[int, int]]
    result: Number

    def expression(self, values: list[Fraction] | None = None, ops: list[str] | None = None) -> str:
        """`48 / 2`, optionally with other operand values or operators."""
        vals = values if values is not None else [o.value for o in self.operands]
        ops = ops if ops is not None else self.ops
        shown = [show(v, o.text) for v, o in zip(vals, self.operands, strict=True)]
        parts = [shown[0]]
        for op, text in zip(ops, shown[1:], strict=True):
            parts += [op, text]
        return " ".join(parts)


def to_fraction(token: str) -> Fraction | None:
    """`$1,250.50` -> 1250.5; `75%` -> 3/4; None for a number too long to read as one."""
    if too_long(token):
        return None
    value = Fraction(token.replace("$", "").replace(",", "").rstrip("%"))
    return value / 100 if token.endswith("%") else value


def evaluate(values: list[Fraction], ops: list[str]) -> Fraction | None:
    """`values[0] ops[0] values[1] ...` with * and / before + and -; None on division by 0."""
    terms: list[Fraction] = [values[0]]
    signs: list[str] = []
    for op, value in zip(ops, values[1:], strict=True):
        if op in "*/":
            if op == "/" and value == 0:
                return None
            terms[-1] = terms[-1] * value if op == "*" else terms[-1] / value
        else:
            signs.append(op)
            terms.append(value)
    total = terms[0]
    for sign, term in zip(signs, terms[1:], strict=True):
        total = total + term if sign == "+" else total - term
    return total


def find_equations(step: str, index: int) -> list[Equation]:
    """The equations of one step whose left side really evaluates to their right side."""
    found = []
    for match in EQUATION.finditer(step):
        operands: list[Number] = []
        ops: list[str] = []
        op_spans: list[tuple[int, int]] = []
        base = match.start(1)
        readable = True  # every number short enough to read (else no equation)
        for token in _TOKEN.finditer(match.group(1)):
            if token.group(1):
                value = to_fraction(token.group(1))
                readable = readable and value is not None
                start, end = base + token.start(1), base + token.end(1)
                operands.append(Number(value or Fraction(0), start, end, token.group(1)))
            else:
                ops.append(OPERATORS[token.group(2).strip()])
                op_spans.append((base + token.start(), base + token.end()))
        value = to_fraction(match.group(2))
        if value is None or not readable:
            continue
        result = Number(value, match.start(2), match.end(2), match.group(2))
        if (
            len(operands) == len(ops) + 1
            and evaluate([o.value for o in operands], ops) == result.value
        ):
            found.append(Equation(index, operands, ops, op_spans, result))
    return found


def render_like(value: Fraction, like: str) -> str | None:
    """`value` written the way `like` is (`$`, thousands commas, decimals); None if it cannot
    be written exactly with at most 4 decimals."""
    if like.endswith("%"):
        shown = render_like(value * 100, like[:-1])
        return None if shown is None else shown + "%"
    text = format_number(value)
    if "/" in text or ("." in text and len(text.split(".")[1]) > 4):
        return None
    if "," in like and value.denominator == 1 and abs(value) >= 1000:
        text = f"{value.numerator:,}"
    decimals = like.split(".")[1] if "." in like else ""
    if len(decimals) == 2 and value.denominator != 1 and len(text.split(".")[-1]) == 1:
        text += "0"  # $2.5 -> $2.50, as the original wrote money
    return ("$" if like.startswith("$") else "") + text


def show(value: Fraction, like: str) -> str:
    """`value` for an explanation, written like `like` but without a currency sign."""
    return (render_like(value, like) or format_number(value)).lstrip("$")


def replace_spans(text: str, edits: list[tuple[int, int, str]]) -> str:
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    return text
