"""Tokens and a parser for the arithmetic inside LaTeX math (see `latex_arith`): a part of an
equality chain becomes a closure that evaluates it exactly from its leaf values and operators,
noting every inner value (its trace). Nothing is ever passed to eval().
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

from lemagen.math.answers import too_long

_DEPTH = 40  # nested parentheses, braces and fractions
_LIMIT = 10**40  # a value past this (a slipped exponent, 99!) is not plausible arithmetic

_NUM = re.compile(r"(?:\\\$\s*)?(?:\d+(?:(?:\{,\}|,\\!\s*)\d{3})*(?:\.\d+)?|\.\d+)(?:\s*\\%)?")
_SKIP = re.compile(
    r"\s+|\\[,!;: ]|~|&|\\left(?=[.(\[])\.?|\\right(?=[.)\]])\.?|\\displaystyle|\\quad(?=\s*=)"
    r"|\^\s*\{?\s*\\circ\s*\}?"
)
_BREAK = re.compile(
    r"\\(?:text|mbox|textbf|mathrm|operatorname)\s*\{[^{}]*\}|\\q?quad|\\(?:le|ge|leq|geq|ne|neq"
    r"|approx|equiv|implies|Rightarrow|Longrightarrow|rightarrow|to|iff|pm|mp|cdots|ldots|dots)"
    r"(?![A-Za-z])|[<>,;:.]"
)
_OPS = {
    "+": "+",
    "-": "-",
    "*": "*",
    "/": "/",
    "\\times": "*",
    "\\cdot": "*",
    "\\div": "/",
}
_OP = re.compile(r"\\times(?![A-Za-z])|\\cdot(?![A-Za-z])|\\div(?![A-Za-z])|[-+*/]")
_STRUCT = re.compile(r"\\[dt]?frac(?![A-Za-z])|\\sqrt(?![A-Za-z])|\\binom(?![A-Za-z])|\\boxed\{")


@dataclass
class Tok:
    kind: str  # num, op, (, ), {, }, frac, sqrt, binom, ^, !, =, row, other
    text: str
    start: int
    end: int
    value: Fraction | None = None


@dataclass
class Leaf:
    value: Fraction
    start: int  # span in the step text
    end: int
    text: str
    tight: bool = False  # a power's base or a factorial's operand: a new value needs parens
    # A fraction of two plain numbers (`\\frac{34}{100}`): its numerator and denominator.
    fraction: tuple[Fraction, Fraction] | None = None


class NotNumeric(Exception):
    pass


def number_value(text: str) -> Fraction:
    """`1{,}000` -> 1000, `\\$2.50` -> 5/2, `20\\%` -> 1/5."""
    plain = re.sub(r"\\\$|\{,\}|,\\!|\s", "", text)
    percent = plain.endswith("\\%")
    value = Fraction(plain.removesuffix("\\%"))
    return value / 100 if percent else value


def tokens(text: str, base: int) -> list[Tok]:
    out: list[Tok] = []
    i, n = 0, len(text)
    braces: list[str] = []  # "{" or "boxed"
    after_struct = False  # right after \frac/\sqrt/^: a bare digit is one argument
    while i < n:
        if text.startswith("\\\\", i):
            out.append(Tok("row", "\\\\", base + i, base + i + 2))
            i += 2
            continue
        m = _SKIP.match(text, i)
        if m and m.end() > i:
            i = m.end()
            continue
        m = _STRUCT.match(text, i)
        if m:
            word = m.group(0)
            if word == "\\boxed{":
                braces.append("boxed")
            else:
                kind = "frac" if word.endswith("frac") else word[1:]
                out.append(Tok(kind, word, base + i, base + m.end()))
                after_struct = True
            i = m.end()
            continue
        c = text[i]
        if after_struct and c.isdigit():
            out.append(Tok("num", c, base + i, base + i + 1, Fraction(int(c))))
            i += 1
            after_struct = out[-2].kind == "frac" and (len(out) < 3 or out[-3].kind != "frac")
            continue
        after_struct = False
        m = _NUM.match(text, i)
        if m:
            if too_long(m.group(0)):  # not read as a number: the part is not arithmetic
                out.append(Tok("other", m.group(0), base + i, base + m.end()))
            else:
                value = number_value(m.group(0))
                out.append(Tok("num", m.group(0), base + i, base + m.end(), value))
            i = m.end()
            continue
        m = _OP.match(text, i)
        if m:
            out.append(Tok("op", m.group(0), base + i, base + m.end()))
            i = m.end()
            continue
        m = _BREAK.match(text, i)
        if m:
            out.append(Tok("break", m.group(0), base + i, base + m.end()))
            i = m.end()
            continue
        if c == "{":
            braces.append("{")
            out.append(Tok("{", c, base + i, base + i + 1))
        elif c == "}":
            if braces and braces.pop() == "boxed":
                i += 1
                continue
            out.append(Tok("}", c, base + i, base + i + 1))
        elif c in "()=!^":
            out.append(Tok(c, c, base + i, base + i + 1))
            after_struct = c == "^"
        elif c == "[" or c == "]":
            out.append(Tok("other", c, base + i, base + i + 1))
        else:
            m = re.match(r"\\[A-Za-z]+|.", text[i:], re.S)
            assert m is not None
            out.append(Tok("other", m.group(0), base + i, base + i + len(m.group(0))))
            i += len(m.group(0))
            continue
        i += 1
    return out


# ---------------------------------------------------------------- parsing a part


Node = Callable[[list[Fraction], list[str], list[Fraction]], Fraction]


class Parser:
    """Recursive descent over one part's tokens, building a closure that evaluates it."""

    def __init__(self, tokens: list[Tok]) -> None:
        self.toks = tokens
        self.i = 0
        self.leaves: list[Leaf] = []
        self.ops: list[str] = []
        self.op_spans: list[tuple[int, int]] = []
        self.fixed = 0  # > 0 inside an exponent: numbers are constants, not leaves
        self.depth = 0  # nesting of sub-expressions: deeper than _DEPTH is not arithmetic

    def peek(self, k: int = 0) -> Tok | None:
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else None

    def take(self, kind: str) -> Tok:
        tok = self.peek()
        if tok is None or tok.kind != kind:
            raise NotNumeric
        self.i += 1
        return tok

    def parse(self) -> Node:
        node = self.expr()
        if self.peek() is not None:
            raise NotNumeric
        return node

    def expr(self) -> Node:
        self.depth += 1
        if self.depth > _DEPTH:  # also keeps the evaluating closures far from the stack limit
            raise NotNumeric
        node = self._sum()
        self.depth -= 1
        return node

    def _sum(self) -> Node:
        node = self.term()
        while (tok := self.peek()) is not None and tok.kind == "op" and _OPS[tok.text] in "+-":
            self.i += 1
            node = self._binary(node, self.term(), tok)
        return node

    def term(self) -> Node:
        node = self.unary()
        while (tok := self.peek()) is not None:
            if tok.kind == "op" and _OPS[tok.text] in "*/":
                self.i += 1
                node = self._binary(node, self.unary(), tok)
            elif tok.kind in ("(", "{", "sqrt", "binom"):
                prev = self.toks[self.i - 1]
                if prev.kind == "num" and tok.kind in ("{",):
                    raise NotNumeric
                node = _mul(node, self.unary())  # implicit product: 2(3), (2)(3)
            elif tok.kind == "frac" or tok.kind == "num":
                raise NotNumeric  # 2\frac{1}{2} is a mixed number; `2 3` is not a product
            else:
                break
        return node

    def _binary(self, left: Node, right: Node, tok: Tok) -> Node:
        if self.fixed:
            op = _OPS[tok.text]
            return lambda v, o, ch: _apply(op, left(v, o, ch), right(v, o, ch), ch)
        index = len(self.ops)
        self.ops.append(_OPS[tok.text])
        self.op_spans.append((tok.start, tok.end))
        return lambda v, o, ch: _apply(o[index], left(v, o, ch), right(v, o, ch), ch)

    def unary(self) -> Node:
        negative = False
        while (tok := self.peek()) is not None and tok.kind == "op" and tok.text in "+-":
            self.i += 1
            negative ^= tok.text == "-"
        inner = self.power()
        if not negative:
            return inner
        return lambda v, o, ch: _note(ch, -inner(v, o, ch))

    def power(self) -> Node:
        start = len(self.leaves)
        base = self.postfix()
        tok = self.peek()
        if tok is None or tok.kind != "^":
            return base
        self.i += 1
        if len(self.leaves) == start + 1:
            self.leaves[start].tight = True
        self.fixed += 1
        exponent = self.atom()
        self.fixed -= 1

        def node(v: list[Fraction], o: list[str], ch: list[Fraction]) -> Fraction:
            e = exponent(v, o, ch)
            b = base(v, o, ch)
            if e.denominator != 1 or abs(e) > 64 or (b == 0 and e < 0):
                raise NotNumeric
            return _note(ch, _check(b ** int(e)))

        return node

    def postfix(self) -> Node:
        start = len(self.leaves)
        node = self.atom()
        tok = self.peek()
        if tok is None or tok.kind != "!":
            return node
        self.i += 1
        if len(self.leaves) == start + 1:
            self.leaves[start].tight = True

        def fact(v: list[Fraction], o: list[str], ch: list[Fraction]) -> Fraction:
            n = node(v, o, ch)
            if n.denominator != 1 or not 0 <= n <= 30:
                raise NotNumeric
            return _note(ch, Fraction(math.factorial(int(n))))

        return fact

    def atom(self) -> Node:
        tok = self.peek()
        if tok is None:
            raise NotNumeric
        if tok.kind == "num":
            self.i += 1
            return self._leaf(tok.value, tok.start, tok.end, tok.text)
        if tok.kind in ("(", "{"):
            self.i += 1
            inner = self.expr()
            self.take(")" if tok.kind == "(" else "}")
            return inner
        if tok.kind == "frac":
            self.i += 1
            plain = self._plain_fraction(tok)
            if plain is not None:
                return plain
            num, den = self.group(), self.group()
            return lambda v, o, ch: _apply("/", num(v, o, ch), den(v, o, ch), ch)
        if tok.kind == "sqrt":
            self.i += 1
            inner = self.group()

            def root(v: list[Fraction], o: list[str], ch: list[Fraction]) -> Fraction:
                x = inner(v, o, ch)
                if x < 0:
                    raise NotNumeric
                p, q = math.isqrt(x.numerator), math.isqrt(x.denominator)
                if p * p != x.numerator or q * q != x.denominator:
                    raise NotNumeric
                return _note(ch, Fraction(p, q))

            return root
        if tok.kind == "binom":
            self.i += 1
            n, k = self.group(), self.group()

            def binom(v: list[Fraction], o: list[str], ch: list[Fraction]) -> Fraction:
                a, b = n(v, o, ch), k(v, o, ch)
                if a.denominator != 1 or b.denominator != 1 or not 0 <= b <= a <= 1000:
                    raise NotNumeric
                return _note(ch, Fraction(math.comb(int(a), int(b))))

            return binom
        raise NotNumeric

    def group(self) -> Node:
        """A `\\frac`/`\\sqrt`/`\\binom` argument: `{...}` or one bare digit."""
        tok = self.peek()
        if tok is not None and tok.kind == "num" and len(tok.text) == 1:
            return self.atom()
        self.take("{")
        inner = self.expr()
        self.take("}")
        return inner

    def _plain_fraction(self, frac: Tok) -> Node | None:
        """`\\frac{5}{3}` / `\\frac53` as one number (a leaf), or None."""
        toks = self.toks[self.i : self.i + 6]
        kinds = "".join(
            "n" if t.kind == "num" and "." not in t.text and "\\" not in t.text else t.kind[0]
            for t in toks
        )
        for pattern, width in (("{n}{n}", 6), ("nn", 2), ("n{n}", 4), ("{n}n", 4)):
            if kinds.startswith(pattern):
                nums = [t for t in toks[:width] if t.kind == "num"]
                den = nums[1].value
                if den is None or den == 0 or nums[0].value is None:
                    raise NotNumeric
                end = toks[width - 1].end
                self.i += width
                node = self._leaf(nums[0].value / den, frac.start, end, None)
                if not self.fixed:
                    self.leaves[-1].fraction = (nums[0].value, den)
                return node
        return None

    def _leaf(self, value: Fraction | None, start: int, end: int, text: str | None) -> Node:
        assert value is not None
        if self.fixed:
            return lambda v, o, ch: value
        index = len(self.leaves)
        self.leaves.append(Leaf(value, start, end, text or ""))
        return lambda v, o, ch: v[index]


def _mul(left: Node, right: Node) -> Node:
    return lambda v, o, ch: _apply("*", left(v, o, ch), right(v, o, ch), ch)


def _apply(op: str, a: Fraction, b: Fraction, ch: list[Fraction]) -> Fraction:
    if op == "+":
        return _note(ch, a + b)
    if op == "-":
        return _note(ch, a - b)
    if op == "*":
        return _note(ch, _check(a * b))
    if b == 0:
        raise NotNumeric
    return _note(ch, _check(a / b))


def _check(value: Fraction) -> Fraction:
    if abs(value.numerator) > _LIMIT or value.denominator > _LIMIT:
        raise NotNumeric
    return value


def _note(trace: list[Fraction], value: Fraction) -> Fraction:
    trace.append(value)
    return value
