"""Final-answer extraction from solution text: pure string work, no sympy.

Extraction is kept apart from comparison (`grading.py`), as Math-Verify does: this module finds
*which* text is the answer; grading decides whether it equals the gold answer.
"""

from __future__ import annotations

import itertools
import re
from fractions import Fraction
from typing import Literal, NamedTuple

Method = Literal["boxed", "answer_is", "hashes", "label", "last_expression", "last_number"]
# Marked by the writer as the answer; the others are read off the closing sentence.
EXPLICIT_METHODS: frozenset[str] = frozenset({"boxed", "answer_is", "hashes", "label"})


class Extraction(NamedTuple):
    """The final answer found in a solution and how it was found (both None when nothing was)."""

    pred: str | None
    method: Method | None


_NONE = Extraction(None, None)

# A number written with more digits than this is never converted to an int (Python refuses
# past 4,300 digits, and converting is quadratic): it is compared as its text (`decimal_text`),
# or a part that holds it is not read as arithmetic. Below the 640 digits Python's limit can be
# set to at the least, with room for a sum of numbers read; a power is bounded by `_power`.
MAX_DIGITS = 600


def too_long(token: str) -> bool:
    """`token` (one number as written: `1,250.5`, `\\$3`) has more than MAX_DIGITS digits."""
    return len(token) > MAX_DIGITS and sum(c.isdigit() for c in token) > MAX_DIGITS


def decimal_text(token: str) -> str:
    """The canonical text of a decimal number, however long, read without converting it:
    `1,000` and `1000`, `2.50` and `2.5`, `-0` and `0` give one text (equal texts are equal
    values). `token` is `-?digits(.digits)?`, thousands commas allowed; ValueError if not."""
    if token.isascii() and token.isdigit() and (token[0] != "0" or len(token) == 1):
        return token  # `48`, as most answers are: already its canonical text
    text = token.replace(",", "").replace("\u2212", "-")
    sign = "-" if text.startswith("-") else ""
    whole, _, fraction = text[len(sign) :].partition(".")
    digits = whole + fraction
    if not (digits.isascii() and digits.isdigit()):
        raise ValueError(f"not a decimal number: {token[:40]!r}")
    whole, fraction = whole.lstrip("0") or "0", fraction.rstrip("0")
    body = f"{whole}.{fraction}" if fraction else whole
    return sign + body if body != "0" else body


# A completion that goes on to invent the next few-shot item is cut there before extraction:
# a base model given `--prompt gsm8k-fewshot` writes `... The answer is 9.\n\nQuestion: ...`
# (sometimes with one newline only).
_RUN_ON = re.compile(r"\n[ \t]*(?:\n[ \t]*)?(?:Question|Problem)[ \t]*:|\n[ \t]*\n[ \t]*Q[ \t]*:")

