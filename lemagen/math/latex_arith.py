"""Arithmetic in LaTeX solutions (MATH): find the numeric equalities inside math, evaluate them
exactly with Fractions, and re-evaluate them with changed numbers or operators.

Math is read inside `$...$`, `$$...$$`, `\\[...\\]`, `\\(...\\)` and `\\begin{align*}` (any
`\\begin{...}` but matrices, rows joined by `\\\\` when the next row starts with `=`). A math
span is cut into chains at relations and separators other than `=` (`<`, `\\le`, `\\approx`,
`,`, `;`, `\\quad`, `\\text{...}`, arrows); a chain is cut into parts at `=`. A part is numeric
when it parses as: numbers (`12`, `1.5`, `1{,}000`, `1,\\!000`, `\\$5`, `20\\%`), `+ - * /`,
`\\times`, `\\cdot`, `\\div`, parentheses and braces (`\\left( \\right)`), `\\frac{a}{b}` (also
`\\dfrac`, `\\tfrac`, `\\frac43`), `\\sqrt{}` of a perfect square, whole powers `a^{b}`,
factorials `n!`, `\\binom{n}{k}`, implicit products `2(3)`, and `\\boxed{}` around any of them.
A number directly before `\\frac` (`2\\frac{1}{2}`, a mixed number) or a letter makes the part
non-numeric. Nothing is ever passed to eval().

A part's leaves are its numbers, with a fraction of two plain numbers (`\\frac{5}{3}`) read as
one number; exponents are fixed (never a leaf). Its operators are the explicit infix ones, in
text order; a `\\frac` is structure, not a swappable operator.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction

from lemagen.math.latex_parse import Leaf, NotNumeric, Parser, Tok, tokens


@dataclass
class Part:
    """One side of an `=`: a numeric expression with its leaves and explicit operators."""

    step: int
    chain: int  # chains are numbered across the whole solution
    start: int
    end: int
    text: str
    leaves: list[Leaf]
    ops: list[str]  # normalised: + - * /
    op_spans: list[tuple[int, int]]
    compute: Callable[[list[Fraction], list[str], list[Fraction]], Fraction]
    literal: bool = False  # a bare number (possibly negative): a result, not a computation
    value: Fraction = field(default=Fraction(0))
    trace: list[Fraction] = field(default_factory=list)  # every inner value, in order

    def evaluate(
        self, values: list[Fraction], ops: list[str]
    ) -> tuple[Fraction, list[Fraction]] | None:
        """The value with other leaf values / operators, and its inner values in the order of
        `trace` (so old and new inner values pair up), or None (division by zero, no exact
        root, too large)."""
        trace: list[Fraction] = []
        try:
            return self.compute(values, ops, trace), trace
        except NotNumeric:
            return None


# ---------------------------------------------------------------- math spans


def math_spans(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of the inside of each math span of `text` (`\\$` is a dollar sign)."""
    i, n = 0, len(text)
    while i < n:
        if text.startswith("\\$", i):
            i += 2
            continue
        for opener, closer in (("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), ("$", "$")):
            if text.startswith(opener, i):
                close = _closing(text, closer, i + len(opener))
                if close == -1:
                    return
                yield i + len(opener), close
                i = close + len(closer)
                break
        else:
            env = _ENV.match(text, i)
            if env:
                end = text.find(f"\\end{{{env.group(1)}}}", env.end())
                if end == -1:
                    return
                yield env.end(), end
                i = end
            else:
                i += 1


_ENV = re.compile(r"\\begin\{(align\*?|eqnarray\*?|gather\*?|equation\*?)\}")


def _closing(text: str, closer: str, i: int) -> int:
    """Where `closer` closes math opened before `i` (an escaped `\\$` does not), or -1."""
    while (j := text.find(closer, i)) != -1:
        if closer == "$" and text[j - 1] == "\\":
            i = j + 1
            continue
        return j
    return -1


# ---------------------------------------------------------------- chains


def _chains(tokens: list[Tok]) -> list[list[list[Tok]]]:
    """Chains of parts: a chain is cut at `=`, chains at breaks and at a row break that does
    not continue with `=`."""
    chains: list[list[list[Tok]]] = []
    parts: list[list[Tok]] = [[]]
    for i, tok in enumerate(tokens):
        if tok.kind == "row":
            nxt = tokens[i + 1] if i + 1 < len(tokens) else None
            if nxt is not None and nxt.kind == "=":
                continue
            tok = Tok("break", "", tok.start, tok.end)
        if tok.kind == "break":
            chains.append(parts)
            parts = [[]]
        elif tok.kind == "=":
            parts.append([])
        else:
            parts[-1].append(tok)
    chains.append(parts)
    return [c for c in chains if len(c) > 1 or c[0]]


def find_parts(step: str, index: int, chain_base: int) -> list[list[Part | None]]:
    """The chains of one step: each a list of its parts, None for a non-numeric part."""
    out: list[list[Part | None]] = []
    for start, end in math_spans(step):
        for chain in _chains(tokens(step[start:end], start)):
            parts: list[Part | None] = []
            for toks in chain:
                parts.append(_part(step, toks, index, chain_base + len(out)))
            out.append(parts)
    return out


def _part(step: str, toks: list[Tok], index: int, chain: int) -> Part | None:
    if not toks or not any(t.kind == "num" for t in toks):
        return None
    parser = Parser(toks)
    try:
        node = parser.parse()
    except (NotNumeric, KeyError):
        return None
    if not parser.leaves:
        return None
    for leaf in parser.leaves:
        leaf.text = step[leaf.start : leaf.end]
    start, end = toks[0].start, toks[-1].end
    body = toks[1:] if toks[0].kind == "op" and toks[0].text == "-" else toks
    leaf = parser.leaves[0]
    literal = len(parser.leaves) == 1 and all(
        t.start >= leaf.start and t.end <= leaf.end for t in body
    )
    part = Part(
        index, chain, start, end, step[start:end], parser.leaves, parser.ops,
        parser.op_spans, node, literal,
    )  # fmt: skip
    result = part.evaluate([leaf.value for leaf in part.leaves], list(part.ops))
    if result is None:
        return None
    part.value, part.trace = result
    return part


# ---------------------------------------------------------------- writing values


def render(value: Fraction, like: str, *, tight: bool = False, in_sum: bool = False) -> str:
    """`value` in LaTeX, written the way `like` is (currency, percent, thousands separator,
    decimals, `\\frac`/`\\dfrac`); parenthesised where a bare negative or fraction would read
    wrongly (a power's base, after an operator)."""
    prefix = "\\$" if like.lstrip().startswith("\\$") else ""
    if like.rstrip().endswith("\\%"):
        return render(value * 100, like.rstrip()[:-2], tight=tight, in_sum=in_sum) + "\\%"
    sign = "-" if value < 0 else ""
    v = abs(value)
    if v.denominator == 1:
        digits = str(v.numerator)
        sep = "{,}" if "{,}" in like else ",\\!" if ",\\!" in like else None
        if sep is not None and v >= 1000:
            digits = f"{v.numerator:,}".replace(",", sep)
        body = digits
    elif "." in like and (2**10 * 5**10) % v.denominator == 0:
        text = _decimal(v)
        places = re.search(r"\.(\d+)", like)
        limit = max(4, len(places.group(1)) if places else 0)  # `.0000672` keeps its 7
        body = text if len(text.split(".")[1]) <= limit else _frac(v, like)
        if body.startswith("0.") and re.match(r"\s*(?:\\\$\s*)?\.\d", like):
            body = body[1:]  # `.0000672`: no leading zero, as in `like`
    else:
        body = _frac(v, like)
    out = f"{sign}{prefix}{body}"
    if (sign and (tight or in_sum)) or (tight and v.denominator != 1):
        return f"({out})"
    return out


def _decimal(v: Fraction) -> str:
    """A fraction whose denominator divides 10^10, as an exact decimal."""
    scaled = v * 10**10
    whole, rest = divmod(scaled.numerator // scaled.denominator, 10**10)
    return f"{whole}.{rest:010d}".rstrip("0")


def style(text: str) -> str:
    """How a number is written: `decimal` (`0.15`, `.0000672`), `fraction` (`\\frac{14}{3}`,
    `3/4`) or `integer`; a changed final answer keeps the style of the one it replaces."""
    if re.search(r"\d?\.\d", text):
        return "decimal"
    if re.search(r"\\[dt]?frac|\d\s*/\s*\d", text):
        return "fraction"
    return "integer"


def _frac(v: Fraction, like: str) -> str:
    command = re.match(r"\\[dt]?frac", like.strip())
    name = command.group(0) if command else "\\frac"
    return f"{name}{{{v.numerator}}}{{{v.denominator}}}"


def latex_value(text: str) -> Fraction | None:
    """A final answer as a number (`\\frac{14}{3}`, `-\\frac43`, `10,\\!080`, `\\$32`, `90^\\circ`,
    `5.4 \\text{ cents}`), or None when it is not a single number."""
    cleaned = re.sub(r"\\(?:text|mbox)\s*\{[^{}]*\}(?:\^\{?\d\}?)?", "", text).strip()
    cleaned = re.sub(r"^\\boxed\{(.*)\}$", r"\1", cleaned)
    if not cleaned:
        return None
    toks = [t for t in tokens(cleaned, 0) if t.kind != "row"]
    parser = Parser(toks)
    try:
        node = parser.parse()
    except (NotNumeric, KeyError):
        return None
    if parser.ops or len(parser.leaves) != 1:
        return None
    try:
        return node([leaf.value for leaf in parser.leaves], [], [])
    except NotNumeric:
        return None