# A minus sign right after a digit or `)` is subtraction (`20-5`), not a negative number. A
# number never starts inside a run of digits (a search would try every start: quadratic).
_NUMBER = r"(?:(?<![\w)])[-\u2212])?(?<!\d)(?:\d{1,3}(?:,\d{3})+(?![\d])|\d+)(?:\.\d+)?"
_NUMBER_RE = re.compile(_NUMBER)
_FRACTION_RE = re.compile(rf"({_NUMBER})\s*/\s*({_NUMBER})")
_LATEX_FRAC_RE = re.compile(r"(-?)\\[dt]?frac\s*\{\s*(-?[\d.,]+)\s*\}\s*\{\s*(-?[\d.,]+)\s*\}")
_ANSWER_IS_RE = re.compile(r"answer\s+is\s*[:\uff1a]?\s*", re.IGNORECASE)
_HASHES_RE = re.compile(r"####\s*")
_LABEL_RE = re.compile(r"(?im)^[ \t*#]*(?:final answer|answer|a)[ \t*]*[:\uff1a][ \t*]*")
# A `**Final Answer**` heading with the answer in the lines below it.
_HEADING_RE = re.compile(r"(?im)^[ \t*#]*final answer[ \t*]*$\n?")
# Math as Math-Verify delimits it: display `$$..$$` and `\[..\]`, inline `$..$` (one line, `\$`
# allowed inside, not right after a digit: `costs 5$`) and `\(..\)`.
_MATH_ENV_RE = re.compile(
    r"\$\$(?P<dd>.+?)\$\$|\\\[(?P<db>.+?)\\\]"
    r"|(?<![\\\d])\$(?P<id>(?:\\\$|[^\n$])+?)(?<!\\)\$|\\\((?P<ip>.+?)\\\)",
    re.DOTALL,
)
# Outside math: a number, or a fraction / power / `\frac{}{}` written without delimiters.
_BARE_EXPR_RE = re.compile(
    rf"-?\\[dt]?frac\s*\{{[^{{}}]*\}}\s*\{{[^{{}}]*\}}|{_NUMBER}(?:\s*[/^]\s*{_NUMBER})*%?"
)
# Between the parts of a several-part answer (`$x<-2$ or $x>3$`, `$2$, $3$, and $5$`).
_CONNECTOR_RE = re.compile(r"\s*(?:,?\s*(?:and|or)|,|;|\\cup)\s*", re.IGNORECASE)
_JOINS = {"or": " \\text{ or } ", "\\cup": " \\cup "}
_SENTENCE_END_RE = re.compile(r"[.!?](?=\s)|\n[ \t]*\n")
_PROSE_RE = re.compile(r"(?<![\\a-zA-Z])[a-zA-Z]{2,}\s+[a-zA-Z]{2,}")
_HOPE_RE = re.compile(r"\.?\s*I hope it is correct\.?\s*$")


def cut_run_on(text: str) -> str:
    """Cut a completion where it starts inventing the next `Question:`."""
    match = _RUN_ON.search(text)
    return text[: match.start()] if match else text


def brace_end(text: str, open_at: int) -> int | None:
    """Where the brace opened at `open_at` closes (braces matched), or None."""
    depth = 0
    for i in range(open_at, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
    return None


def find_boxed(text: str) -> str | None:
    """The content of the last `\\boxed{...}` (or `\\fbox{...}`), braces matched."""
    best: str | None = None
    for match in re.finditer(r"\\(?:boxed|fbox)\s*", text):
        start = match.end()
        if start < len(text) and text[start] == "{":
            end = brace_end(text, start)
            if end is not None:
                best = text[start + 1 : end]
        else:  # `\boxed 5`
            token = re.match(r"[^\s$.,]+", text[start:])
            if token:
                best = token.group(0)
    return best.strip() if best is not None else None


# ---------------------------------------------------------------- numbers (GSM8K)


def parse_number(text: str) -> Fraction | None:
    """Read one number from answer text: `1,250`, `$2.50`, `25%`, `3/4`, `\\frac{3}{4}`, `-7`.

    Currency signs, percent signs, unit words and trailing periods are ignored; the first number
    in the text is taken. Nothing is evaluated but a small power (`10^2` is 100).
    """
    if text.isascii() and text.isdigit():  # `48`, as most gold answers are
        return _to_fraction(text)
    text = text.replace("\\$", "$").replace("\\%", "%").replace("\\!", "").replace("\u2212", "-")
    text = text.replace("{,}", ",")
    latex = _LATEX_FRAC_RE.search(text)
    if latex:
        num, den = _to_fraction(latex.group(2)), _to_fraction(latex.group(3))
        if num is not None and den:
            value = num / den
            return -value if latex.group(1) else value
    fraction = _FRACTION_RE.search(text)
    first = _NUMBER_RE.search(text)
    if fraction and first and fraction.start() == first.start():
        num, den = _to_fraction(fraction.group(1)), _to_fraction(fraction.group(2))
        if num is not None and den:
            return num / den
    if first:
        if _CARET_RE.match(text, first.end()):  # `10^2` is 100; never its base
            power = _POWER_RE.match(text, first.end())
            return _power(_to_fraction(first.group(0)), power.group(1)) if power else None
        return _to_fraction(first.group(0))
    return None


_CARET_RE = re.compile(r"\s*\^")
_EXPONENT_BEFORE_RE = re.compile(r"\^\s*\{?\s*$")
_POWER_RE = re.compile(r"\s*\^\s*\{?\s*(-?\d+)\s*\}?(?!\s*\^)")


def _power(base: Fraction | None, exponent: str) -> Fraction | None:
    """`base ** exponent` for a small whole exponent; None (no number) for anything larger or
    stacked (`9^{9^{9}}`), so a pathological answer is never read as its base."""
    if base is None or len(exponent.lstrip("-")) > 2:
        return None
    exp = int(exponent)
    if abs(exp) > 64 or (base == 0 and exp < 0):
        return None
    size = max(abs(base.numerator), base.denominator).bit_length() * abs(exp)
    if size > MAX_DIGITS * 3.3:  # bits: its digits would be past MAX_DIGITS
        return None
    return base**exp


def _to_fraction(token: str) -> Fraction | None:
    """The value of one number, or None when it is not one or too long to read as one."""
    token = token.replace(",", "").replace(" ", "").replace("\u2212", "-")
    if too_long(token):
        return None
    try:
        if token.isascii() and token.isdigit():
            return Fraction(int(token))  # the common case, without Fraction's text parser
        return Fraction(token)
    except (ValueError, ZeroDivisionError):
        return None


def _number_text(token: str) -> str | None:
    """One number (`_NUMBER`) as extraction writes it: canonical (`format_number`), or when
    it is too long to read as a number, its `decimal_text`."""
    if too_long(token):
        return decimal_text(token)
    value = _to_fraction(token)
    return format_number(value) if value is not None else None


def format_number(value: Fraction) -> str:
    """Canonical text: `18`, `2.5`, `-0.125`, or `1/3` when no finite decimal exists."""
    if value.denominator == 1:
        return str(value.numerator)
    den = value.denominator
    for p in (2, 5):
        while den % p == 0:
            den //= p
    if den != 1:
        return f"{value.numerator}/{value.denominator}"
    digits = 0
    scaled = value
    while scaled.denominator != 1:
        scaled *= 10
        digits += 1
    sign = "-" if scaled < 0 else ""
    whole = str(abs(scaled.numerator)).rjust(digits + 1, "0")
    return f"{sign}{whole[:-digits]}.{whole[-digits:]}"


def _number_after(text: str, pattern: re.Pattern[str]) -> str | None:
    """The number right after the last match of `pattern` that is followed by one."""
    for match in reversed(list(pattern.finditer(text))):
        tail = text[match.end() :]
        tail = tail.split("\n", 1)[0]
        boxed = find_boxed(tail)
        if boxed is not None:
            tail = boxed
        rest = _NUMBER_GOES_ON.match(tail, 80)
        found = _read_number(tail[:80] + (rest.group(0) if rest else ""))
        if found is not None:
            return found
    return None


# Past a cut: a number (and its power or denominator) is never read in part.
_NUMBER_GOES_ON = re.compile(r"[\d,.]*(?:\s*[/^]\s*\{?\s*-?[\d,.]*\}?)?")


def _read_number(text: str) -> str | None:
    """The first number of `text` (`parse_number`) as extraction writes it (`format_number`),
    or as its text (`decimal_text`) when it is too long to read as a number."""
    first = _NUMBER_RE.search(text)
    if first is not None and too_long(first.group(0)):
        return decimal_text(first.group(0))
    value = parse_number(text)
    return format_number(value) if value is not None else None


def extract_gsm8k(text: str) -> str | None:
    """The final numeric answer of a GSM8K-style solution, canonical, or None."""
    return extract_gsm8k_how(text).pred


def extract_gsm8k_how(text: str) -> Extraction:
    """The final numeric answer of a GSM8K-style solution, canonical, and how it was found.

    Forms, most explicit first: `#### 18`, `The answer is 18`, `\\boxed{18}`, a line `A: 18` /
    `Answer: 18`, then the last number of the closing sentence (never of an earlier one: a
    solution that ends `I am not sure how to go on.` has no answer).
    """
    text = cut_run_on(text)
    markers: tuple[tuple[re.Pattern[str], Method], ...] = (
        (_HASHES_RE, "hashes"),
        (_ANSWER_IS_RE, "answer_is"),
    )
    for pattern, method in markers:
        found = _number_after(text, pattern)
        if found is not None:
            return Extraction(found, method)
    boxed = find_boxed(text)
    if boxed is not None:
        found = _read_number(boxed)
        if found is not None:
            return Extraction(found, "boxed")
    found = _number_after(text, _LABEL_RE)
    if found is not None:
        return Extraction(found, "label")
    sentence = closing_sentence(_strip_annotations(text))
    numbers = list(_NUMBER_RE.finditer(sentence))
    for match in reversed(numbers):
        if _EXPONENT_BEFORE_RE.search(sentence, 0, match.start()) or _CARET_RE.match(
            sentence, match.end()
        ):
            return _NONE  # the last number is part of a power: its value was not read above
        found = _number_text(match.group(0))
        if found is not None:
            return Extraction(found, "last_number")
    return _NONE


def _strip_annotations(text: str) -> str:
    return re.sub(r"<<[^<>]*>>", "", text)


# ---------------------------------------------------------------- sentences


def _masked(text: str) -> str:
    """`text` with the inside of every math span blanked out (same length), so that the `.` of
    `3.5` or of a display `\\[ x = 1. \\]` never ends a sentence."""
    return _MATH_ENV_RE.sub(lambda m: m.group(0)[0] + "M" * (len(m.group(0)) - 2) + "_", text)


def closing_sentence(text: str) -> str:
    """The last sentence of `text` (math spans kept whole), its final punctuation included."""
    masked = _masked(text).rstrip()
    body = masked.rstrip(".!?*) \t\n")
    ends = list(_SENTENCE_END_RE.finditer(body))
    start = ends[-1].end() if ends else 0
    return text[start : len(masked)].strip()


def first_sentence(text: str) -> str:
    """`text` up to the end of its first sentence (math spans kept whole)."""
    match = _SENTENCE_END_RE.search(_masked(text))
    return text[: match.start()] if match else text


# ---------------------------------------------------------------- LaTeX (MATH)


def _strip_math_delimiters(answer: str) -> str:
    answer = answer.strip()
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if answer.startswith(left) and answer.endswith(right) and len(answer) > len(left + right):
            return answer[len(left) : -len(right)].strip()
    return answer


_Part = tuple[int, int, str, str]  # start, end, text, kind: "math" | "number" | "expression"


def _parts(span: str) -> list[_Part]:
    """Math spans and bare numbers/fractions in `span`, in order."""
    parts = []
    taken = 0
    for m in _MATH_ENV_RE.finditer(span):
        parts.extend(_bare_parts(span, taken, m.start()))
        inner = next(g for g in m.groups() if g is not None)
        parts.append((m.start(), m.end(), inner.strip().rstrip(".,;").strip(), "math"))
        taken = m.end()
    parts.extend(_bare_parts(span, taken, len(span)))
    return [p for p in parts if p[2]]


def _bare_parts(span: str, start: int, end: int) -> list[_Part]:
    out = []
    for m in _BARE_EXPR_RE.finditer(span, start, end):
        kind = "number" if _NUMBER_RE.fullmatch(m.group(0)) else "expression"
        out.append((m.start(), m.end(), m.group(0), kind))
    return out


def last_expression(span: str) -> Extraction:
    """The last mathematical expression of `span`, with the math spans joined to it by `and`,
    `or` or commas (`$x<-2$ or $x>3$`, `$2$, $3$, and $5$`) as Math-Verify joins them, as
    LaTeX."""
    parts = _parts(span)
    if not parts:
        return _NONE
    first = len(parts) - 1
    while first > 0 and _joined(span, parts[first - 1], parts[first]):
        first -= 1
    group = parts[first:]
    method: Method = "last_number" if group[0][3] == "number" else "last_expression"
    return Extraction(_join(span, group), method)


def _first_expression(span: str, parts: list[_Part]) -> str:
    """The math span that opens `span`, with the spans joined to it (`$2$ or $3$, since ...`)."""
    last = 0
    while last + 1 < len(parts) and _joined(span, parts[last], parts[last + 1]):
        last += 1
    return _join(span, parts[: last + 1])


def _joined(span: str, left: _Part, right: _Part) -> bool:
    return (
        left[3] == right[3] == "math"
        and _CONNECTOR_RE.fullmatch(span[left[1] : right[0]]) is not None
    )


def _join(span: str, group: list[_Part]) -> str:
    text = group[0][2]
    for left, right in itertools.pairwise(group):
        word = span[left[1] : right[0]].strip(" ,;").lower()
        text += _JOINS.get(word, ", ") + right[2]
    return text


def _marked_answer(tail: str) -> str | None:
    """The answer written right after a marker (`The answer is`, `Final Answer:`): the math
    that opens its sentence (`$2$, since ...`), else the whole rest of the sentence (`p - q`),
    or, when that is prose (`The largest $n$ is 34.`), its last expression."""
    sentence = _HOPE_RE.sub("", first_sentence(tail.strip())).strip()
    parts = _parts(sentence)
    if parts and parts[0][0] == 0 and parts[0][3] == "math":
        return _first_expression(sentence, parts)
    if _MATH_ENV_RE.search(sentence) or _PROSE_RE.search(sentence):
        return last_expression(sentence).pred
    answer = _strip_math_delimiters(sentence.rstrip(" .")).rstrip(" .")
    return answer or None


def extract_math(text: str) -> str | None:
    """The final answer of a MATH-style solution as LaTeX text, or None."""
    return extract_math_how(text).pred


def extract_math_how(text: str) -> Extraction:
    """The final answer of a MATH-style solution as LaTeX text, and how it was found.

    Most explicit first: the last `\\boxed{}`; the text after the last `The answer is` (also
    `Final Answer: The final answer is $x$. I hope it is correct.`); a labelled final
    (`Final Answer: ...`, `**Answer:** ...`, `Answer: ...`, a `**Final Answer**` heading); then
    the last expression of the closing sentence (`... is $\\frac13$.`), as Math-Verify reads an
    unmarked answer but never from an earlier sentence.
    """
    text = cut_run_on(text)
    boxed = find_boxed(text)
    if boxed:
        return Extraction(boxed, "boxed")
    markers: tuple[tuple[re.Pattern[str], Method], ...] = (
        (_ANSWER_IS_RE, "answer_is"),
        (_LABEL_RE, "label"),
    )
    for pattern, method in markers:
        for match in reversed(list(pattern.finditer(text))):
            found = _marked_answer(text[match.end() :])
            if found:
                return Extraction(found, method)
    heading = list(_HEADING_RE.finditer(text))
    if heading:
        found = _marked_answer(text[heading[-1].end() :])
        if found:
            return Extraction(found, "label")
    return last_expression(closing_sentence(text))


def extract(task: str, text: str) -> str | None:
    """The final answer of `text` for `task` (`gsm8k` or `math`)."""
    return extract_how(task, text).pred


def extract_how(task: str, text: str) -> Extraction:
    """The final answer of `text` for `task` (`gsm8k` or `math`), and how it was found."""
    return extract_gsm8k_how(text) if task == "gsm8k" else extract_math_how(text)


# ---------------------------------------------------------------- gold answers


_GSM8K_GOLD_RE = re.compile(r"####\s*(.+?)\s*$")


def gsm8k_gold(solution: str) -> str | None:
    """Gold from a GSM8K rationale: the number after `####` (commas removed)."""
    match = _GSM8K_GOLD_RE.search(solution.strip())
    if not match:
        return None
    text = match.group(1)
    if too_long(text):  # no gold: a number past MAX_DIGITS is not read as one
        return None
    if text.isascii() and text.isdigit():  # `72`, as nearly all are: what parsing would give
        return str(int(text))
    value = parse_number(text)
    return format_number(value) if value is not None else None


def math_gold(solution: str) -> str | None:
    """Gold from a MATH solution: a trailing `The answer is: X` (MATH-500 / PRM800K shape),
    else the last `\\boxed{}`."""
    match = re.search(r"The answer is:\s*(.+?)\s*$", solution)
    if match and "\n" not in match.group(1):
        return match.group(1).strip()
    return find_boxed(solution)
